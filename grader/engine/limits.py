"""What the engine reads of the settings, as small frozen values: never the whole `Settings`."""

from __future__ import annotations

from dataclasses import dataclass

from grader.config import Settings


@dataclass(frozen=True)
class EngineConfig:
    """What an `Engine` needs for its lifetime: whose work it labels, which CLI builds, which iptables walls."""

    instance: str  # labels everything this grader creates (cleanup never touches another's)
    docker_cli: str | None  # None: detect (grader.engine.build_cli.detect_build_cli)
    iptables: str

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        return cls(instance=settings.instance, docker_cli=settings.docker_cli, iptables=settings.iptables)


@dataclass(frozen=True)
class ContainerLimits:
    """The caps of one student container; they travel with the job (`Engine.container`)."""

    memory_bytes: int  # memory and memory+swap alike: no swap
    pids_limit: int
    cpus: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ContainerLimits:
        return cls(memory_bytes=settings.memory_bytes, pids_limit=settings.pids_limit, cpus=settings.cpus)
