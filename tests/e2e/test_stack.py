"""The compose stack, as an operator runs it: compose.yaml with a .env made from .env.example,
started by Debian's docker-compose (1.29) on this machine's engine, with the images that
`scripts/setup --stack` made (redis and postgres: stand-ins where no registry answers).

A push event goes to the stack's webhook; the stack's worker fetches the commit from a
GitLab-compatible server, grades it on the engine, and posts pending, running and success with
5/5 and one comment; the grade is recorded in the stack's PostgreSQL, survives the containers
being recreated (an upgrade), and its backup (`pg_dump`) holds it. `down -v` leaves nothing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import REFERENCE_REPO, ROOT
from tests.support.fake_gitlab import FakeGitLab, push_hook_headers

pytestmark = pytest.mark.docker
DOCKER = "/usr/bin/docker"
SERVICES = ("redis", "postgres", "web", "worker")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_from_example(values: dict[str, str]) -> str:
    """.env.example with `values` filled in: each key's line (commented out or not) is replaced,
    keys the example does not name are appended. What the guide tells an operator to do."""
    lines, done = [], set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        m = re.match(r"^#?([A-Z][A-Z0-9_]*)=", line)
        if m and m.group(1) in values:
            lines.append(f"{m.group(1)}={values[m.group(1)]}")
            done.add(m.group(1))
        else:
            lines.append(line)
    lines += [f"{k}={v}" for k, v in values.items() if k not in done]
    return "\n".join(lines) + "\n"


@dataclass
class Stack:
    project: str
    directory: Path
    web_url: str
    postgres_port: int
    postgres_password: str
    instance: str
    secret: str

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        exe = shutil.which("docker-compose")
        assert exe, "docker-compose is not installed (scripts/setup installs it)"
        return subprocess.run([exe, "-p", self.project, "--project-directory", str(self.directory),
                               "-f", str(ROOT / "compose.yaml"), *args],
                              capture_output=True, text=True, timeout=timeout,
                              env={"PATH": os.environ["PATH"], "DOCKER_HOST": "unix:///var/run/docker.sock"})

    def ok(self, *args: str, timeout: float = 300) -> str:
        result = self.compose(*args, timeout=timeout)
        assert result.returncode == 0, f"docker-compose {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "60").stdout[-6000:]

    def containers(self) -> dict[str, str]:
        """service -> container id, from the labels compose puts on its containers."""
        out = subprocess.run([DOCKER, "ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
                              "--format", '{{.ID}} {{.Label "com.docker.compose.service"}}'],
                             capture_output=True, text=True, timeout=30).stdout
        return {service: cid for cid, service in (line.split() for line in out.splitlines())}

    def health(self) -> dict[str, str]:
        found = {}
        for service, cid in self.containers().items():
            found[service] = subprocess.run([DOCKER, "inspect", "-f", "{{.State.Health.Status}}", cid],
                                            capture_output=True, text=True, timeout=30).stdout.strip()
        return found

    def wait_healthy(self, services: tuple[str, ...] = SERVICES, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while (health := self.health()) and any(health.get(s) != "healthy" for s in services):
            if time.monotonic() > deadline:
                pytest.fail(f"not healthy after {timeout:.0f} s: {health}\n{self.logs()}")
            time.sleep(2)

    def wait_web(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.web_url}/healthz", timeout=2).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        pytest.fail(f"the stack's web service did not answer:\n{self.logs()}")

    def leftovers(self) -> list[str]:
        label = f"label=com.docker.compose.project={self.project}"
        found = []
        for kind in ("ps -a", "network ls", "volume ls"):
            out = subprocess.run([DOCKER, *kind.split(), "-q", "--filter", label], capture_output=True, text=True,
                                 timeout=30).stdout.split()
            found += [f"{kind.split()[0]} {x}" for x in out]
        jobs = subprocess.run([DOCKER, "ps", "-aq", "--filter", f"label=grader.instance={self.instance}"],
                              capture_output=True, text=True, timeout=30).stdout.split()
        return found + [f"job container {x}" for x in jobs]


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    # On 127.0.0.1 of this host: the worker shares the host's network, the web service never calls GitLab.
    with FakeGitLab() as server:
        yield server


@pytest.fixture
def stack(tmp_path, stack_images, gitlab) -> Iterator[Stack]:
    password, secret = secrets.token_hex(8), secrets.token_hex(12)
    redis_port, pg_port, web_port = _free_port(), _free_port(), _free_port()
    instance = f"stack-{secrets.token_hex(4)}"
    (tmp_path / ".env").write_text(env_from_example({
        "GRADER_GITLAB_URL": gitlab.url, "GRADER_GITLAB_TOKEN": gitlab.token, "GRADER_WEBHOOK_SECRET": secret,
        "GRADER_REPORT_BASE_URL": f"http://127.0.0.1:{web_port}",
        "POSTGRES_PASSWORD": password,
        "GRADER_DATABASE_URL": f"postgresql://grader:{password}@postgres/grader",
        "WORKER_DATABASE_URL": f"postgresql://grader:{password}@127.0.0.1:{pg_port}/grader",
        "WORKER_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        # This machine's own Redis and PostgreSQL hold 6379 and 5432.
        "REDIS_HOST_PORT": str(redis_port), "POSTGRES_HOST_PORT": str(pg_port), "GRADER_WEB_PORT": str(web_port),
        "DOCKER_GID": str(Path("/var/run/docker.sock").stat().st_gid),
        "GRADER_IMAGE": stack_images["GRADER_IMAGE"], "REDIS_IMAGE": stack_images["REDIS_IMAGE"],
        "POSTGRES_IMAGE": stack_images["POSTGRES_IMAGE"],
        "GRADER_INSTANCE": instance,  # labels the worker's job containers: nothing may be left
    }))
    s = Stack(project=f"grader-stack-{secrets.token_hex(4)}", directory=tmp_path,
              web_url=f"http://127.0.0.1:{web_port}", postgres_port=pg_port, postgres_password=password,
              instance=instance, secret=secret)
    try:
        yield s
    finally:
        down = s.compose("down", "-v", "-t", "10", timeout=180)
        assert down.returncode == 0, down.stderr
        assert s.leftovers() == []


def test_compose_stack_grades_a_push_and_keeps_the_grade(stack, gitlab, tmp_path):
    project, sha = gitlab.create_repo_project("devops-2026/ivanov-docker", tmp_path / "repos", source=REFERENCE_REPO)
    stack.ok("up", "-d", "--no-build", timeout=300)
    stack.wait_web()

    body = gitlab.push_payload(project, after=sha)
    answer = requests.post(f"{stack.web_url}/webhooks/gitlab", json=body, headers=push_hook_headers(stack.secret),
                           timeout=10)
    assert answer.status_code == 202, answer.text
    final_states = {"success", "failed", "canceled"}
    try:
        FakeGitLab.wait_until(lambda: gitlab.comments or any(s.state in final_states for s in gitlab.statuses),
                              timeout=600, interval=1)
        FakeGitLab.wait_until(lambda: any(s.state in final_states for s in gitlab.statuses), timeout=60)
    except Exception:  # noqa: BLE001 - say what the stack did, then fail
        pytest.fail(f"no grade reached GitLab; statuses {[s.state for s in gitlab.statuses]}\n{stack.logs()}")
    assert gitlab.statuses[-1].state == "success", f"{gitlab.statuses[-1]}\n{stack.logs()}"
    FakeGitLab.wait_until(lambda: gitlab.comments, timeout=60)

    assert [s.state for s in gitlab.statuses if s.sha == sha] == ["pending", "running", "success"]
    final = gitlab.statuses[-1]
    assert (final.description, final.coverage) == ("5/5 · засчитано всё", 100.0)  # the course is Russian
    assert final.target_url.startswith(f"{stack.web_url}/reports/")
    assert len(gitlab.comments) == 1 and "5/5" in gitlab.comments[0].note
    report = requests.get(final.target_url + ".json", timeout=10).json()  # the stack's report page
    assert (report["id"], report["state"], report["sha"], report["report"]["score"]) == (
        answer.json()["submission_id"], "graded", sha, 5)
    stack.wait_healthy()
    doctor = stack.ok("exec", "-T", "worker", "grader", "doctor")  # the guide's first diagnosis
    assert "engine: ok" in doctor and "base image python:3.11.6-slim-bookworm: present" in doctor, doctor
    assert re.search(r"^submissions: .*graded 1", stack.ok("exec", "-T", "web", "grader", "status"), re.M)

    # An upgrade recreates every container; the grade is in the postgres volume, not in a container.
    stack.ok("up", "-d", "--no-build", "--force-recreate", timeout=300)
    stack.wait_web()
    board = json.loads(stack.ok("exec", "-T", "web", "grader", "scoreboard", "--format", "json"))
    [entry] = board["entries"]
    assert (entry["student"], entry["project"], entry["latest_score"], entry["sha"]) == (
        "ivanov-docker", "devops-2026/ivanov-docker", 5.0, sha)

    # The instructor grades one project now, in the worker (the guide's place for it: it needs the engine).
    graded_now = json.loads(stack.ok("exec", "-T", "worker", "grader", "grade", "devops-2026/ivanov-docker",
                                     "--format", "json", timeout=600))
    assert graded_now["score"] == 5

    # The backup the guide prescribes holds the submission.
    dump = stack.ok("exec", "-T", "postgres", "pg_dump", "-U", "grader", "-d", "grader", "--data-only",
                    "--table=submissions")
    assert sha in dump and "devops-2026/ivanov-docker" in dump
