"""What the grader observed about a submission: plain data, gathered once, judged by checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grader.dockerfile import ParsedDockerfile


class Note:
    """Something discovery tells the student (a file taken, ignored or misplaced), as a key of
    checks/messages/discovery.toml and its values: rendered in the report's language."""

    def __init__(self, key: str, **params: object) -> None:
        self.key = key
        self.params = params

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Note) and (self.key, self.params) == (other.key, other.params)

    def __repr__(self) -> str:
        return f"Note({self.key!r}, **{self.params!r})"


@dataclass
class BuildFacts:
    succeeded: bool
    seconds: float
    timed_out: bool = False
    exit_code: int | None = None
    image_id: str | None = None
    log_path: Path | None = None
    log_tail: str = ""  # the last lines of the build log, for evidence and hints
    started_s: float | None = None  # when the build started, seconds after the variants were sent to build
    waited_s: float = 0.0  # of which waiting for a free build slot (GRADER_PARALLEL_BUILDS)
    oversize_limit: int | None = None  # set when the image outgrew the grader's limit (and was removed)
    context_refused: bool = False  # the build context was over the limits: nothing was sent
    no_context: bool = False  # no project source to build the file with: nothing was sent


@dataclass
class ImageFacts:
    image_id: str
    size_bytes: int
    layer_count: int
    user: str  # config User, "" when unset (root)
    entrypoint: list[str] | None
    cmd: list[str] | None
    exposed_ports: list[str]
    # Config Env as NAME=value. Values may be secrets: checks report names, never values.
    env: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)  # each layer's "created by", oldest first


@dataclass
class ContentsFacts:
    """Paths found in the running final image by the assignment's search (`[final_image]`):
    build tools, build files, project sources. What they mean is the checks' to say."""

    paths: list[str] = field(default_factory=list)
    error: str | None = None  # why the listing could not be taken


@dataclass
class ContextFacts:
    """The build context as the engine receives it, after .dockerignore."""

    dockerignore: bool  # a .dockerignore exists at the context root
    file_count: int
    size_bytes: int
    unwanted: list[str] = field(default_factory=list)  # e.g. .git, .venv, dist sent anyway
    excluded: list[str] = field(default_factory=list)  # files .dockerignore keeps out (the first few hundred)


@dataclass
class LintFinding:
    code: str  # e.g. DL3013
    level: str  # error | warning | info | style
    line: int
    message: str


@dataclass(frozen=True)
class PolicyFinding:
    """Something the file would make the engine fetch or read on the student's behalf (grader/policy.py)."""

    rule: str  # a reason of the build_policy check, e.g. "remote_source"
    line: int
    text: str  # the instruction (or directive) as written, for evidence
    params: dict[str, str] = field(default_factory=dict)  # e.g. {"source": "http://…"}, for the message


@dataclass(frozen=True)
class BuildfileChange:
    """How the copy sent to the engine differs from the student's file (grader/buildfile.py)."""

    kind: str  # "syntax_removed" | "heredoc_rewritten"
    line: int
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class PolicyFacts:
    """The policy gate's decision: findings refuse the build; otherwise the copy that was built."""

    findings: list[PolicyFinding] = field(default_factory=list)
    changes: list[BuildfileChange] = field(default_factory=list)
    buildfile: Path | None = None  # the copy given to the engine (`-f`); None when refused


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
    memory_limit_bytes: int | None = None
    exited_early: bool = False  # the process was gone before its uid could be read
    listening_ports: list[int] = field(default_factory=list)  # from /proc/net/tcp when not ready
    log_tail: str = ""
    error: str | None = None  # why it could not be started or probed, in plain words


@dataclass
class VariantFacts:
    name: str
    dockerfile_path: str | None  # repo-relative
    found_by: str | None = None  # "name", "near_name" or "content"
    context_is_reference: bool = False
    context_rel: str | None = None  # the build context, repo-relative ("counter-backend"); None: reference
    rejected: str | None = None  # a file for this variant that was not read (a symlink out of the repository)
    parse_error: str | None = None  # in English, for logs
    parse_reason: str | None = None  # why it did not parse: a reason of the `parsed` check ...
    parse_params: dict[str, object] = field(default_factory=dict)  # ... and its values
    parsed: ParsedDockerfile | None = None
    context: ContextFacts | None = None
    lint: list[LintFinding] | None = None  # None: hadolint did not run
    build: BuildFacts | None = None
    image: ImageFacts | None = None
    runtime: RuntimeFacts | None = None
    contents: ContentsFacts | None = None
    port_runtime: RuntimeFacts | None = None  # a second run with PORT set to another port
    policy: PolicyFacts | None = None  # the policy gate; None: not reached (no parsed file)


@dataclass
class SubmissionFacts:
    repo: Path
    variants: dict[str, VariantFacts]
    discovery_notes: list[Note] = field(default_factory=list)
