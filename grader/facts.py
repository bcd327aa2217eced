"""What the grader observed about a submission: plain data, gathered once, judged by checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.dockerfile import ParsedDockerfile


@dataclass
class BuildFacts:
    succeeded: bool
    seconds: float
    timed_out: bool = False
    exit_code: int | None = None
    image_id: str | None = None
    log_path: Path | None = None
    log_tail: str = ""  # the last lines of the build log, for evidence and hints


@dataclass
class ImageFacts:
    image_id: str
    size_bytes: int
    layer_count: int
    user: str  # config User, "" when unset (root)
    entrypoint: list[str] | None
    cmd: list[str] | None
    exposed_ports: list[str]


@dataclass
class ProbeResult:
    method: str
    path: str
    status: int | None
    body: str | None
    passed: bool
    expected_status: int
    expected_json: object
    error: str | None = None
    content_type: str | None = None


@dataclass
class RuntimeFacts:
    started: bool
    ready: bool = False
    ready_seconds: float | None = None
    probes: list[ProbeResult] = field(default_factory=list)
    uid: int | None = None
    stop_seconds: float | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    log_tail: str = ""
    error: str | None = None  # why it could not be started or probed, in plain words


@dataclass
class VariantFacts:
    name: str
    dockerfile_path: str | None  # repo-relative
    found_by: str | None = None  # "name" or "content"
    context_is_reference: bool = False
    parse_error: str | None = None
    parsed: ParsedDockerfile | None = None
    build: BuildFacts | None = None
    image: ImageFacts | None = None
    runtime: RuntimeFacts | None = None


@dataclass
class SubmissionFacts:
    repo: Path
    variants: dict[str, VariantFacts]
    discovery_notes: list[str] = field(default_factory=list)
