"""The policy gate against the real engine: what a Dockerfile names for the engine to fetch or read
is never fetched, and the controls show that the same file does reach it without the gate.

Two canary HTTP listeners stand for what the engine can reach from the host's network namespace:
one on 127.0.0.1 (a loopback-only service), one on the host's own non-loopback address. The
fixtures (tests/fixtures/hostile/policy_*) name 127.0.0.1:47125; each test points that at a live
canary. Stand-in images play another job's image and the grader's own image.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader.pipeline import grade
from grader.report import to_json
from tests.conftest import FIXTURES, REFERENCE_SOURCE
from tests.integration.conftest import INSTANCE

pytestmark = pytest.mark.docker
HOSTILE = FIXTURES / "hostile"
ASSIGNMENT = assignment_mod.load()
FIXTURE_ADDRESS = "127.0.0.1:47125"  # what the fixtures name
FIXTURE_JOB_IMAGE = "grader-0123456789ab-single"  # another job's image, as the fixture names it
FIXTURE_GRADER_IMAGE = "grader:latest"
DOCKER = "/usr/bin/docker"  # the Debian CLI with BuildKit built in (ENVIRONMENT.md)
VARIANT_FILES = {v.name: v.filename for v in ASSIGNMENT.variants}


# -- canaries -----------------------------------------------------------------------------------
class Canary(ThreadingHTTPServer):
    """An HTTP listener that records every connection (TLS and registry probes included) and
    answers GETs with a token, the "loot" a build would print."""

    daemon_threads = True

    def __init__(self, host: str) -> None:
        self.token = f"LOOT-{uuid.uuid4().hex}"
        self.hits: list[str] = []
        super().__init__((host, 0), _Loot)

    @property
    def address(self) -> str:
        return f"{self.server_address[0]}:{self.server_address[1]}"

    def verify_request(self, request, client_address) -> bool:
        self.hits.append(client_address[0])  # recorded on accept, before any protocol
        return True


class _Loot(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = (self.server.token + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET  # noqa: N815

    def log_message(self, *args) -> None:
        pass


def host_address() -> str:
    """The host's own non-loopback IPv4 address (not a Docker bridge's)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "scope", "global"], capture_output=True, text=True,
                         check=True).stdout
    found = [(m.group(1), m.group(2)) for m in re.finditer(r"^\d+: (\S+)\s+inet (\S+)/", out, re.M)]
    own = [ip for dev, ip in found if not dev.startswith(("docker", "br-", "veth"))]
    assert own or found, out
    return (own or [ip for _, ip in found])[0]


@pytest.fixture(scope="module")
def canaries() -> Iterator[dict[str, Canary]]:
    servers = {"loopback": Canary("127.0.0.1"), "host": Canary(host_address())}
    threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
               for s in servers.values()]
    for t in threads:
        t.start()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.shutdown()
            s.server_close()


@pytest.fixture
def quiet(canaries) -> dict[str, Canary]:
    """The canaries, with what earlier tests (controls) made them record forgotten."""
    for c in canaries.values():
        c.hits.clear()
    return canaries


# -- stand-in images: another job's and the grader's own ------------------------------------------
@dataclass(frozen=True)
class Planted:
    job_image: str
    grader_image: str
    marker: str


@pytest.fixture
def planted(engine) -> Iterator[Planted]:
    marker = f"private-{uuid.uuid4().hex}"
    tags = (f"grader-{uuid.uuid4().hex[:12]}-single", f"grader:policy-test-{uuid.uuid4().hex[:8]}")
    data = _tar({"app/marker.txt": marker + "\n"})
    for tag in tags:
        repo, _, label = tag.partition(":")
        engine.client.api.import_image_from_data(data, repository=repo, tag=label or "latest",
                                                 changes=[f"LABEL grader.instance={INSTANCE}"])
    try:
        yield Planted(tags[0], tags[1], marker)
    finally:
        for tag in tags:
            engine.client.images.remove(tag, force=True)


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# -- the cases --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    fixture: str
    variant: str
    line: int
    rule: str
    words: tuple[str, ...]  # what the English verdict must say (besides "Line N:")
    leaks: bool = False  # the control build prints the canary's answer (the very scenario)


NETWORK_CASES = {
    "add http": Case("policy_add_http", "single", 13, "remote_source", ("ADD http://", "download"), leaks=True),
    "add https": Case("policy_add_https", "single", 13, "remote_source", ("ADD https://", "download")),
    "git url": Case("policy_add_git", "single", 13, "remote_source", (".git", "download")),
    "from registry": Case("policy_from_registry", "single", 3, "external_base", ("FROM", "Write FROM python:3.11")),
    "syntax frontend": Case("policy_syntax_frontend", "single", 1, "frontend", ("# syntax=", "frontend")),
    "arg-built url": Case("policy_arg_url", "single", 15, "remote_source", ("ADD http://", "download"), leaks=True),
}
IMAGE_CASES = {
    "another job's image": Case("policy_copy_from_job", "multistage", 17, "copy_from_image", ("--from=grader-",)),
    "the grader's own image": Case("policy_copy_from_grader", "single", 13, "copy_from_image", ("--from=grader:",)),
}


def hostile_repo(tmp_path: Path, case: Case, replace: dict[str, str]) -> Path:
    """The fixture's hostile Dockerfile (names pointed at live targets) and the reference's for the
    other variants: an earlier-edition repository, built against the reference source."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for variant, filename in VARIANT_FILES.items():
        own = HOSTILE / case.fixture / filename
        text = (own if variant == case.variant else REFERENCE_SOURCE / filename).read_text()
        if variant == case.variant:
            assert own.is_file() and any(old in text for old in replace), "the fixture changed: fix the test"
            for old, new in replace.items():
                text = text.replace(old, new)
        (repo / filename).write_text(text)
    return repo


def graded(repo: Path, settings, engine, logs: Path) -> dict:
    quick = settings.model_copy(update={"ready_timeout_s": 10.0})
    facts, scored = grade(repo, ASSIGNMENT, quick, engine, reference=REFERENCE_SOURCE, log_dir=logs)
    return to_json(facts, scored, ASSIGNMENT, "en")


def assert_refused_and_the_rest_graded(report: dict, case: Case, logs: Path) -> None:
    variants = {v["name"]: v for v in report["variants"]}
    checks = {c["id"]: c for c in variants[case.variant]["checks"]}
    policy = checks["build_policy"]
    if case.rule == "external_base":
        # One mistake, one failure: base_image says it (line, expected image); build_policy is
        # skipped, saying why nothing was built.
        assert (policy["status"], policy["reason"]) == ("skip", "base_refused"), policy
        assert f"line {case.line}" in policy["message"], policy["message"]
        policy = checks["base_image"]
    assert policy["status"] == "fail" and policy["required"], policy
    assert policy["message"].startswith(f"Line {case.line}:"), policy["message"]
    assert all(w in policy["message"] for w in case.words), policy["message"]
    assert policy["evidence"][0]["line"] == case.line
    assert variants[case.variant]["built"] is False and variants[case.variant]["score"] == 0
    # Nothing was sent: no build log, no copy for the engine.
    assert not (logs / f"{case.variant}.build.log").exists()
    assert not (logs / f"{case.variant}.Dockerfile").exists()
    for name, v in variants.items():
        if name != case.variant:
            assert v["built"] and v["score"] == 1.5, (name, [c for c in v["checks"] if c["status"] != "pass"])


def assert_nothing_left_naming(engine, *names: str) -> None:
    tags = [t for image in engine.client.images.list(all=True) for t in image.tags]
    assert [t for t in tags if any(n in t for n in names)] == []


@pytest.mark.parametrize("where", ["loopback", "host"])
@pytest.mark.parametrize("name", sorted(NETWORK_CASES))
def test_the_engine_never_fetches_what_a_refused_file_names(name, where, quiet, settings, engine, tmp_path):
    case, canary = NETWORK_CASES[name], quiet[where]
    repo = hostile_repo(tmp_path, case, {FIXTURE_ADDRESS: canary.address})

    report = graded(repo, settings, engine, tmp_path / "logs")

    assert {w: c.hits for w, c in quiet.items()} == {"loopback": [], "host": []}
    assert canary.token not in json.dumps(report)
    assert_refused_and_the_rest_graded(report, case, tmp_path / "logs")
    assert_nothing_left_naming(engine, canary.address)


@pytest.mark.parametrize("where", ["loopback", "host"])
@pytest.mark.parametrize("name", sorted(NETWORK_CASES))
def test_control_without_the_gate_the_engine_does_fetch_it(name, where, quiet, engine, tmp_path):
    case, canary = NETWORK_CASES[name], quiet[where]
    repo = hostile_repo(tmp_path, case, {FIXTURE_ADDRESS: canary.address})

    built = docker_build(repo / VARIANT_FILES[case.variant], engine)

    assert canary.hits != [], built.log[-3000:]  # the engine connected, from the host's network
    if case.leaks:
        assert canary.token in built.log  # and the answer reached the build log, i.e. the report


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_an_image_from_the_engines_store_is_never_copied_from(name, planted, quiet, settings, engine, tmp_path):
    case = IMAGE_CASES[name]
    repo = hostile_repo(tmp_path, case, {FIXTURE_JOB_IMAGE: planted.job_image,
                                         FIXTURE_GRADER_IMAGE: planted.grader_image})

    report = graded(repo, settings, engine, tmp_path / "logs")

    assert planted.marker not in json.dumps(report)
    assert not any(planted.marker in p.read_text(errors="replace") for p in (tmp_path / "logs").glob("*.log"))
    assert_refused_and_the_rest_graded(report, case, tmp_path / "logs")
    assert {w: c.hits for w, c in quiet.items()} == {"loopback": [], "host": []}


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_control_without_the_gate_the_engine_copies_from_that_image(name, planted, engine, tmp_path):
    case = IMAGE_CASES[name]
    repo = hostile_repo(tmp_path, case, {FIXTURE_JOB_IMAGE: planted.job_image,
                                         FIXTURE_GRADER_IMAGE: planted.grader_image})

    built = docker_build(repo / VARIANT_FILES[case.variant], engine)

    assert planted.marker in built.log  # `RUN cat /stolen.txt` printed the other image's file


@dataclass(frozen=True)
class Built:
    code: int
    log: str


def docker_build(dockerfile: Path, engine, env: dict[str, str] | None = None) -> Built:
    """The file built as a student would build it, straight with the docker CLI: no gate."""
    tag = f"grader-control-{uuid.uuid4().hex[:12]}"
    cmd = [DOCKER, "build", "--progress=plain", "-f", str(dockerfile), "-t", tag,
           "--label", f"grader.instance={INSTANCE}", str(REFERENCE_SOURCE)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                                env={**os.environ, "DOCKER_BUILDKIT": "1", **(env or {})})
        return Built(result.returncode, result.stdout + result.stderr)
    finally:
        subprocess.run([DOCKER, "rmi", "-f", tag], capture_output=True, timeout=60)


# -- what must still be fetched: no credentials, proxies or contexts of the host --------------------
def test_builds_use_an_empty_docker_config_not_the_hosts(quiet, settings, engine, tmp_path, monkeypatch):
    """The host's config.json lends a build its registry logins and its proxies (the CLI passes
    those as build args); the grader's builds get a config directory of their own. Control: the
    same file built with the host's config sees the proxy."""
    proxy = f"http://{quiet['loopback'].address}/"
    config = tmp_path / "host-docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({
        "proxies": {"default": {"httpProxy": proxy, "httpsProxy": proxy}},
        "auths": {quiet["loopback"].address: {"auth": "dXNlcjpzZWNyZXQ="}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    marker = uuid.uuid4().hex
    repo = printing_env(tmp_path / "repo", marker)
    control_repo = printing_env(tmp_path / "control", marker + "-control")  # proxies are not in the cache key

    facts, _ = grade(repo, ASSIGNMENT, settings, engine, reference=REFERENCE_SOURCE, log_dir=tmp_path / "logs")
    log = (tmp_path / "logs" / "single.build.log").read_text()
    control = docker_build(control_repo / "Dockerfile.single", engine, {"DOCKER_CONFIG": str(config)})

    assert facts.variants["single"].build.succeeded
    assert re.search(rf"^#\d+ [\d.]+ env-printed-{marker}$", log, re.M), log[-2000:]
    assert proxy not in log
    assert f"HTTP_PROXY={proxy}" in control.log  # the control: the host's config does reach a build


def printing_env(repo: Path, marker: str) -> Path:
    """The reference single-stage file with a step printing the build's proxy settings; the
    marker defeats BuildKit's cache, so the step really runs."""
    return with_step(repo, f"RUN (env | grep -i proxy || true) && echo env-printed-{marker}")


def test_one_gradings_cache_mount_is_not_another_gradings(settings, engine, tmp_path):
    """BuildKit keeps cache mounts by id (default: the target) for every later build on the engine;
    each grading's copy scopes them to itself. Control: two direct builds do share the cache."""
    marker = uuid.uuid4().hex
    cache = "--mount=type=cache,target=/root/.cache/shared"
    plant = f"RUN {cache} echo {marker} > /root/.cache/shared/planted"
    read = f"RUN {cache} cat /root/.cache/shared/planted || echo nothing-{marker}"
    writer, reader = with_step(tmp_path / "writer", plant), with_step(tmp_path / "reader", read)

    for repo in (writer, reader):
        grade(repo, ASSIGNMENT, settings, engine, reference=REFERENCE_SOURCE, log_dir=repo.parent / f"{repo.name}-logs")
    graded_log = (tmp_path / "reader-logs" / "single.build.log").read_text()
    control_writer = with_step(tmp_path / "control-writer", plant.replace(marker, marker + "-control"))
    control_reader = with_step(tmp_path / "control-reader", read + "-control")
    docker_build(control_writer / "Dockerfile.single", engine)
    control = docker_build(control_reader / "Dockerfile.single", engine)

    # Step output lines are "#N SECONDS TEXT" (stderr may share a line with stdout).
    assert re.search(rf"^#\d+ [\d.]+ .*nothing-{marker}$", graded_log, re.M), graded_log[-2000:]
    assert not re.search(rf"^#\d+ [\d.]+ {marker}$", graded_log, re.M)
    assert re.search(rf"^#\d+ [\d.]+ {marker}-control$", control.log, re.M), control.log[-2000:]


def with_step(repo: Path, step: str) -> Path:
    """A repository whose single-stage file is the reference's with one more RUN step."""
    repo.mkdir()
    text = (REFERENCE_SOURCE / "Dockerfile.single").read_text()
    (repo / "Dockerfile.single").write_text(text.replace("EXPOSE 8080", f"{step}\nEXPOSE 8080"))
    return repo


# -- the copy that is built (grader/buildfile.py) ------------------------------------------------------
def test_a_syntax_line_and_a_run_heredoc_build_on_this_engine_in_a_crlf_file_with_a_bom(settings, engine, tmp_path):
    """Engine 20.10 would pull docker/dockerfile:1 for the syntax line (impossible here) and reads
    heredoc lines as instructions; the copy it is given has neither, with every line in place.
    Control: the student's file itself does not build on this engine."""
    repo = tmp_path / "repo"
    repo.mkdir()
    text = (REFERENCE_SOURCE / "Dockerfile.single").read_text()
    text = "# syntax=docker/dockerfile:1\n" + text.replace(
        "RUN poetry build --format wheel \\\n && python -m pip install",
        "RUN <<EOF\nset -e\npoetry build --format wheel\npython -m pip install")
    text = text.replace("dist/vendor/*.whl\nEXPOSE", "dist/vendor/*.whl\nEOF\nEXPOSE")
    assert "RUN <<EOF" in text and "\nEOF\n" in text, "the reference Dockerfile changed: fix the test"
    (repo / "Dockerfile.single").write_bytes(("\ufeff" + text).replace("\n", "\r\n").encode())

    facts, scored = grade(repo, ASSIGNMENT, settings, engine, reference=REFERENCE_SOURCE, log_dir=tmp_path / "logs")
    report = to_json(facts, scored, ASSIGNMENT, "en")
    control = docker_build(repo / "Dockerfile.single", engine)

    single = next(v for v in report["variants"] if v["name"] == "single")
    assert single["score"] == 1.5, [c for c in single["checks"] if c["status"] != "pass"]
    policy = next(c for c in single["checks"] if c["id"] == "build_policy")
    assert "Line 1: the '# syntax=docker/dockerfile:1' line was not passed" in policy["message"]
    assert "RUN <<EOF was run as the same script through /bin/sh -c" in policy["message"]
    copy = (tmp_path / "logs" / "single.Dockerfile").read_bytes()
    assert copy.count(b"\n") == (repo / "Dockerfile.single").read_bytes().count(b"\n")
    assert "docker/dockerfile" not in (tmp_path / "logs" / "single.build.log").read_text()
    # The control fails: on the syntax line (a pull) or, as here where the BOM hides it from
    # engine 20.10, on the heredoc.
    assert control.code != 0 and re.search(r"docker/dockerfile:1|unknown instruction", control.log)


def test_a_heredoc_shape_this_engine_cannot_build_gets_the_heredoc_hint(settings, engine, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    text = (REFERENCE_SOURCE / "Dockerfile.single").read_text()
    heredoc = "COPY <<EOF /app/notes.txt\nhello\nEOF\nEXPOSE 8080"
    (repo / "Dockerfile.single").write_text(text.replace("EXPOSE 8080", heredoc))

    facts, scored = grade(repo, ASSIGNMENT, settings, engine, reference=REFERENCE_SOURCE, log_dir=tmp_path / "logs")
    report = to_json(facts, scored, ASSIGNMENT, "en")

    built = next(c for v in report["variants"] if v["name"] == "single" for c in v["checks"] if c["id"] == "built")
    assert built["status"] == "fail"
    assert "does not support heredocs of this shape" in built["message"], built["message"]


def test_the_reference_still_scores_full_marks_and_leaves_no_docker_config_behind(settings, engine, tmp_path):
    configs = Path(tempfile.gettempdir())
    before = set(configs.glob("grader-*-docker-config-*"))
    shutil.copytree(FIXTURES / "reference", tmp_path / "repo")

    facts, scored = grade(tmp_path / "repo", ASSIGNMENT, settings, engine, log_dir=tmp_path / "logs")

    assert scored.score == 5.0
    assert all(v.policy is not None and v.policy.findings == [] for v in facts.variants.values())
    assert set(configs.glob("grader-*-docker-config-*")) == before

