"""The only Docker boundary: BuildKit builds through the CLI, everything else through the SDK.

Nothing outside this module imports `docker` or runs the docker CLI. Errors from either are
translated here into `EngineUnavailable` / `GraderError` (ours) or into facts (the student's).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests

from grader.config import Settings
from grader.errors import EngineUnavailable, GraderError
from grader.facts import BuildFacts, ContentsFacts, ContextFacts, ImageFacts
from grader.logcap import CappedLog, tail_text

log = logging.getLogger(__name__)

LABEL_JOB = "grader.job"
LABEL_INSTANCE = "grader.instance"
# Top-level entries that never belong in a build context: .dockerignore should keep them out.
UNWANTED_IN_CONTEXT = {".git", ".venv", "venv", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", "node_modules"}
CONTEXT_FILE_LIMIT = 100_000  # counting stops here: enough to say "too big"
CONTEXT_BYTES_LIMIT = 8 * 1024**3
# Only what the docker CLI needs: the grader's own secrets never reach a build.
CLI_ENV_KEYS = ("PATH", "HOME", "DOCKER_HOST", "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")


def contents_script(names: Sequence[str], paths: Sequence[str]) -> str:
    """A bounded `find` over the image for files named `names` or at paths matching `paths`:
    `timeout` and `head` bound the work whatever the image holds."""
    tests = [f"-name {shlex.quote(n)}" for n in names] + [f"-path {shlex.quote(p)}" for p in paths]
    return ("timeout 10 find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o "
            f"\\( {' -o '.join(tests) or '-false'} \\) -print 2>/dev/null | head -n 100")


@dataclass(frozen=True)
class BuildCli:
    path: str
    mode: str  # "buildx" (plugin) or "builtin" (DOCKER_BUILDKIT=1 on a CLI older than 23)

    def command(self, dockerfile: Path, context: Path, tag: str, iidfile: Path, labels: dict[str, str]) -> list[str]:
        head = [self.path, "buildx", "build", "--load"] if self.mode == "buildx" else [self.path, "build"]
        label_args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        return [*head, "--progress=plain", "-f", str(dockerfile), "-t", tag,
                "--iidfile", str(iidfile), *label_args, str(context)]

    def env(self, docker_config: Path | None = None) -> dict[str, str]:
        env = {k: os.environ[k] for k in CLI_ENV_KEYS if k in os.environ}
        env["DOCKER_BUILDKIT"] = "1"
        if docker_config is not None:
            env["DOCKER_CONFIG"] = str(docker_config)
        return env


def private_docker_config(job: str) -> Path:
    """An empty Docker config directory for one build (the caller removes it). The host's
    config.json would lend a build its registry logins and credential helpers (sent to the engine
    for pulls), its proxies (passed as build args) and its current context (another engine); only
    the CLI plugins (buildx) are linked in."""
    path = Path(tempfile.mkdtemp(prefix=f"grader-{job}-docker-config-"))
    plugins = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "cli-plugins"
    if plugins.is_dir():
        (path / "cli-plugins").symlink_to(plugins)
    return path


def detect_build_cli(configured: str | None) -> BuildCli:
    """A CLI that builds with BuildKit: one with the buildx plugin, or an old one with it built in."""
    names = [configured] if configured else [shutil.which("docker"), "/usr/bin/docker"]
    tried = []
    for cli in dict.fromkeys(n for n in names if n):
        if not (shutil.which(cli) or Path(cli).is_file()):
            tried.append(f"{cli}: not found")
            continue
        version = _quiet([cli, "version", "--format", "{{.Client.Version}}"]).stdout.strip()
        major = version.split(".", 1)[0]
        if major.isdigit() and int(major) < 23:
            return BuildCli(cli, "builtin")
        if _quiet([cli, "buildx", "version"]).returncode == 0:
            return BuildCli(cli, "buildx")
        tried.append(f"{cli}: client {version or '?'} without the buildx plugin")
    raise EngineUnavailable(
        "no docker CLI that can build with BuildKit (" + "; ".join(tried) + "). "
        "Install the buildx plugin (Debian: docker-buildx) or set GRADER_DOCKER_CLI / --docker-cli."
    )


def _quiet(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, env=BuildCli("", "").env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        try:
            self.client = docker.from_env(timeout=60)
            self.client.ping()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise EngineUnavailable(
                f"the Docker engine is not reachable ({_short(exc)}). Start it (scripts/setup does) "
                "or point DOCKER_HOST at one."
            ) from exc
        self.cli = detect_build_cli(settings.docker_cli)

    def answering(self) -> None:
        """Raises EngineUnavailable when the engine stopped answering (killed mid-job): a build or
        run that failed then says nothing about the student's Dockerfile."""
        try:
            self.client.ping()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise EngineUnavailable(f"the Docker engine stopped answering during the grading ({_short(exc)})") from exc

    def _labels(self, job: str) -> dict[str, str]:
        return {LABEL_JOB: job, LABEL_INSTANCE: self.settings.instance}

    def cgroup_parent(self, image: str) -> str | None:
        """The cgroup the engine puts containers (and build steps) under, seen from inside one;
        `docker info` does not report it."""
        try:
            # The host's cgroup namespace: on cgroup v2 a private one would show only "0::/".
            out = self.client.containers.run(image, ["cat", "/proc/self/cgroup"], remove=True, cgroupns="host",
                                             labels=self._labels("doctor"), network_mode="none")
        except docker.errors.DockerException:
            return None
        for line in out.decode(errors="replace").splitlines():
            parts = line.split(":", 2)
            if len(parts) == 3 and ("memory" in parts[1].split(",") or parts[1] == ""):
                return parts[2].rsplit("/", 1)[0] or "/"
        return None

    # -- images ---------------------------------------------------------------------------
    def has_image(self, ref: str) -> bool:
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.DockerException as exc:
            raise EngineUnavailable(f"cannot ask the engine about {ref}: {_short(exc)}") from exc

    def inspect_image(self, ref: str) -> ImageFacts:
        try:
            image = self.client.images.get(ref)
            attrs, history = image.attrs, image.history()
        except docker.errors.DockerException as exc:
            raise GraderError(f"built image {ref} cannot be inspected: {_short(exc)}") from exc
        config = attrs.get("Config") or {}
        return ImageFacts(
            image_id=attrs["Id"],
            size_bytes=int(attrs.get("Size", 0)),
            layer_count=len((attrs.get("RootFS") or {}).get("Layers") or []),
            user=config.get("User") or "",
            entrypoint=config.get("Entrypoint"),
            cmd=config.get("Cmd"),
            exposed_ports=sorted((config.get("ExposedPorts") or {}).keys()),
            env=list(config.get("Env") or []),
            history=[h.get("CreatedBy") or "" for h in reversed(history)],
        )

    def remove_image(self, ref: str) -> None:
        try:
            self.client.images.remove(ref, force=True)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise GraderError(f"cannot remove image {ref}: {_short(exc)}") from exc

    # -- builds ---------------------------------------------------------------------------
    def build(self, dockerfile: Path, context: Path, tag: str, log_path: Path, job: str,
              timeout_s: float, log_cap_bytes: int, cancel: threading.Event | None = None) -> BuildFacts:
        """Builds with BuildKit, streaming a capped log to `log_path`; the timeout (or `cancel`,
        set by the job's watchdog) kills the build."""
        iidfile = log_path.with_suffix(".iid")
        iidfile.unlink(missing_ok=True)  # a kept log directory must not lend an old image id
        cmd = self.cli.command(dockerfile, context, tag, iidfile, self._labels(job))
        log = CappedLog(log_path, log_cap_bytes)
        started = time.monotonic()
        config = private_docker_config(job)
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, env=self.cli.env(config), start_new_session=True)
        except OSError:
            shutil.rmtree(config, ignore_errors=True)
            raise
        reader = threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True)
        reader.start()
        try:
            # The reader ends when the client closes its output, i.e. exits: joining it waits
            # without Popen.wait's polling sleeps, which add up to 50 ms to every build.
            deadline = started + timeout_s
            while reader.is_alive() and time.monotonic() < deadline and not (cancel and cancel.is_set()):
                reader.join(timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            timed_out = reader.is_alive()
        finally:
            # Timeout or Ctrl-C: killing the client cancels the BuildKit build (its RUN processes
            # go within seconds).
            if reader.is_alive() or proc.poll() is None:
                _kill_group(proc)
            reader.join(timeout=10)
            proc.wait(timeout=30)
            log.close()
            shutil.rmtree(config, ignore_errors=True)
        seconds = time.monotonic() - started
        image_id = iidfile.read_text().strip() if iidfile.is_file() else None
        ok = proc.returncode == 0 and not timed_out and bool(image_id)
        return BuildFacts(succeeded=ok, seconds=seconds, timed_out=timed_out,
                          exit_code=proc.returncode, image_id=image_id if ok else None,
                          log_path=log_path, log_tail="" if ok else tail_text(log_path))

    # -- one grading's lifetime on the engine ------------------------------------------------------
    @contextmanager
    def job(self, job: str, *, isolate: bool, keep_images: bool = False) -> Iterator[str | None]:
        """Everything one grading creates on the engine, owned here: its network and firewall rules
        (when isolated; the network's name is yielded), and every container and image labelled with
        the job, swept on leaving however it is left (an error, Ctrl-C, the watchdog). When the
        grading ended with an error, a failure to sweep is logged and the grading's error wins."""
        # A grading taken over from a worker that was killed mid-job (same engine, same job name)
        # finds that worker's containers, network and firewall rules: they go first.
        try:
            self.remove_job(job, images=not keep_images)
        except GraderError as exc:  # creating the job's network will then say what is wrong
            log.warning("sweeping what an earlier run of job %s left failed: %s", job, exc)
        with self.job_network(job) if isolate else nullcontext(None) as network:
            try:
                yield network
            except (docker.errors.DockerException, requests.RequestException) as exc:
                # The SDK failed somewhere in the grading (the engine killed mid-probe, say): ours,
                # never the student's, and said as the engine's state, so the task retries it elsewhere.
                _quietly(f"sweeping job {job}", lambda: self.remove_job(job, images=not keep_images))
                self.answering()
                raise GraderError(f"the Docker engine failed during the grading: {_short(exc)}") from exc
            except BaseException:
                _quietly(f"sweeping job {job}", lambda: self.remove_job(job, images=not keep_images))
                raise
            self.remove_job(job, images=not keep_images)

    # -- containers -----------------------------------------------------------------------
    @contextmanager
    def job_network(self, job: str) -> Iterator[str]:
        """An internal network for the job's containers, closed towards the host.

        `internal` keeps the outside world and other jobs away; the INPUT rules stop the
        containers from reaching anything on the host through the bridge (Redis, PostgreSQL, the
        webhook service), while the host still reaches the containers to probe them.
        """
        try:
            net = self.client.networks.create(f"grader-{job}", driver="bridge", internal=True,
                                              labels=self._labels(job))
        except docker.errors.APIError as exc:
            raise GraderError(f"cannot create the job's network: {_short(exc)}") from exc
        wall = HostFirewall(self.settings.iptables, "br-" + net.id[:12])
        try:
            wall.close()
            yield net.name
        except BaseException:  # the error that ended the job wins over a failed clean-up (logged)
            _quietly(f"opening the firewall of job {job}", wall.open)
            _quietly(f"removing the network of job {job}", lambda: self._remove_network(net.name))
            raise
        wall.open()
        self._remove_network(net.name)

    def _drop_network(self, name: str) -> None:
        """A network some earlier run left, with the firewall rules on its bridge."""
        try:
            net = self.client.networks.get(name)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            raise GraderError(f"cannot inspect network {name}: {_short(exc)}") from exc
        HostFirewall(self.settings.iptables, "br-" + net.id[:12]).open()
        self._remove_network(name)

    def _remove_network(self, name: str) -> None:
        try:
            self.client.networks.get(name).remove()
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise GraderError(f"cannot remove network {name}: {_short(exc)}") from exc

    @contextmanager
    def container(self, image: str, name: str, job: str, port: int, env: dict[str, str],
                  network: str | None, limits: Settings) -> Iterator[Running]:
        """A started container with the job's limits; always removed on leaving.

        Without a network (isolation off) the port is published on 127.0.0.1 only.
        """
        s = limits
        self._remove_container(name)  # a stale one from an interrupted run
        where = {"network": network} if network else {"ports": {f"{port}/tcp": ("127.0.0.1", None)}}
        try:
            c = self.client.containers.create(
                image, name=name, detach=True, labels=self._labels(job), environment=env,
                mem_limit=s.memory_bytes, memswap_limit=s.memory_bytes, pids_limit=s.pids_limit,
                nano_cpus=int(s.cpus * 1e9), cap_drop=["ALL"], security_opt=["no-new-privileges"],
                log_config=docker.types.LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
                **where,
            )
        except docker.errors.APIError as exc:
            raise ContainerFailed(_short(exc)) from exc
        try:
            try:
                c.start()
            except docker.errors.APIError as exc:
                raise ContainerFailed(_short(exc)) from exc
            yield Running(self, c, port, network)
        finally:
            self._remove_container(name)

    def _remove_container(self, name: str) -> None:
        try:
            self.client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            raise GraderError(f"cannot remove container {name}: {_short(exc)}") from exc

    def gc(self, older_than_s: float, cache_bytes: int) -> GcReport:
        """Removes what runs of this instance left behind (crashes, kill -9) once older than
        `older_than_s`, and trims BuildKit's cache to `cache_bytes`, least recently used first."""
        flt = {"label": f"{LABEL_INSTANCE}={self.settings.instance}"}
        cutoff = time.time() - older_than_s
        try:
            containers = [c for c in self.client.containers.list(all=True, filters=flt) if _created(c.attrs) < cutoff]
            for c in containers:
                c.remove(force=True)
            networks = [n for n in self.client.networks.list(filters=flt) if _created(n.attrs) < cutoff]
            for net in networks:
                self._drop_network(net.name)
            images = [i for i in self.client.images.list(filters=flt) if _created(i.attrs) < cutoff]
            for img in images:
                self.remove_image(img.id)
        except docker.errors.DockerException as exc:
            raise GraderError(f"garbage collection failed: {_short(exc)}") from exc
        return GcReport(len(containers), len(images), len(networks), self.trim_cache(cache_bytes))

    def trim_cache(self, cache_bytes: int) -> int:
        """Prunes BuildKit's cache down to `cache_bytes` (records in use are kept); bytes freed."""
        try:
            return int(self.client.api.prune_builds(keep_storage=cache_bytes).get("SpaceReclaimed") or 0)
        except docker.errors.DockerException as exc:
            raise GraderError(f"cannot prune the build cache: {_short(exc)}") from exc

    def remove_job(self, job: str, images: bool = True) -> None:
        """Removes every container (and image) labelled with this job, also after a crash or Ctrl-C;
        only this grader instance's (two instances on one engine may use the same job name)."""
        flt = {"label": [f"{LABEL_JOB}={job}", f"{LABEL_INSTANCE}={self.settings.instance}"]}
        try:
            for c in self.client.containers.list(all=True, filters=flt):
                c.remove(force=True)
            found = self.client.images.list(filters=flt) if images else []
        except docker.errors.DockerException as exc:
            raise GraderError(f"cannot clean up job {job}: {_short(exc)}") from exc
        for net in self.client.networks.list(filters=flt):
            self._drop_network(net.name)  # with its firewall rules: a killed run left them
        for img in found:
            for tag in img.tags or [img.id]:
                self.remove_image(tag)


@dataclass(frozen=True)
class GcReport:
    containers: int
    images: int
    networks: int
    cache_bytes_freed: int


class HostFirewall:
    """Two INPUT rules on a job's bridge: drop what the containers start towards the host,
    accept replies to what the host started (the probes)."""

    def __init__(self, iptables: str, bridge: str) -> None:
        self.iptables = iptables
        self.rules = [
            ["INPUT", "-i", bridge, "-j", "DROP"],
            ["INPUT", "-i", bridge, "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"],
        ]

    def close(self) -> None:
        for rule in self.rules:  # each inserted on top: ACCEPT ends above DROP
            result = _quiet([self.iptables, "-w", "5", "-I", *rule])
            if result.returncode != 0:
                self.open()
                raise GraderError(
                    f"cannot isolate student containers from this host ({result.stderr.strip()[:200]}); "
                    "run as root with iptables, or set GRADER_ISOLATE_NETWORK=0 / --no-isolation (unsafe)"
                )

    def open(self) -> None:
        for rule in self.rules:
            while _quiet([self.iptables, "-w", "5", "-D", *rule]).returncode == 0:
                pass  # remove every copy, also ones left by a crashed run


class ContainerFailed(Exception):
    """The engine refused to create or start the student's container (a verdict, not our error)."""


class Running:
    """A started container, seen through the few questions the pipeline asks of it."""

    def __init__(self, engine: Engine, container, port: int, network: str | None) -> None:
        self.engine = engine
        self.c = container
        self.port = port
        self.network = network

    def url(self) -> str:
        self.c.reload()
        settings = self.c.attrs["NetworkSettings"]
        if self.network:
            ip = ((settings.get("Networks") or {}).get(self.network) or {}).get("IPAddress")
            if not ip:
                raise ContainerFailed("the container has no address on its network")
            return f"http://{ip}:{self.port}"
        bindings = (settings["Ports"] or {}).get(f"{self.port}/tcp") or []
        if not bindings:
            raise ContainerFailed(f"port {self.port} is not published")
        return f"http://127.0.0.1:{bindings[0]['HostPort']}"

    def state(self) -> dict:
        self.c.reload()
        return self.c.attrs["State"]

    def is_running(self) -> bool:
        return bool(self.state().get("Running"))

    def _exec(self, cmd: list[str]) -> tuple[int, bytes]:
        try:
            code, out = self.c.exec_run(cmd, demux=False)
            return code, out or b""
        except docker.errors.APIError:
            return 1, b""

    def process_uid(self) -> int | None:
        """The real uid of PID 1 in the container, read from its own /proc."""
        code, out = self._exec(["cat", "/proc/1/status"])
        if code != 0:
            out = _host_proc_status(self.state().get("Pid"))
        for line in out.decode(errors="replace").splitlines():
            if line.startswith("Uid:"):
                return int(line.split()[1])
        return None

    def contents(self, names: Sequence[str], paths: Sequence[str]) -> ContentsFacts:
        code, out = self._exec(["sh", "-c", contents_script(names, paths)])
        if code != 0 and not out:
            return ContentsFacts(error="the image could not be searched (no sh/find in it)")
        return ContentsFacts(paths=[p for p in out.decode(errors="replace").splitlines() if p])

    def listening_ports(self) -> list[int]:
        code, out = self._exec(["cat", "/proc/net/tcp", "/proc/net/tcp6"])
        return listening_ports(out.decode(errors="replace")) if out else []

    def stop(self, timeout: float) -> float:
        started = time.monotonic()
        self.c.stop(timeout=int(timeout))
        return time.monotonic() - started

    def logs_tail(self, lines: int = 30) -> str:
        try:
            return self.c.logs(tail=lines).decode(errors="replace")[-8192:]
        except docker.errors.APIError:
            return ""


def context_facts(context: Path, dockerfile: Path) -> ContextFacts:
    """What `docker build` sends: the context after .dockerignore, as the engine applies it."""
    ignore = context / ".dockerignore"
    patterns = _read_patterns(ignore)
    try:
        rel_dockerfile = dockerfile.resolve().relative_to(context.resolve()).as_posix()
    except ValueError:
        rel_dockerfile = "Dockerfile"
    count = size = 0
    top: set[str] = set()
    # docker's own .dockerignore matcher, walked lazily: a hostile tree stops the count, not the grader.
    matcher = docker.utils.build.PatternMatcher([*patterns, f"!{rel_dockerfile}"])
    for rel in matcher.walk(str(context)):
        path = context / rel
        top.add(rel.split("/", 1)[0])
        if path.is_file() and not path.is_symlink():
            count += 1
            size += path.stat().st_size
            if count > CONTEXT_FILE_LIMIT or size > CONTEXT_BYTES_LIMIT:
                break
    return ContextFacts(ignore.is_file(), count, size, sorted(top & UNWANTED_IN_CONTEXT),
                        _excluded(context, matcher) if patterns else [])


def _excluded(context: Path, matcher: docker.utils.build.PatternMatcher, limit: int = 300) -> list[str]:
    """Files of the context that .dockerignore keeps out: a COPY of one fails with "not found",
    and the build hint says why. Bounded: the first `limit` found, at most CONTEXT_FILE_LIMIT looked at."""
    found: list[str] = []
    seen = 0
    for root, dirs, files in os.walk(context):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            seen += 1
            rel = (Path(root) / name).relative_to(context).as_posix()
            if matcher.matches(rel):
                found.append(rel)
            if len(found) >= limit or seen > CONTEXT_FILE_LIMIT:
                return found
    return found


def _created(attrs: dict) -> float:
    """Creation time of a container, image or network, as the engine reports it (RFC 3339)."""
    from datetime import datetime

    text = str(attrs.get("Created", ""))
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0  # unknown age: old enough to collect


def _read_patterns(ignore: Path) -> list[str]:
    try:
        lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def listening_ports(proc_net_tcp: str) -> list[int]:
    """Ports in state LISTEN (0A) in /proc/net/tcp{,6} text."""
    ports = set()
    for line in proc_net_tcp.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A" and ":" in fields[1]:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def _host_proc_status(pid: int | None) -> bytes:
    # Fallback for images without `cat`: the engine is local, so its /proc shows the process.
    try:
        return Path(f"/proc/{int(pid)}/status").read_bytes() if pid else b""
    except OSError:
        return b""


def _pump(stream, log: CappedLog) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        log.write(chunk)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def _quietly(what: str, action: Callable[[], object]) -> None:
    """Clean-up while another error is on its way out: a failure here is logged, never raised over it."""
    try:
        action()
    except Exception:  # noqa: BLE001 - logged; the caller re-raises the error that matters
        log.exception("%s failed (after an earlier error)", what)


def _short(exc: BaseException) -> str:
    """One line of what went wrong: for the engine's API errors its own explanation ("unable to
    find user app: no matching entries in passwd file"), not the SDK's URL of the call."""
    explanation = getattr(exc, "explanation", None)
    if isinstance(exc, docker.errors.APIError) and explanation:
        text = str(explanation.decode(errors="replace") if isinstance(explanation, bytes) else explanation)
    else:
        text = str(exc)
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text[:300]
