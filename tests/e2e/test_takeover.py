"""A worker SIGKILLed in the middle of a grading: another worker takes the grading over by itself
(its heartbeat stopped), grades it once, and the engine keeps nothing of the killed run.

Real processes: `grader serve`, two `grader worker`s (one after the other, as a second host would
be), real Redis, SQLite, the GitLab-compatible server, the real engine.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.engine import LABEL_INSTANCE, Engine
from grader.store import State, Store
from tests.conftest import REFERENCE_REPO
from tests.e2e.test_service import INSTANCE, broker_url, process, push, service, states  # noqa: F401 - fixture
from tests.support.fake_gitlab import FakeGitLab

pytestmark = pytest.mark.docker
FINAL = {"success", "failed", "canceled"}


def _start_worker(env: dict, log, name: str) -> subprocess.Popen:
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-m", "grader.cli", "worker", "--concurrency", "1", "-n",
                                 f"{name}@%h"], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_running(store: Store, timeout: float = 300) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = store.running_since()
        if running:
            return running[0][0]
        time.sleep(0.1)
    pytest.fail("no grading started")


def test_a_grading_whose_worker_was_killed_is_taken_over_and_graded_once(tmp_path, broker_url):  # noqa: F811
    with FakeGitLab() as gitlab:
        project, sha = gitlab.create_repo_project("devops-2026/killed-docker", tmp_path / "repos",
                                                  source=REFERENCE_REPO)
        database_url = f"sqlite:///{tmp_path / 'grader.db'}"
        with service(tmp_path, gitlab, broker_url, database_url, worker=False) as (base, env):
            # Short beats so the test is quick; the production defaults are 5 s and 30 s.
            quick = {**env, "GRADER_RECONCILE_S": "2", "GRADER_HEARTBEAT_S": "1", "GRADER_TAKEOVER_AFTER_S": "4",
                     "GRADER_VERDICT_CACHE": "0"}  # a reused verdict would finish before the kill
            store = Store(database_url)
            push(base, gitlab, project, sha)
            first = _start_worker(quick, tmp_path / "worker-a.log", "a")
            try:
                submission = _wait_running(store)
                time.sleep(1.5)  # into the builds
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(timeout=10)
                killed_at = time.monotonic()
                got = store.get(submission)
                assert got is not None and got.state == State.RUNNING, "control: the killed worker had not finished"
            finally:
                if first.poll() is None:
                    os.killpg(first.pid, signal.SIGKILL)
            with process(["worker", "--concurrency", "1", "-n", "b@%h"], quick, tmp_path / "worker-b.log") as second:
                FakeGitLab.wait_until(lambda: any(s in FINAL for s in states(gitlab, sha)) and gitlab.comments,
                                      timeout=300)
                done_at = time.monotonic()
                # Celery's main process never loaded BuildKit's parser (its pool children fork from it)
                assert "dockerfile" not in Path(f"/proc/{second.pid}/maps").read_text()
                time.sleep(3)  # a second grading or post, if any, would land now
            final = store.get(submission)
            store.close()
    log_b = (tmp_path / "worker-b.log").read_text()
    seen = states(gitlab, sha)
    assert [s for s in seen if s in FINAL] == ["success"], seen
    assert seen[0] == "pending" and seen[-1] == "success"
    assert len(gitlab.comments) == 1
    assert final is not None and final.state == State.GRADED and final.score == 5.0
    assert re.search(rf"took over 1 grading\(s\) whose worker went silent .*\[{submission}\]", log_b), log_b[-3000:]
    print(f"takeover: graded {done_at - killed_at:.1f} s after the SIGKILL")
    engine = Engine.from_settings(_settings())
    mine = {"label": f"{LABEL_INSTANCE}={INSTANCE}"}
    assert engine.client.containers.list(all=True, filters=mine) == []
    assert engine.client.networks.list(filters=mine) == []


def _settings():
    from grader.config import Settings

    return Settings(instance=INSTANCE)
