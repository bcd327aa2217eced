"""Live states are live: with one worker process, the `running` status reaches GitLab while the
build still runs, not together with the result (issue 14, item 2). Deliveries are Celery tasks
queued behind the grading on that worker; the grading task delivers them itself meanwhile
(grader/tasks.py, `delivering_meanwhile`)."""

from __future__ import annotations

import secrets
import time

import pytest

from tests.conftest import REFERENCE_REPO
from tests.e2e.test_service import broker_url, push, service, states  # noqa: F401 - broker_url is a fixture
from tests.support.fake_gitlab import FakeGitLab

pytestmark = pytest.mark.docker
SLEEP_S = 20  # how long the single variant's last build step takes


def test_running_reaches_gitlab_while_the_build_runs(tmp_path, broker_url):  # noqa: F811 - the fixture
    source = (REFERENCE_REPO / "counter-backend" / "Dockerfile.single").read_text(encoding="utf-8")
    # A slow last step, new to BuildKit's cache and the verdict cache (the token), after the shared ones.
    slow = source.replace("EXPOSE 8080", f"RUN sleep {SLEEP_S} && echo {secrets.token_hex(8)}\nEXPOSE 8080")
    assert slow != source
    with FakeGitLab() as gitlab:
        project, sha = gitlab.create_repo_project("devops-2026/ivanov-docker", tmp_path / "repos",
                                                  source=REFERENCE_REPO,
                                                  files={"counter-backend/Dockerfile.single": slow})
        with service(tmp_path, gitlab, broker_url, f"sqlite:///{tmp_path / 'grader.db'}") as (base, _env):
            push(base, gitlab, project, sha)
            first_seen: dict[str, float] = {}
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not first_seen.keys() & {"success", "failed"}:
                for state in states(gitlab, sha):
                    first_seen.setdefault(state, time.monotonic())
                time.sleep(0.1)
    final = next((s for s in ("success", "failed") if s in first_seen), None)
    assert final is not None, f"no result within 600 s; statuses seen: {first_seen}"
    assert "running" in first_seen, first_seen
    # Before the fix `running` arrived a few milliseconds before the result; now it precedes it by
    # at least most of the slow step.
    lead = first_seen[final] - first_seen["running"]
    assert lead >= SLEEP_S - 8, f"running arrived only {lead:.1f} s before {final}"
    assert list(first_seen) == ["pending", "running", final]
