"""The deployment files work here: compose.yaml validates with Debian's docker-compose (1.29) and
the values of .env.example, and worker.Dockerfile builds an image that is the grader, runs as a
non-root user, holds no compiler, serves a healthy /healthz and reaches the engine through the
socket's group."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import INSTANCE

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
DOCKER = "/usr/bin/docker"  # Debian 12's CLI: BuildKit without the buildx plugin
SOCKET = Path("/var/run/docker.sock")
COMMANDS = ("check", "doctor", "gc", "serve", "worker", "grade", "grade-group", "regrade", "scoreboard", "status")


def run(*cmd: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)


# -- compose.yaml -------------------------------------------------------------------------------
def compose_config(project_dir: Path, env: dict[str, str] | None = None, *,
                   override: Path | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is not installed (Debian: apt-get install docker-compose; scripts/setup)")
    # The project directory holds the .env: compose reads it for ${...} and as the services' env_file.
    files = ["-f", str(ROOT / "compose.yaml")] + (["-f", str(override)] if override else [])
    return run(exe, "--project-directory", str(project_dir), *files, "config",
               env={"PATH": os.environ["PATH"], **(env or {})})


def mounts(service: dict) -> list[str]:
    """SOURCE:TARGET of each volume, from the short syntax (1.29) or the long one (Compose v2)."""
    return [v if isinstance(v, str) else f"{v.get('source')}:{v.get('target')}" for v in service.get("volumes", [])]


@pytest.fixture
def example_env_dir(tmp_path: Path) -> Path:
    shutil.copy(ROOT / ".env.example", tmp_path / ".env")
    return tmp_path


def test_compose_file_validates_with_the_example_env(example_env_dir):
    result = compose_config(example_env_dir)
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    services = config["services"]
    assert set(services) == {"redis", "postgres", "web", "worker"}
    assert services["redis"]["image"] == "redis:7"
    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert any(v.startswith("pgdata:/var/lib/postgresql/data") for v in mounts(services["postgres"]))
    assert "pgdata" in config["volumes"]

    web, worker = services["web"], services["worker"]
    assert web["command"][:1] == ["serve"] and worker["command"][:1] == ["worker"]
    assert web["image"] == worker["image"] == "grader:latest"
    assert web["build"]["dockerfile"] == worker["build"]["dockerfile"] == "worker.Dockerfile"
    assert any(str(p.get("published") if isinstance(p, dict) else p).startswith("8000") for p in web["ports"])
    for service in (web, worker):
        assert {name: dep["condition"] for name, dep in service["depends_on"].items()} == \
            {"redis": "service_healthy", "postgres": "service_healthy"}
    # The .env reaches the services: the web service on the compose network...
    assert web["environment"]["GRADER_DATABASE_URL"] == "postgresql://grader:change-me@postgres/grader"
    assert web["environment"]["GRADER_BROKER_URL"] == "redis://redis:6379/0"
    for key in ("GRADER_GITLAB_URL", "GRADER_GITLAB_TOKEN", "GRADER_WEBHOOK_SECRET", "GRADER_REPORT_BASE_URL"):
        assert web["environment"][key] and worker["environment"][key] == web["environment"][key]
    # ...the worker in the host's network namespace, with the socket through its group.
    assert worker["network_mode"] == "host" and "NET_ADMIN" in worker["cap_add"]
    assert worker["environment"]["GRADER_BROKER_URL"] == "redis://127.0.0.1:6379/0"
    assert worker["environment"]["GRADER_DATABASE_URL"].endswith("@127.0.0.1:5432/grader")
    assert [str(g) for g in worker["group_add"]] == ["999"]
    assert any(v.startswith("/var/run/docker.sock:/var/run/docker.sock") for v in mounts(worker))


def documented_override() -> str:
    """The compose.override.yaml that docs/operating.md tells operators to write."""
    guide = (ROOT / "docs" / "operating.md").read_text()
    block = re.search(r"```yaml\n(# compose.override.yaml.*?)```", guide, re.S)
    assert block, "docs/operating.md lost its compose.override.yaml example"
    return block.group(1)


def test_documented_override_mounts_the_assignment_for_web_and_worker(example_env_dir):
    override = example_env_dir / "compose.override.yaml"
    override.write_text(documented_override())
    (example_env_dir / "assignments").mkdir()
    result = compose_config(example_env_dir, override=override)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    target = f"{example_env_dir / 'assignments'}:/etc/grader/assignments"
    for name in ("web", "worker"):
        assert any(v.startswith(target) for v in mounts(services[name])), mounts(services[name])
    # The worker keeps its engine socket: compose merges volume lists, the override does not replace them.
    assert any(v.startswith("/var/run/docker.sock:") for v in mounts(services["worker"]))


def test_compose_file_names_a_missing_setting(example_env_dir):
    env_file = example_env_dir / ".env"
    env_file.write_text("".join(line for line in env_file.read_text().splitlines(keepends=True)
                                if not line.startswith("DOCKER_GID=")))
    result = compose_config(example_env_dir)
    assert result.returncode != 0
    assert "DOCKER_GID" in result.stderr


# -- worker.Dockerfile ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def worker_image(stack_images) -> str:
    """worker.Dockerfile built by `scripts/setup --stack` (what the operator's guide says to run)."""
    return stack_images["GRADER_IMAGE"]


def test_image_is_the_grader_with_its_commands(worker_image):
    result = run(DOCKER, "run", "--rm", worker_image, "--help")
    assert result.returncode == 0, result.stderr
    for command in COMMANDS:
        assert f" {command} " in result.stdout, command
    # The rubric is package data: the assignment file is found, and `check` is there to use it.
    result = run(DOCKER, "run", "--rm", "--entrypoint", "python", worker_image, "-c",
                 "import grader.assignment as a; r = a.load(None); print(r.base_image)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "python:3.11.6-slim-bookworm"


def test_image_config_exec_form_entrypoint_healthcheck_non_root(worker_image):
    config = json.loads(run(DOCKER, "image", "inspect", worker_image).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["grader"]
    assert config["Cmd"] == ["serve", "--host", "0.0.0.0"]
    assert config["Healthcheck"]["Test"][0] == "CMD"
    assert config["User"] == "grader"
    result = run(DOCKER, "run", "--rm", "--entrypoint", "id", worker_image, "-u")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) != 0


def test_image_has_no_compiler_but_a_buildkit_cli_and_iptables(worker_image):
    result = run(DOCKER, "run", "--rm", "--entrypoint", "sh", worker_image, "-c",
                 "for x in gcc cc c++ make; do command -v $x; done; "
                 "ls /usr/bin | grep -E '^(gcc|x86_64-linux-gnu-gcc)'; "
                 "echo docker=$(docker version --format '{{.Client.Version}}' 2>/dev/null); "
                 "command -v iptables >/dev/null && echo iptables=yes")
    lines = result.stdout.split()
    assert [line for line in lines if "=" not in line] == [], result.stdout  # no compiler, no make
    client = next(line for line in lines if line.startswith("docker="))[len("docker="):]
    assert client and int(client.split(".")[0]) < 23, client  # built-in BuildKit (no buildx needed)
    assert "iptables=yes" in lines


def test_serve_role_becomes_healthy(worker_image):
    """The HEALTHCHECK of the serve role: GET /healthz inside the container (no network needed)."""
    name = f"grader-deploy-web-{secrets.token_hex(4)}"
    # a real secret: on 0.0.0.0 the service refuses short and placeholder ones (tests/unit/test_cli_startup.py)
    env = ["-e", "GRADER_GITLAB_URL=http://gitlab.invalid", "-e", "GRADER_GITLAB_TOKEN=t",
           "-e", f"GRADER_WEBHOOK_SECRET={secrets.token_hex(16)}"]
    try:
        started = run(DOCKER, "run", "-d", "--name", name, "--network", "none", "--health-interval", "1s",
                      "--health-start-period", "1s", *env, worker_image)
        assert started.returncode == 0, started.stderr
        status, deadline = "", time.monotonic() + 60
        while time.monotonic() < deadline:
            status = run(DOCKER, "inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip()
            if status in ("healthy", "unhealthy") or not status:
                break
            time.sleep(0.5)
        assert status == "healthy", run(DOCKER, "logs", name).stderr[-2000:]
    finally:
        run(DOCKER, "rm", "-f", name)


def test_non_root_user_reaches_the_engine_through_the_sockets_group(worker_image):
    gid = SOCKET.stat().st_gid
    base = [DOCKER, "run", "--rm", "-e", f"GRADER_INSTANCE={INSTANCE}", "-v", f"{SOCKET}:{SOCKET}"]
    without = run(*base, "--entrypoint", "docker", worker_image, "version", "--format", "{{.Server.Version}}")
    assert without.returncode != 0 and "permission denied" in without.stderr.lower()
    result = run(*base, "--group-add", str(gid), worker_image, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BuildKit via /usr/bin/docker (builtin)" in result.stdout
    assert "base image python:3.11.6-slim-bookworm: present" in result.stdout


# -- redis and postgres images (stand-ins where no registry answers) --------------------------------
@pytest.fixture
def network() -> Iterator[tuple[str, list[str]]]:
    name = f"grader-deploy-{secrets.token_hex(4)}"
    volumes_before = set(run(DOCKER, "volume", "ls", "-q").stdout.split())
    assert run(DOCKER, "network", "create", name).returncode == 0
    started: list[str] = []
    try:
        yield name, started
    finally:
        if started:
            run(DOCKER, "rm", "-f", "-v", *started)  # -v: the anonymous volume of VOLUME
        run(DOCKER, "network", "rm", name)
    assert set(run(DOCKER, "volume", "ls", "-q").stdout.split()) - volumes_before == set()


def _start(network, image: str, *options: str, command: tuple[str, ...] = ()) -> str:
    name, started = network
    container = f"{name}-{len(started)}"
    result = run(DOCKER, "run", "-d", "--name", container, "--network", name, *options, image, *command)
    assert result.returncode == 0, result.stderr
    started.append(container)
    return container


def _until(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    deadline = time.monotonic() + timeout
    while True:
        result = run(*cmd)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_postgres_image_makes_the_user_and_database_of_its_environment(stack_images, network):
    image = stack_images["POSTGRES_IMAGE"]
    db = _start(network, image, "-e", "POSTGRES_USER=grader", "-e", "POSTGRES_DB=grader",
                "-e", "POSTGRES_PASSWORD=s3cret 'quoted'")
    ready = _until([DOCKER, "exec", db, "pg_isready", "-U", "grader", "-d", "grader"])
    assert ready.returncode == 0, run(DOCKER, "logs", db).stderr
    client = [DOCKER, "run", "--rm", "--network", network[0], "--entrypoint", "psql"]
    query = ["-h", db, "-U", "grader", "-d", "grader", "-At", "-c", "select current_user || ' ' || current_database()"]
    good = _until([*client[:3], "-e", "PGPASSWORD=s3cret 'quoted'", *client[3:], image, *query])
    assert good.stdout.strip() == "grader grader", good.stderr
    bad = run(*client[:3], "-e", "PGPASSWORD=wrong", *client[3:], image, *query)
    assert bad.returncode != 0 and "password authentication failed" in bad.stderr


def test_postgres_image_refuses_to_start_without_a_password(stack_images):
    result = run(DOCKER, "run", "--rm", stack_images["POSTGRES_IMAGE"])
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_redis_image_answers_other_containers_and_keeps_its_data_in_data(stack_images, network):
    image = stack_images["REDIS_IMAGE"]
    server = _start(network, image, command=("redis-server", "--appendonly", "yes"))
    pong = _until([DOCKER, "run", "--rm", "--network", network[0], image, "redis-cli", "-h", server, "ping"])
    assert pong.stdout.strip() == "PONG", pong.stdout + pong.stderr
    inside = run(DOCKER, "exec", server, "sh", "-c", "id -u; pwd; ls /data")
    uid, cwd, *files = inside.stdout.split()
    assert int(uid) != 0 and cwd == "/data" and "appendonlydir" in files, inside.stdout
