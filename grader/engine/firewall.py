"""The host's iptables walls around a job's network: its containers never reach the host."""

from __future__ import annotations

from grader.engine.build_cli import _quiet
from grader.errors import GraderError


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
