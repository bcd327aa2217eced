"""The whole service, as deployed: `grader serve` and `grader worker` processes, real Redis, real
SQLite and PostgreSQL, real git repositories behind a GitLab-compatible server, the real engine.

A push event goes to the webhook; a Celery worker grades the commit; GitLab receives pending,
running and success statuses and one comment; the scoreboard shows the grade.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import requests

from grader.store import Store
from tests.conftest import REFERENCE_REPO
from tests.support.fake_gitlab import FakeGitLab, push_hook_headers

pytestmark = pytest.mark.docker
SECRET = "e2e-webhook-secret"
INSTANCE = f"e2e-{secrets.token_hex(4)}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    """An empty Redis database of our own (never flush one we did not pick)."""
    for db in range(15, 0, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.dbsize() == 0 and client.set("grader-e2e-lock", INSTANCE, nx=True, ex=3600):
            try:
                yield f"redis://127.0.0.1:6379/{db}"
            finally:
                client.flushdb()
            return
    pytest.fail("no empty Redis database among 1..15")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'grader.db'}"
    return request.getfixturevalue("pg_url")


@contextmanager
def process(args: list[str], env: dict, log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "grader.cli", *args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """A process group started with start_new_session: SIGTERM (a worker finishes its cleanup),
    SIGKILL after 30 s; nothing when it has ended already."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def service(tmp_path: Path, gitlab: FakeGitLab, broker_url: str, database_url: str, *, worker: bool = True):
    port = _free_port()
    env = {**os.environ, "GRADER_GITLAB_URL": gitlab.url, "GRADER_GITLAB_TOKEN": gitlab.token,
           "GRADER_WEBHOOK_SECRET": SECRET, "GRADER_BROKER_URL": broker_url, "GRADER_DATABASE_URL": database_url,
           "GRADER_REPORT_BASE_URL": f"http://127.0.0.1:{port}", "GRADER_INSTANCE": INSTANCE,
           "GRADER_WORK_DIR": str(tmp_path / "work")}
    with process(["serve", "--port", str(port)], env, tmp_path / "serve.log"):
        _wait_http(f"http://127.0.0.1:{port}/healthz", tmp_path / "serve.log")
        if worker:
            with process(["worker", "--concurrency", "1"], env, tmp_path / "worker.log"):
                yield f"http://127.0.0.1:{port}", env
        else:
            yield f"http://127.0.0.1:{port}", env


def _wait_http(url: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            time.sleep(0.1)
    pytest.fail(f"{url} did not answer: {log.read_text()[-2000:]}")


def push(base: str, gitlab: FakeGitLab, project, sha: str, **headers) -> dict:
    body = gitlab.push_payload(project, after=sha)
    r = requests.post(f"{base}/webhooks/gitlab", json=body, headers=push_hook_headers(SECRET, **headers), timeout=5)
    assert r.status_code == 202, r.text
    return r.json()


def scoreboard(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-m", "grader.cli", "scoreboard", "--format", "json"], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out)


def states(gitlab: FakeGitLab, sha: str) -> list[str]:
    return [s.state for s in gitlab.statuses if s.sha == sha]


def test_a_push_is_graded_and_the_grade_appears_on_the_commit(tmp_path, broker_url, database_url):
    with FakeGitLab() as gitlab:
        project, sha = gitlab.create_repo_project("devops-2026/ivanov-docker", tmp_path / "repos",
                                                  source=REFERENCE_REPO)
        with service(tmp_path, gitlab, broker_url, database_url) as (base, env):
            answer = push(base, gitlab, project, sha)
            FakeGitLab.wait_until(lambda: "success" in states(gitlab, sha) and gitlab.comments, timeout=300)
            board = scoreboard(env)
            status = _cli(env, "status").stdout
            final = gitlab.statuses[-1]
            report = requests.get(final.target_url + ".json", timeout=5).json()  # while the service runs
    assert states(gitlab, sha) == ["pending", "running", "success"]
    assert (final.name, final.description, final.coverage) == ("autograder", "5/5 · засчитано всё", 100.0)
    assert (report["id"], report["state"]) == (answer["submission_id"], "graded")
    assert re.search(r"^workers: 1 answering \(celery@", status, re.M), status
    assert "longest wait" not in status  # nothing queued
    assert len(gitlab.comments) == 1 and "5/5" in gitlab.comments[0].note
    [entry] = board["entries"]
    assert (entry["student"], entry["project"], entry["latest_score"], entry["max_score"], entry["sha"]) == (
        "ivanov-docker", "devops-2026/ivanov-docker", 5.0, 5.0, sha)
    # For a dispute: the grading's steps in the worker's log, and its build logs kept per submission.
    workspace = f"sub-{answer['submission_id']}"
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")
    assert f"{workspace}: single: building" in worker_log and f"{workspace}: 5.0/5.0" in worker_log, worker_log[-3000:]
    logs = tmp_path / "work" / "logs" / workspace
    kept = {p.name for p in logs.iterdir()}  # each variant's build log, and the copy of its file that was built
    assert {f"{v}.build.log" for v in ("single", "multistage", "nonroot")} <= kept, kept
    assert {f"{v}.Dockerfile" for v in ("single", "multistage", "nonroot")} <= kept, kept
    assert "poetry" in (logs / "multistage.build.log").read_text(errors="replace")
    store = Store(database_url)
    try:  # which images were graded, by the engine's ids
        images = store.get(answer["submission_id"]).image_digests
    finally:
        store.close()
    assert images == [v["image_id"] for v in report["report"]["variants"]]
    assert all(i.startswith("sha256:") for i in images)


def test_newer_push_supersedes_a_queued_one_and_gitlab_outage_delays_but_loses_nothing(
        tmp_path, broker_url, database_url):
    with FakeGitLab() as gitlab:
        project, old_sha = gitlab.create_repo_project("devops-2026/petrov-docker", tmp_path / "repos",
                                                      source=REFERENCE_REPO)
        from tests.support.fake_gitlab import commit_all

        new_sha = commit_all(project.repo_dir, "second try", files={"notes.txt": "v2\n"})
        with service(tmp_path, gitlab, broker_url, database_url, worker=False) as (base, env):
            # Both pushes arrive before any worker runs: the older one must not be graded.
            first = push(base, gitlab, project, old_sha)
            push(base, gitlab, project, new_sha)
            duplicate = push(base, gitlab, project, new_sha)
            assert duplicate["duplicate"] is True
            gitlab.fail_for(8, status=500, path_contains="/statuses")  # GitLab down for a while
            with process(["worker", "--concurrency", "1"], env, tmp_path / "worker.log"):
                FakeGitLab.wait_until(lambda: "success" in states(gitlab, new_sha) and gitlab.comments, timeout=300)
            old_link = next(s.target_url for s in gitlab.statuses if s.sha == old_sha)
            report = requests.get(f"{old_link}.json", timeout=5).json()
    assert report["id"] == first["submission_id"]
    assert report["state"] == "superseded"
    assert states(gitlab, old_sha) == ["pending", "canceled"]
    assert states(gitlab, new_sha) == ["pending", "running", "success"]  # each once, in order
    assert len(gitlab.comments) == 1


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def _env(gitlab: FakeGitLab, broker_url: str, database_url: str, tmp_path: Path) -> dict:
    return {**os.environ, "GRADER_GITLAB_URL": gitlab.url, "GRADER_GITLAB_TOKEN": gitlab.token,
            "GRADER_WEBHOOK_SECRET": SECRET, "GRADER_BROKER_URL": broker_url, "GRADER_DATABASE_URL": database_url,
            "GRADER_INSTANCE": INSTANCE, "GRADER_WORK_DIR": str(tmp_path / "work")}


def test_instructor_grades_one_project_now_without_touching_gitlab_or_the_database(tmp_path, broker_url):
    with FakeGitLab() as gitlab:
        gitlab.create_repo_project("devops-2026/sidorov-docker", tmp_path / "repos", source=REFERENCE_REPO)
        env = _env(gitlab, broker_url, f"sqlite:///{tmp_path / 'grader.db'}", tmp_path)
        dry = _cli(env, "grade", "devops-2026/sidorov-docker", "--format", "json")
        untouched = json.loads(_cli(env, "scoreboard", "--format", "json").stdout)
        nothing = _cli(env, "regrade", "--project", "devops-2026/sidorov-docker")
        posted = _cli(env, "grade", "devops-2026/sidorov-docker", "--post", "--format", "json")
        statuses, comments = [s.state for s in gitlab.statuses], len(gitlab.comments)
        preview = _cli(env, "regrade", "--project", "devops-2026/sidorov-docker", "--dry-run", "--format", "json")
        after_preview = (len(gitlab.statuses), len(gitlab.comments))
        regrade = _cli({**env, "GRADER_ACTOR": "prof-smirnova"}, "regrade", "--project", "devops-2026/sidorov-docker",
                       "--reason", "rubric 1.1: exec form")
        board = json.loads(_cli(env, "scoreboard", "--format", "json").stdout)
        csv_text = _cli(env, "scoreboard", "--format", "csv").stdout
        status = _cli(env, "status")
    redis.Redis.from_url(broker_url).delete("celery")  # no worker here: drop the queued regrade
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["score"] == 5
    assert untouched["entries"] == [] and gitlab.statuses[:0] == []  # --no-post wrote nothing anywhere
    assert nothing.returncode == 1 and "nothing matches" in nothing.stderr  # a regrade of nothing is an error
    assert posted.returncode == 0 and json.loads(posted.stdout)["score"] == 5, posted.stderr
    assert (statuses, comments) == (["running", "success"], 1)
    assert json.loads(preview.stdout) == [{"student": "sidorov-docker", "project": "devops-2026/sidorov-docker",
                                           "old_score": 5.0, "new_score": 5.0}], preview.stderr
    assert after_preview == (2, 1)  # the dry run posted nothing
    assert "requeued 1 submission(s)" in regrade.stdout, regrade.stderr
    assert re.search(r"^submissions: .*queued 1", status.stdout, re.M), status.stdout
    assert board["entries"][0]["best_score"] == 5.0  # the previous grade stays while it is regraded
    store = Store(env["GRADER_DATABASE_URL"])
    try:  # the history: the grade given, then who asked for the regrade and why
        [sub_id] = [s.id for s in store.graded_summaries()]
        history = [(e.kind, e.actor, e.reason) for e in store.events(sub_id)]
    finally:
        store.close()
    assert history == [("graded", None, None), ("regrade_requested", "prof-smirnova", "rubric 1.1: exec form")]
    header, row = csv_text.splitlines()
    assert header.endswith(",multistage,nonroot,single")
    assert row.startswith("devops-2026/sidorov-docker,sidorov-docker,5,5,5,")


def test_grade_group_queues_every_project_once_and_status_shows_them(tmp_path, broker_url):
    with FakeGitLab() as gitlab:
        for name in ("a-docker", "b-docker"):
            gitlab.create_repo_project(f"devops-2026/{name}", tmp_path / "repos", source=REFERENCE_REPO)
        gitlab.add_project("devops-2026/empty-docker")  # no commits yet
        env = _env(gitlab, broker_url, f"sqlite:///{tmp_path / 'grader.db'}", tmp_path)
        first = _cli(env, "grade-group", "devops-2026")
        again = _cli(env, "grade-group", "devops-2026")
        status = _cli(env, "status")
    assert first.returncode == 0, first.stderr
    assert "queued 2, already graded or queued 0, skipped 1" in first.stdout
    assert "queued 0, already graded or queued 2, skipped 1" in again.stdout
    assert re.search(r"^submissions: .*queued 2", status.stdout, re.M), status.stdout
    assert re.search(r"^workers: none answering", status.stdout, re.M), status.stdout  # said, not hidden
    assert status.returncode == 1  # and told to monitoring
    assert re.search(r"^longest wait: 0 min \(queued since ", status.stdout, re.M), status.stdout
    redis.Redis.from_url(broker_url).delete("celery")  # no worker here: drop the queued tasks


def test_regrade_stuck_queues_again_what_redis_lost(tmp_path, broker_url):
    """Redis restored empty (or lost): the database still knows what was queued."""
    with FakeGitLab() as gitlab:
        project, sha = gitlab.create_repo_project("devops-2026/lost-docker", tmp_path / "repos", source=REFERENCE_REPO)
        env = _env(gitlab, broker_url, f"sqlite:///{tmp_path / 'grader.db'}", tmp_path)
        with service(tmp_path, gitlab, broker_url, env["GRADER_DATABASE_URL"], worker=False) as (base, _):
            answer = push(base, gitlab, project, sha)
        queue = redis.Redis.from_url(broker_url)
        queue.delete("celery")  # the queue is gone, the submission is still "queued" in the database
        result = _cli(env, "regrade", "--stuck")
        messages = [json.loads(m) for m in queue.lrange("celery", 0, -1)]
        queue.delete("celery")
    assert result.returncode == 0, result.stderr
    assert "sent again 1 submission(s)" in result.stdout
    assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages] == [
        ("grader.grade", f"({answer['submission_id']},)")]


def test_a_job_redis_lost_is_graded_without_an_operator(tmp_path, broker_url):
    """The queue is emptied after the push was accepted (Redis restarted without its data): the
    workers' reconciler sends it again by itself, and it is graded once."""
    with FakeGitLab() as gitlab:
        project, sha = gitlab.create_repo_project("devops-2026/lost-again-docker", tmp_path / "repos",
                                                  source=REFERENCE_REPO)
        database_url = f"sqlite:///{tmp_path / 'grader.db'}"
        with service(tmp_path, gitlab, broker_url, database_url, worker=False) as (base, env):
            answer = push(base, gitlab, project, sha)
            redis.Redis.from_url(broker_url).delete("celery")  # lost
            quick = {**env, "GRADER_RECONCILE_S": "2"}
            with process(["worker", "--concurrency", "1"], quick, tmp_path / "worker.log"):
                FakeGitLab.wait_until(lambda: "success" in states(gitlab, sha) and gitlab.comments, timeout=300)
            board = scoreboard(env)
    assert states(gitlab, sha) == ["pending", "running", "success"]
    assert len(gitlab.comments) == 1
    assert board["entries"][0]["latest_score"] == 5.0 and answer["duplicate"] is False
    assert "re-sent 1 submission(s) the broker no longer held" in (tmp_path / "worker.log").read_text()


def test_a_push_to_a_branch_that_is_not_graded_says_so_on_its_commit(tmp_path, broker_url):
    """Never left waiting in silence: the commit gets a `skipped` status naming the graded branches."""
    with FakeGitLab() as gitlab:
        project, sha = gitlab.create_repo_project("devops-2026/branchy-docker", tmp_path / "repos",
                                                  source=REFERENCE_REPO)
        database_url = f"sqlite:///{tmp_path / 'grader.db'}"
        with service(tmp_path, gitlab, broker_url, database_url) as (base, env):
            body = gitlab.push_payload(project, after=sha, ref="refs/heads/feature")
            r = requests.post(f"{base}/webhooks/gitlab", json=body, headers=push_hook_headers(SECRET), timeout=5)
            assert r.status_code == 202, r.text
            FakeGitLab.wait_until(lambda: states(gitlab, sha), timeout=60)
            time.sleep(2)  # a grading, if one were wrongly queued, would post now
    assert states(gitlab, sha) == ["skipped"]
    assert gitlab.statuses[0].description == "не проверяется: ветка feature; проверяются main, master"
    assert gitlab.comments == []
