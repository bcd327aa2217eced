"""A started student container and what the pipeline asks of it: its address, state, the uid of
its process, what the image holds, the ports it listens on, its log."""

from __future__ import annotations

import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import docker.errors

from grader.facts import ContentsFacts

if TYPE_CHECKING:
    from grader.engine.core import Engine


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


def contents_script(names: Sequence[str], paths: Sequence[str]) -> str:
    """A bounded `find` over the image for files named `names` or at paths matching `paths`:
    `timeout` and `head` bound the work whatever the image holds."""
    tests = [f"-name {shlex.quote(n)}" for n in names] + [f"-path {shlex.quote(p)}" for p in paths]
    return ("timeout 10 find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o "
            f"\\( {' -o '.join(tests) or '-false'} \\) -print 2>/dev/null | head -n 100")


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
