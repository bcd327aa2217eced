"""Hostile submissions: the verdict, and the host's health afterwards."""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from grader import assignment as assignment_mod
from grader.pipeline import grade
from grader.report import to_json
from tests.conftest import FIXTURES, REFERENCE_SOURCE
from tests.integration.conftest import INSTANCE
from tests.integration.verdicts import assert_verdict, fixture_names, load_expected

pytestmark = pytest.mark.docker
HOSTILE = FIXTURES / "hostile"
ASSIGNMENT = assignment_mod.load()
CANARY_PORT = 47123  # the port tests/fixtures/hostile/reach_host tries on its gateway
BUILD_CANARY_PORT = 47124  # ... and build_reach_host, from a RUN step


@contextmanager
def canary(port: int = CANARY_PORT) -> Iterator[list[str]]:
    """A listener on every host address that records who connected."""
    server = socket.create_server(("0.0.0.0", port), reuse_port=True)
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            seen.append(addr[0])
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def single(report: dict) -> dict:
    return next(v for v in report["variants"] if v["name"] == "single")


def grade_hostile(name: str, settings, engine) -> dict:
    facts, scored = grade(HOSTILE / name, ASSIGNMENT, settings, engine, reference=REFERENCE_SOURCE)
    return to_json(facts, scored, ASSIGNMENT, "en")


@pytest.mark.parametrize("name", fixture_names(HOSTILE))
def test_hostile_submission_gets_a_clear_verdict_not_a_crash_or_a_hang(name, settings, engine):
    quick = settings.model_copy(update={"ready_timeout_s": 5.0})
    facts, scored = grade(HOSTILE / name, ASSIGNMENT, quick, engine, reference=REFERENCE_SOURCE)
    assert_verdict(to_json(facts, scored, ASSIGNMENT, "en"), load_expected(HOSTILE / name))


@pytest.mark.parametrize("name", ["output_flood", "build_output_flood"])
def test_output_floods_keep_the_grader_and_its_report_small(name):
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [sys.executable, "-m", "grader.cli", "check", str(HOSTILE / name), "--reference", str(REFERENCE_SOURCE),
         "--format", "json", "-q", "--no-cache"],  # measured on a real grading, not a reused verdict
        capture_output=True, text=True, timeout=600, check=False, env={**os.environ, "GRADER_INSTANCE": INSTANCE})
    assert result.returncode == 0, result.stderr
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert max(peak_kib, before) < 300 * 1024, f"peak RSS {peak_kib} KiB"
    assert len(result.stdout) < 200_000
    assert json.loads(result.stdout)["variants"][0]["score"] == 1.5


def test_container_cannot_reach_a_listener_on_the_host(settings, engine):
    with canary() as seen:
        report = grade_hostile("reach_host", settings, engine)
    assert single(report)["score"] == 1.5  # the host still probes it
    assert seen == []


def test_on_an_unwalled_network_the_same_image_does_reach_the_host(settings, engine):
    # The control experiment: the image, run on a plain bridge without the grader's rules (the
    # default bridge is walled by scripts/setup too), does reach the canary, so the test above can fail.
    kept = settings.model_copy(update={"keep_images": True})
    facts, _ = grade(HOSTILE / "reach_host", ASSIGNMENT, kept, engine, reference=REFERENCE_SOURCE)
    image = facts.variants["single"].image.image_id
    labels = {"grader.instance": INSTANCE}
    net = engine.client.networks.create(f"grader-control-{uuid.uuid4().hex[:8]}", labels=labels)
    try:
        with canary() as seen:
            container = engine.client.containers.run(image, detach=True, network=net.name, labels=labels)
            deadline = time.monotonic() + 15
            while not seen and time.monotonic() < deadline:
                time.sleep(0.2)
            container.remove(force=True)
        assert seen != []
    finally:
        net.remove()
        engine.client.images.remove(image, force=True)


def test_isolation_leaves_no_network_or_firewall_rule_behind(settings, engine):
    before = _input_rules()
    grade_hostile("reach_host", settings, engine)
    assert engine.client.networks.list(filters={"label": f"grader.instance={INSTANCE}"}) == []
    assert [r for r in _input_rules() if "br-" in r and r not in before] == []


def _input_rules() -> list[str]:
    return subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True, check=True).stdout.splitlines()


def test_build_step_cannot_reach_a_listener_on_the_host(settings, engine, tmp_path):
    # A fresh marker in the RUN line defeats BuildKit's cache, so the step really runs.
    marker = uuid.uuid4().hex
    text = (HOSTILE / "build_reach_host" / "Dockerfile.single").read_text()
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "Dockerfile.single").write_text(text.replace("|| echo blocked", f"|| echo blocked {marker}"))
    with canary(BUILD_CANARY_PORT) as seen:
        grade(tmp_path / "repo", ASSIGNMENT, settings, engine, reference=REFERENCE_SOURCE, log_dir=tmp_path / "logs")
    log = (tmp_path / "logs" / "single.build.log").read_text()
    # Output lines of a RUN step look like "#7 2.104 blocked <marker>" in BuildKit's plain log.
    assert re.search(rf"^#\d+ [\d.]+ blocked {marker}$", log, re.M), log[-2000:]
    assert not re.search(r"^#\d+ [\d.]+ REACHED$", log, re.M)
    assert seen == []


def test_oversized_build_context_is_refused_before_anything_is_sent(settings, engine, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REFERENCE_SOURCE, repo / "counter-backend")
    with open(repo / "counter-backend" / "dataset.bin", "wb") as big:
        big.truncate(300 * 2**20)  # sparse: 300 MB to the build, nothing on this disk
    facts, scored = grade(repo, ASSIGNMENT, settings, engine)
    report = to_json(facts, scored, ASSIGNMENT, "en")
    built = next(c for c in single(report)["checks"] if c["id"] == "built")
    assert built["status"] == "fail" and ".dockerignore" in built["message"]
    assert single(report)["build_seconds"] == 0.0


def test_grader_secrets_never_reach_builds_containers_or_reports(tmp_path):
    secret = f"glpat-canary{uuid.uuid4().hex[:12]}"
    repo = tmp_path / "repo"
    repo.mkdir()
    text = (REFERENCE_SOURCE / "Dockerfile.single").read_text()
    text = text.replace("EXPOSE 8080", "RUN env && echo marker-" + secret[-6:] + "\nEXPOSE 8080")
    text = text.replace('ENTRYPOINT ["python", "-m", "counter_backend"]',
                        'ENTRYPOINT ["/bin/sh", "-c", "env; exec python -m counter_backend"]')
    (repo / "Dockerfile.single").write_text(text)
    env = {**os.environ, "GRADER_INSTANCE": INSTANCE, "GRADER_GITLAB_TOKEN": secret, "GITLAB_TOKEN": secret,
           "DATABASE_URL": f"postgresql://grader:{secret}@db/grader"}
    result = subprocess.run(
        [sys.executable, "-m", "grader.cli", "check", str(repo), "--reference", str(REFERENCE_SOURCE),
         "--format", "json", "-q", "--no-cache", "--logs", str(tmp_path / "logs")],
        capture_output=True, text=True, timeout=600, check=False, env=env)
    assert result.returncode == 0, result.stderr
    log = (tmp_path / "logs" / "single.build.log").read_text()
    assert re.search(r"^#\d+ [\d.]+ PATH=", log, re.M), "the build's env was not printed: the test proves nothing"
    assert secret not in log and secret not in result.stdout and secret not in result.stderr


def test_symlink_to_a_host_file_in_the_context_never_shows_its_content(settings, engine, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(REFERENCE_SOURCE, repo / "counter-backend")
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text(f"host-only-{uuid.uuid4().hex}\n")
    os.symlink(host_file, repo / "counter-backend" / "notes.txt")
    dockerfile = repo / "counter-backend" / "Dockerfile.single"
    steal = "COPY notes.txt /notes.txt\nRUN cat /notes.txt\nEXPOSE 8080"
    dockerfile.write_text(dockerfile.read_text().replace("EXPOSE 8080", steal))
    facts, scored = grade(repo, ASSIGNMENT, settings, engine, log_dir=tmp_path / "logs")
    report = json.dumps(to_json(facts, scored, ASSIGNMENT, "en"))
    secret = host_file.read_text().strip()
    assert secret not in report
    assert secret not in (tmp_path / "logs" / "single.build.log").read_text()


def test_one_jobs_container_cannot_reach_another_jobs_container(engine):
    """Two students graded at once: each job's network is its own. The control (a client on the
    other job's network) and the host's probe do reach the server, so the refusal can fail."""
    base, labels = ASSIGNMENT.base_image, {"grader.instance": INSTANCE}
    connect = ("import socket, sys; socket.create_connection((sys.argv[1], 8080), timeout=3); print('reached')")
    job_a, job_b = f"iso-a-{uuid.uuid4().hex[:6]}", f"iso-b-{uuid.uuid4().hex[:6]}"
    with engine.job_network(job_a) as net_a, engine.job_network(job_b) as net_b:
        server = engine.client.containers.run(base, ["python3", "-m", "http.server", "8080"], detach=True,
                                              network=net_b, labels=labels)
        try:
            server.reload()
            address = server.attrs["NetworkSettings"]["Networks"][net_b]["IPAddress"]
            _wait_http(f"http://{address}:8080/")  # the host probes it (as the grader does)

            def attempt(network: str) -> str:
                client = engine.client.containers.run(base, ["python3", "-c", connect, address], detach=True,
                                                      network=network, labels=labels)
                try:
                    client.wait(timeout=30)
                    return client.logs().decode()
                finally:
                    client.remove(force=True)

            from_other_job, from_same_job = attempt(net_a), attempt(net_b)
        finally:
            server.remove(force=True)
    assert "reached" not in from_other_job and ("timed out" in from_other_job or "Error" in from_other_job)
    assert "reached" in from_same_job


def _wait_http(url: str, timeout: float = 20) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
