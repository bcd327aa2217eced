"""Two worker hosts on this machine, and faults on purpose (`pytest -m chaos` runs them alone).

Each host is a network namespace with its own dockerd (scripts/hosts); its `grader worker` reaches
Redis, PostgreSQL and the GitLab-compatible server of the control host only through its veth. The
webhook service runs on the control host. Every test asserts that every push ends with exactly one
final status and one comment, the scoreboard matches, and nothing is left on either engine.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import docker
import pytest
import requests

from grader.engine import LABEL_INSTANCE, detect_build_cli
from grader.store import State, Store
from tests.conftest import REFERENCE_REPO, ROOT
from tests.e2e.test_service import INSTANCE, SECRET, push, scoreboard, service, stop
from tests.support.fake_gitlab import FakeGitLab, push_hook_headers
from tests.support.postgres import private_postgres

pytestmark = [pytest.mark.docker, pytest.mark.chaos]
HOSTS = ROOT / "scripts" / "hosts"
FINAL = {"success", "failed", "canceled"}
# Short beats keep the faults quick; production defaults are 5 s, 30 s and 15 s.
QUICK = {"GRADER_HEARTBEAT_S": "1", "GRADER_TAKEOVER_AFTER_S": "4", "GRADER_RECONCILE_S": "2",
         "GRADER_VERDICT_CACHE": "0"}  # every push is built: the throughput is the engines'


@pytest.fixture(scope="module")
def hosts() -> Iterator[list[int]]:
    numbers = [1, 2]
    for n in numbers:
        up = subprocess.run([str(HOSTS), "up", str(n), "--forward", "6379,5432"], capture_output=True, text=True,
                            timeout=600)
        assert up.returncode == 0, up.stderr[-3000:]
    try:
        yield numbers
    finally:
        for n in numbers:
            subprocess.run([str(HOSTS), "down", str(n)], capture_output=True, timeout=120)


def _engine(n: int) -> docker.DockerClient:
    return docker.DockerClient(base_url=f"unix:///run/grader-hosts/h{n}/docker.sock", timeout=30)


def _control(url: str, n: int) -> str:
    return url.replace("127.0.0.1", f"10.231.{n}.1")


@contextmanager
def worker(n: int, env: dict, log: Path, **extra: str) -> Iterator[subprocess.Popen]:
    ports = [str(urlsplit(env[name].replace("+psycopg", "")).port or 5432)
             for name in ("GRADER_GITLAB_URL", "GRADER_BROKER_URL", "GRADER_DATABASE_URL")]
    subprocess.run([str(HOSTS), "forward", str(n), *ports], check=True, timeout=30)
    host_env = {**env, **QUICK, **extra, "GRADER_BROKER_URL": _control(env["GRADER_BROKER_URL"], n),
                "GRADER_DATABASE_URL": _control(env["GRADER_DATABASE_URL"], n),
                "GRADER_GITLAB_URL": _control(env["GRADER_GITLAB_URL"], n)}
    with log.open("ab") as out:
        proc = subprocess.Popen([str(HOSTS), "exec", str(n), sys.executable, "-m", "grader.cli", "worker",
                                 "--concurrency", "1", "-n", f"h{n}@%h"], env=host_env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop(proc)


def _projects(gitlab: FakeGitLab, tmp: Path, count: int, prefix: str) -> list[tuple[object, str]]:
    return [gitlab.create_repo_project(f"devops-2026/{prefix}{i:02d}-docker", tmp / "repos", source=REFERENCE_REPO)
            for i in range(count)]


# Every project holds the same reference commit, so a push is (project id, sha), never the sha alone.
Push = tuple[int, str]


def _pushed(base: str, gitlab: FakeGitLab, project, sha: str) -> Push:
    push(base, gitlab, project, sha)
    return project.id, sha


def _states(gitlab: FakeGitLab, one: Push) -> list[str]:
    return [s.state for s in gitlab.statuses if (s.project_id, s.sha) == one]


def _comments(gitlab: FakeGitLab, one: Push) -> int:
    return sum(1 for c in gitlab.comments if (c.project_id, c.sha) == one)


def _finished(gitlab: FakeGitLab, pushes: list[Push]) -> bool:
    return all(any(s in FINAL for s in _states(gitlab, p)) and _comments(gitlab, p) for p in pushes)


def _graded_by(log: Path) -> int:
    return len(re.findall(r"Task grader\.grade\[[^\]]+\] succeeded", log.read_text(errors="replace")))


def _assert_once_each(gitlab: FakeGitLab, pushes: list[Push]) -> None:
    for one in pushes:
        seen = _states(gitlab, one)
        assert [s for s in seen if s in FINAL] == ["success"], (one, seen)
        assert seen[0] == "pending" and seen[-1] == "success", (one, seen)
        assert _comments(gitlab, one) == 1, one
    assert len(gitlab.comments) == len(pushes)


def _left_on(n: int) -> list[str]:
    client = _engine(n)
    mine = {"label": f"{LABEL_INSTANCE}={INSTANCE}"}
    return [f"container {c.name}" for c in client.containers.list(all=True, filters=mine)] + \
        [f"network {x.name}" for x in client.networks.list(filters=mine)]


def test_pushes_spread_over_two_hosts_are_each_graded_once_by_either(tmp_path, broker_url, pg_url, hosts):
    with FakeGitLab() as gitlab, service(tmp_path, gitlab, broker_url, pg_url, worker=False) as (base, env):
        # one host alone first: the yardstick for two
        alone = _projects(gitlab, tmp_path, 4, "alone")
        with worker(1, env, tmp_path / "h1.log"):
            warm = [_pushed(base, gitlab, *alone[0])]  # warms host 1's build cache, not timed
            FakeGitLab.wait_until(lambda: _finished(gitlab, warm), timeout=600, interval=0.5)
            started = time.monotonic()
            timed = [_pushed(base, gitlab, project, sha) for project, sha in alone[1:]]
            FakeGitLab.wait_until(lambda: _finished(gitlab, timed), timeout=600, interval=0.5)
            one_host = len(timed) / (time.monotonic() - started)
        both = _projects(gitlab, tmp_path, 16, "both")  # 20 pushes in all
        with worker(1, env, tmp_path / "h1.log"), worker(2, env, tmp_path / "h2.log"):
            started = time.monotonic()
            spread = [_pushed(base, gitlab, project, sha) for project, sha in both]
            FakeGitLab.wait_until(lambda: _finished(gitlab, spread), timeout=1200, interval=0.5)
            two_hosts = len(spread) / (time.monotonic() - started)
            time.sleep(3)  # a doubled grading or post would land now
        pushes = warm + timed + spread
        board = scoreboard(env)
    by_host = {n: _graded_by(tmp_path / f"h{n}.log") for n in hosts}
    print(f"throughput: one host {one_host * 3600:.0f} jobs/h, two hosts {two_hosts * 3600:.0f} jobs/h "
          f"({two_hosts / one_host:.2f}x); graded by host: {by_host}")
    _assert_once_each(gitlab, pushes)
    assert by_host[2] >= 1 and by_host[1] >= len(alone)
    assert sum(by_host.values()) == len(pushes)
    assert sorted(e["latest_score"] for e in board["entries"]) == [5.0] * len(pushes)
    assert _left_on(1) == [] and _left_on(2) == []


def test_a_worker_killed_mid_build_on_one_host_is_finished_on_the_other_once(tmp_path, broker_url, pg_url,
                                                                            hosts):
    with FakeGitLab() as gitlab, service(tmp_path, gitlab, broker_url, pg_url, worker=False) as (base, env):
        store = Store(pg_url)
        project, sha = _projects(gitlab, tmp_path, 1, "killed")[0]
        with worker(2, env, tmp_path / "h2.log") as victim:
            one = _pushed(base, gitlab, project, sha)
            FakeGitLab.wait_until(lambda: store.running_since(), timeout=300, interval=0.1)
            submission = store.running_since()[0][0]
            time.sleep(1.5)  # into the builds
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
            killed_at = time.monotonic()
        got = store.get(submission)
        assert got is not None and got.state == State.RUNNING, "control: the killed worker had not finished"
        with worker(1, env, tmp_path / "h1.log"):
            FakeGitLab.wait_until(lambda: _finished(gitlab, [one]), timeout=600, interval=0.5)
            taken_over = time.monotonic() - killed_at
            time.sleep(3)
        # the killed host's worker comes back: it removes what its predecessor left on its engine
        with worker(2, env, tmp_path / "h2.log", GRADER_GC_AFTER_S="1"):
            FakeGitLab.wait_until(lambda: _left_on(2) == [], timeout=120, interval=1)
        board = scoreboard(env)
        store.close()
    print(f"takeover: graded on host 1 {taken_over:.1f} s after host 2's worker was SIGKILLed")
    _assert_once_each(gitlab, [one])
    assert "took over 1 grading(s)" in (tmp_path / "h1.log").read_text()
    assert board["entries"][0]["latest_score"] == 5.0
    assert _left_on(1) == [] and _left_on(2) == []


def _holder(broker: str) -> tuple[int, str] | None:
    """(submission, worker name) of the grading someone beats for, if any."""
    import redis

    from grader import heartbeat

    held = heartbeat.held(redis.Redis.from_url(broker), INSTANCE) or {}
    return next(((i, h["holder"]) for i, h in held.items()), None)


def _running_on(n: int) -> bool:
    return bool(_engine(n).containers.list(filters={"label": f"{LABEL_INSTANCE}={INSTANCE}"}))


@pytest.mark.parametrize("phase", ["build", "probe"])
def test_a_host_whose_engine_is_killed_mid_grading_stops_taking_jobs_and_the_other_grades_it(
        tmp_path, broker_url, pg_url, hosts, phase):
    if phase == "build":  # cold builds (pip downloads) last long enough to be killed in the middle
        for n in hosts:
            _engine(n).api.prune_builds(all=True)
    with FakeGitLab() as gitlab, service(tmp_path, gitlab, broker_url, pg_url, worker=False) as (base, env):
        project, sha = _projects(gitlab, tmp_path, 1, "engine")[0]
        with worker(1, env, tmp_path / "h1.log", GRADER_GC_AFTER_S="1"), \
                worker(2, env, tmp_path / "h2.log", GRADER_GC_AFTER_S="1"):
            time.sleep(3)  # both ready: either may take the job
            one = _pushed(base, gitlab, project, sha)
            _, holder = FakeGitLab.wait_until(lambda: _holder(broker_url), timeout=300, interval=0.1)
            victim = 1 if holder.startswith("h1@") else 2
            if phase == "build":
                time.sleep(3)
                assert not _running_on(victim), "control: still building (no container yet)"
            else:
                FakeGitLab.wait_until(lambda: _running_on(victim), timeout=600, interval=0.1)
            pid = int(Path(f"/run/grader-hosts/h{victim}/dockerd.pid").read_text())
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            FakeGitLab.wait_until(lambda: _finished(gitlab, [one]), timeout=600, interval=0.5)
            recovered = time.monotonic() - killed_at
            # the engine comes back: its worker takes jobs again and cleans what the kill left
            up = subprocess.run([str(HOSTS), "up", str(victim)], capture_output=True, text=True, timeout=300)
            assert up.returncode == 0, up.stderr[-2000:]
            log = tmp_path / f"h{victim}.log"
            FakeGitLab.wait_until(lambda: "answers again" in log.read_text(errors="replace"), timeout=120)
            FakeGitLab.wait_until(lambda: _left_on(victim) == [], timeout=120, interval=1)
        board = scoreboard(env)
    print(f"engine killed on host {victim} mid-{phase}: graded on the other host {recovered:.1f} s later")
    victim_log = (tmp_path / f"h{victim}.log").read_text(errors="replace")
    other_log = (tmp_path / f"h{3 - victim}.log").read_text(errors="replace")
    _assert_once_each(gitlab, [one])
    assert "does not answer: it takes no jobs until it does" in victim_log
    assert _graded_by(tmp_path / f"h{3 - victim}.log") == 1
    assert re.search(r"Docker engine (stopped answering|is not reachable)", victim_log), victim_log[-3000:]
    assert board["entries"][0]["latest_score"] == 5.0  # never scored as the student's failed build
    assert "took over" not in other_log  # a retry, not a takeover: the worker was alive
    assert _left_on(1) == [] and _left_on(2) == []


def _fill(n: int, leave_bytes: int) -> None:
    """Fill host n's engine disk with build cache (no image holds it: the grader's clean-up may
    clear it), leaving `leave_bytes` free."""
    data = Path(f"/var/lib/grader-hosts/h{n}/docker")
    free = os.statvfs(data).f_bavail * os.statvfs(data).f_frsize
    size = max(0, free - leave_bytes)
    dockerfile = f"FROM python:3.11.6-slim-bookworm\nRUN fallocate -l {size} /filler\n"
    cli = detect_build_cli(None).path  # the engine's own BuildKit, as the grader builds
    result = subprocess.run([cli, "build", "-o", "type=tar,dest=/dev/null", "-"], input=dockerfile, text=True,
                            capture_output=True, timeout=300,
                            env={**os.environ, "DOCKER_HOST": f"unix:///run/grader-hosts/h{n}/docker.sock",
                                 "DOCKER_BUILDKIT": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    left = os.statvfs(data).f_bavail * os.statvfs(data).f_frsize
    assert left < leave_bytes * 2, f"control: the disk is full now ({left} bytes free)"


def test_a_full_engine_disk_leaves_the_submission_ungradable_with_the_reason_and_the_next_is_graded(
        tmp_path, broker_url, pg_url):
    up = subprocess.run([str(HOSTS), "up", "3", "--forward", "6379,5432", "--disk", "1600M"], capture_output=True,
                        text=True, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]
    try:
        _fill(3, leave_bytes=30 * 2**20)
        with FakeGitLab() as gitlab, service(tmp_path, gitlab, broker_url, pg_url, worker=False) as (base, env):
            (p1, sha1), (p2, sha2) = _projects(gitlab, tmp_path, 2, "disk")
            store = Store(pg_url)
            with worker(3, env, tmp_path / "h3.log"):
                first = _pushed(base, gitlab, p1, sha1)
                FakeGitLab.wait_until(lambda: any(s in FINAL for s in _states(gitlab, first)), timeout=600,
                                      interval=0.5)
                second = _pushed(base, gitlab, p2, sha2)
                FakeGitLab.wait_until(lambda: _finished(gitlab, [second]), timeout=900, interval=0.5)
            ungradable = [s for s in store.recent_failures() if s.project_id == p1.id]
            store.close()
            board = scoreboard(env)
        log = (tmp_path / "h3.log").read_text(errors="replace")
        assert _states(gitlab, first)[-1] == "canceled" and _comments(gitlab, first) == 0  # no grade, no report
        assert "не ваша ошибка" in [s for s in gitlab.statuses if (s.project_id, s.sha) == first][-1].description
        assert ungradable and "no space left on device" in (ungradable[0].error or "")
        assert "the engine's disk was full" in log
        assert [s for s in _states(gitlab, second) if s in FINAL] == ["success"] and _comments(gitlab, second) == 1
        assert [e["latest_score"] for e in board["entries"] if e["project"] == p2.path_with_namespace] == [5.0]
        assert _left_on(3) == []
    finally:
        subprocess.run([str(HOSTS), "down", "3"], capture_output=True, timeout=120)


def _wait_all(gitlab: FakeGitLab, pushes: list[Push], timeout: float) -> None:
    FakeGitLab.wait_until(lambda: _finished(gitlab, pushes), timeout=timeout, interval=0.5)


def test_gitlab_answering_502_for_two_minutes_delays_but_every_grade_arrives_once_in_order(
        tmp_path, broker_url, pg_url, hosts):
    with FakeGitLab() as gitlab, service(tmp_path, gitlab, broker_url, pg_url, worker=False) as (base, env):
        with worker(1, env, tmp_path / "h1.log"), worker(2, env, tmp_path / "h2.log"):
            time.sleep(3)
            projects = _projects(gitlab, tmp_path, 3, "outage")
            outage = gitlab.fail_for(120, 502)  # archives, statuses, comments: everything answers 502
            pushes = [_pushed(base, gitlab, project, sha) for project, sha in projects]
            _wait_all(gitlab, pushes, timeout=900)
            time.sleep(3)
        board = scoreboard(env)
    for one in pushes:
        assert _states(gitlab, one) == ["pending", "running", "success"], (one, _states(gitlab, one))
    _assert_once_each(gitlab, pushes)
    assert outage.hits >= 2 * len(pushes), "control: the graders did meet the outage (archives and posts)"
    assert sorted(e["latest_score"] for e in board["entries"]) == [5.0] * len(pushes)
    assert _left_on(1) == [] and _left_on(2) == []


@contextmanager
def private_redis(tmp: Path) -> Iterator[tuple[str, Callable[[], None]]]:
    """A Redis of this test's own (the machine's is shared), and a way to restart it empty."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(tmp)]
    procs = [subprocess.Popen(args, stdout=subprocess.DEVNULL)]

    def ready() -> None:
        import redis

        FakeGitLab.wait_until(lambda: _pings(redis.Redis(port=port, socket_timeout=1)), timeout=20)

    def restart_empty() -> None:
        procs[-1].kill()  # SIGKILL: nothing saved, nothing kept
        procs[-1].wait(timeout=10)
        procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        ready()

    ready()
    try:
        yield f"redis://127.0.0.1:{port}/0", restart_empty
    finally:
        procs[-1].kill()
        procs[-1].wait(timeout=10)


def _pings(client) -> bool:
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_redis_restarted_empty_while_jobs_wait_loses_none_and_doubles_none(tmp_path, pg_url, hosts):
    with FakeGitLab() as gitlab, private_redis(tmp_path) as (broker, restart_empty), \
            service(tmp_path, gitlab, broker, pg_url, worker=False) as (base, env):
        projects = _projects(gitlab, tmp_path, 4, "lost")
        pushes = [_pushed(base, gitlab, project, sha) for project, sha in projects]  # no worker yet: all wait
        restart_empty()  # the broker forgot every job
        with worker(1, env, tmp_path / "h1.log"), worker(2, env, tmp_path / "h2.log"):
            _wait_all(gitlab, pushes, timeout=900)
            time.sleep(3)
        board = scoreboard(env)
    logs = (tmp_path / "h1.log").read_text(errors="replace") + (tmp_path / "h2.log").read_text(errors="replace")
    _assert_once_each(gitlab, pushes)
    assert re.search(r"re-sent \d+ submission\(s\) the broker no longer held", logs)
    assert sum(_graded_by(tmp_path / f"h{n}.log") for n in hosts) >= len(pushes)
    assert sorted(e["latest_score"] for e in board["entries"]) == [5.0] * len(pushes)
    assert _left_on(1) == [] and _left_on(2) == []


def _push_as_gitlab_does(base: str, gitlab: FakeGitLab, project, sha: str, answers: list[int]) -> Push:
    """GitLab retries a delivery that failed (5xx, no answer) until one is accepted."""
    body = gitlab.push_payload(project, after=sha)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            r = requests.post(f"{base}/webhooks/gitlab", json=body, headers=push_hook_headers(SECRET), timeout=10)
            answers.append(r.status_code)
            if r.status_code == 202:
                return project.id, sha
        except requests.RequestException:
            answers.append(0)
        time.sleep(0.5)
    pytest.fail(f"the push of {project.path_with_namespace} was never accepted: {answers[-10:]}")


def test_postgresql_restarted_while_pushes_arrive_and_jobs_finish_loses_no_acknowledged_push(
        tmp_path, broker_url, hosts):
    from concurrent.futures import ThreadPoolExecutor

    with FakeGitLab() as gitlab, private_postgres() as pg, \
            service(tmp_path, gitlab, broker_url, pg.url, worker=False) as (base, env):
        projects = _projects(gitlab, tmp_path, 6, "pg")
        answers: list[int] = []
        with worker(1, env, tmp_path / "h1.log"), worker(2, env, tmp_path / "h2.log"), \
                ThreadPoolExecutor(max_workers=4) as gitlab_deliveries:
            pushes = [_push_as_gitlab_does(base, gitlab, p, sha, answers) for p, sha in projects[:3]]
            FakeGitLab.wait_until(lambda: any("running" in _states(gitlab, one) for one in pushes), timeout=300)
            # down while jobs run, and while the next pushes arrive (GitLab retries them)
            outage = gitlab_deliveries.submit(pg.down_for, 8)
            time.sleep(2)
            late = [gitlab_deliveries.submit(_push_as_gitlab_does, base, gitlab, p, sha, answers)
                    for p, sha in projects[3:]]
            outage.result(timeout=120)
            pushes += [f.result(timeout=180) for f in late]
            _wait_all(gitlab, pushes, timeout=900)
            time.sleep(3)
        board = scoreboard(env)
    print(f"webhook answers during the restart: {sorted(set(answers))}")
    assert set(answers) <= {202, 503}, answers  # a retryable 503, never a 500
    assert 503 in answers, "control: some pushes did arrive while the database was down"
    _assert_once_each(gitlab, pushes)
    assert sorted(e["latest_score"] for e in board["entries"]) == [5.0] * len(pushes)
    assert _left_on(1) == [] and _left_on(2) == []


def test_on_a_worker_host_student_code_reaches_nothing_outside_its_job(tmp_path, hosts):
    """The isolation tests (tests/integration/test_hostile.py), run again inside worker host 1 against
    its own engine and firewall; then a build step there tries the control host's Redis, which the
    worker itself reaches through the veth."""
    inside = subprocess.run([str(HOSTS), "exec", "1", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(ROOT / "tests" / "integration" / "test_hostile.py"), "-k", "reach or isolation"],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert inside.returncode == 0 and " passed" in inside.stdout, inside.stdout[-3000:]
    assert "deselected" in inside.stdout and "8 passed" in inside.stdout  # control: the tests did run
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "Dockerfile.single").write_text(
        "FROM python:3.11.6-slim-bookworm\n"
        f"RUN python -c \"import socket; socket.create_connection(('10.231.1.1', 6379), 2); print('REACHED')\" "
        f"|| echo blocked {os.getpid()}\n", encoding="utf-8")
    worker_sees = subprocess.run([str(HOSTS), "exec", "1", "redis-cli", "-h", "10.231.1.1", "ping"],
                                 capture_output=True, text=True, timeout=30)
    assert worker_sees.stdout.strip() == "PONG"  # control: the host itself does reach it
    check = subprocess.run([str(HOSTS), "exec", "1", sys.executable, "-m", "grader.cli", "check", str(repo), "-q",
                            "--no-cache", "--logs", str(tmp_path / "logs"), "--reference",
                            str(ROOT / "tests" / "fixtures" / "reference" / "counter-backend")],
                           capture_output=True, text=True, timeout=600, cwd=ROOT)
    log = (tmp_path / "logs" / "single.build.log").read_text()
    assert re.search(rf"^#\d+ [\d.]+ blocked {os.getpid()}$", log, re.M), (check.stderr[-2000:], log[-2000:])
    assert not re.search(r"^#\d+ [\d.]+ REACHED$", log, re.M)


def test_grader_doctor_on_a_worker_host_says_whether_build_steps_can_reach_the_broker(hosts):
    def doctor() -> subprocess.CompletedProcess:
        env = {**os.environ, "GRADER_BROKER_URL": "redis://10.231.1.1:6379/0",
               "GRADER_DATABASE_URL": "postgresql+psycopg://postgres@10.231.1.1:5432/postgres"}
        return subprocess.run([str(HOSTS), "exec", "1", sys.executable, "-m", "grader.cli", "doctor"],
                              capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)

    walled = doctor()
    rule = ["DOCKER-USER", "-i", "docker0", "-d", "10.231.0.0/16", "-j", "DROP"]
    subprocess.run([str(HOSTS), "exec", "1", "iptables", "-D", *rule], check=True, timeout=30)
    try:
        open_wall = doctor()
    finally:
        subprocess.run([str(HOSTS), "exec", "1", "iptables", "-I", *rule], check=True, timeout=30)
    assert walled.returncode == 0, walled.stdout + walled.stderr
    assert "ok  build steps to the broker: 10.231.1.1 is walled off" in walled.stdout
    assert open_wall.returncode == 1
    assert "PROBLEM  build steps to the broker: a student's RUN step can reach 10.231.1.1" in open_wall.stdout
    assert "GRADER_CONTROL_HOST=10.231.1.1 scripts/setup" in open_wall.stdout
