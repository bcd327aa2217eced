"""The Engine: the Docker SDK's client for images, builds (through `build_cli`), one grading's
lifetime on the engine (its network, containers and images, swept however it ends) and the
garbage collection of what killed runs left. SDK errors become `EngineUnavailable` /
`GraderError` (ours) or `ContainerFailed` (the student's) here."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import requests

from grader.config import Settings
from grader.engine.build_cli import detect_build_cli, run_build
from grader.engine.container import ContainerFailed, Running
from grader.engine.firewall import HostFirewall
from grader.engine.limits import ContainerLimits, EngineConfig
from grader.errors import EngineUnavailable, GraderError
from grader.facts import BuildFacts, ImageFacts

log = logging.getLogger(__name__)

LABEL_JOB = "grader.job"
LABEL_INSTANCE = "grader.instance"


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        """Only the engine's own settings are kept, never the whole Settings (the GitLab token
        stays out of the code that runs student builds): `Engine.from_settings` picks them."""
        self.config = config
        try:
            self.client = docker.from_env(timeout=60)
            self.client.ping()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise EngineUnavailable(
                f"the Docker engine is not reachable ({_short(exc)}). Start it (scripts/setup does) "
                "or point DOCKER_HOST at one."
            ) from exc
        self.cli = detect_build_cli(self.config.docker_cli)

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        return cls(EngineConfig.from_settings(settings))

    def answering(self) -> None:
        """Raises EngineUnavailable when the engine stopped answering (killed mid-job): a build or
        run that failed then says nothing about the student's Dockerfile."""
        try:
            self.client.ping()
        except (docker.errors.DockerException, requests.RequestException) as exc:
            raise EngineUnavailable(f"the Docker engine stopped answering during the grading ({_short(exc)})") from exc

    def _labels(self, job: str) -> dict[str, str]:
        return {LABEL_JOB: job, LABEL_INSTANCE: self.config.instance}

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
        return run_build(self.cli, dockerfile, context, tag, log_path, job, self._labels(job), timeout_s,
                         log_cap_bytes, cancel)

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
        wall = HostFirewall(self.config.iptables, "br-" + net.id[:12])
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
        HostFirewall(self.config.iptables, "br-" + net.id[:12]).open()
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
                  network: str | None, limits: ContainerLimits) -> Iterator[Running]:
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
        flt = {"label": f"{LABEL_INSTANCE}={self.config.instance}"}
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
        flt = {"label": [f"{LABEL_JOB}={job}", f"{LABEL_INSTANCE}={self.config.instance}"]}
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


def _created(attrs: dict) -> float:
    """Creation time of a container, image or network, as the engine reports it (RFC 3339)."""
    from datetime import datetime

    text = str(attrs.get("Created", ""))
    try:
        return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return 0.0  # unknown age: old enough to collect


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
