"""`grader doctor --service` against the GitLab-compatible server, the machine's Redis and a SQLite
file: each problem an operator would meet on deadline night is one line naming the fix, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.fake_gitlab import FakeGitLab

pytestmark = pytest.mark.services


def doctor(tmp_path, gitlab: FakeGitLab, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GRADER_GITLAB_URL": gitlab.url,
            "GRADER_GITLAB_TOKEN": gitlab.token, "GRADER_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
            "GRADER_BROKER_URL": os.environ.get("GRADER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "GRADER_GROUPS": '["devops-2026"]', "GRADER_INSTANCE": f"doctor-{os.getpid()}", **env}
    return subprocess.run([sys.executable, "-m", "grader.cli", "doctor", "--service"], capture_output=True,
                          text=True, timeout=120, env=full, cwd=tmp_path)


def lines(result: subprocess.CompletedProcess) -> dict[str, str]:
    return {line.split(":", 1)[0].split("  ", 1)[1]: line for line in result.stdout.splitlines() if "  " in line}


def test_a_reporter_role_a_loopback_report_url_and_no_worker_are_each_a_problem(tmp_path):
    with FakeGitLab() as gitlab:
        gitlab.add_member("devops-2026", gitlab.user, access_level=20)
        result = doctor(tmp_path, gitlab, GRADER_REPORT_BASE_URL="http://127.0.0.1:8000")
    found = lines(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert found["GitLab token"].startswith("ok") and "grader-bot" in found["GitLab token"]
    assert found["role in devops-2026"].startswith("PROBLEM") and "Reporter" in found["role in devops-2026"]
    assert "needs Developer" in found["role in devops-2026"]
    assert found["report URL"].startswith("PROBLEM") and "loopback" in found["report URL"]
    assert found["workers"].startswith("PROBLEM")
    assert found["database"].startswith("ok") and found["broker"].startswith("ok")  # control: it can say ok


def test_a_token_without_the_api_scope_or_refused_is_a_problem(tmp_path):
    with FakeGitLab(scopes=("read_api",)) as gitlab:
        gitlab.add_member("devops-2026", gitlab.user, access_level=30)
        narrow = lines(doctor(tmp_path, gitlab))
        refused = lines(doctor(tmp_path, gitlab, GRADER_GITLAB_TOKEN="not-a-token"))
    assert narrow["GitLab token"].startswith("PROBLEM") and "needs the api scope" in narrow["GitLab token"]
    assert narrow["role in devops-2026"].startswith("ok") and "Developer" in narrow["role in devops-2026"]
    assert refused["GitLab token"].startswith("PROBLEM")


def test_a_broker_that_does_not_answer_is_a_problem_not_a_traceback(tmp_path):
    with FakeGitLab() as gitlab:
        gitlab.add_member("devops-2026", gitlab.user, access_level=30)
        result = doctor(tmp_path, gitlab, GRADER_BROKER_URL="redis://127.0.0.1:1/0")
    found = lines(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert found["broker"].startswith("PROBLEM") and "GRADER_BROKER_URL" in found["broker"]
    assert found["database"].startswith("ok")  # the other findings are still made
