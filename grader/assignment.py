"""Loads an assignment file: the rubric, file names, probes and base image, as data."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from grader import plugins
from grader.assignment_schema import problems
from grader.errors import ConfigError

DEFAULT_ASSIGNMENT = plugins.folder() / "assignments" / "counter_backend.toml"
LANGUAGES = ("ru", "en")


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    status: int
    json: object


@dataclass(frozen=True)
class FinalImage:
    """What a clean final image must not hold; searched in the running image by name and path."""

    build_tools: tuple[str, ...] = ("poetry",)  # executables, and their `NAME-<version>.dist-info`
    build_files: tuple[str, ...] = ("pyproject.toml", "poetry.lock")
    source_paths: tuple[str, ...] = ("*/src/counter_backend",)  # `find -path` patterns

    @property
    def tool_names(self) -> tuple[str, ...]:
        return self.build_tools + tuple(f"{t}-[0-9]*.dist-info" for t in self.build_tools)


# Flags the course needs, per instruction; any other flag the engine's frontend accepts is refused.
DEFAULT_FLAGS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ADD", ("chown", "chmod")),
    ("COPY", ("from", "chown", "chmod")),
    ("RUN", ("mount",)),
    ("HEALTHCHECK", ("interval", "timeout", "start-period", "start-interval", "retries")),
)
MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")


@dataclass(frozen=True)
class Policy:
    """What a Dockerfile may make the engine fetch or read on the student's behalf (`[policy]`,
    enforced by grader/policy.py before anything is sent to the engine)."""

    allowed_url_prefixes: tuple[str, ...] = ()  # ADD may download from these; none by default
    allowed_frontends: tuple[str, ...] = ("docker/dockerfile:1",)  # `# syntax=` (then removed)
    allowed_base_images: tuple[str, ...] = ()  # external FROM images; empty: the base image only
    allowed_mount_types: tuple[str, ...] = ("bind", "cache", "tmpfs")
    allowed_flags: tuple[tuple[str, tuple[str, ...]], ...] = DEFAULT_FLAGS

    def flags_for(self, cmd: str) -> tuple[str, ...]:
        return next((names for name, names in self.allowed_flags if name == cmd.upper()), ())


@dataclass(frozen=True)
class LatePolicy:
    """`[late_policy]`: what a push after the deadline counts for on the scoreboard's `final_score`
    (grader/deadlines.py). `none`: as graded (still marked late); `cap`: at most `cap` points;
    `penalty_per_day`: `per_day` points off per started day late, never below 0."""

    kind: str = "none"
    cap: float | None = None
    per_day: float | None = None


@dataclass(frozen=True)
class VariantRubric:
    name: str
    filename: str
    title: dict[str, str]
    points: float
    required: tuple[str, ...]
    advisory: tuple[str, ...]
    check_points: dict[str, float] = field(default_factory=dict)

    @property
    def max_points(self) -> float:
        return self.points + sum(self.check_points.values())


@dataclass(frozen=True)
class GlobalCheck:
    id: str
    points: float


@dataclass(frozen=True)
class Assignment:
    id: str
    title: dict[str, str]
    language: str
    base_image: str
    app_port: int
    port_env: str | None  # the variable that moves the server to another port ...
    alt_port: int | None  # ... and the port a second run sets it to (None: not checked)
    reference: Path | None
    probes: tuple[Probe, ...]
    variants: tuple[VariantRubric, ...]
    global_checks: tuple[GlobalCheck, ...]
    source: Path
    module: str = "counter_backend"  # `python -m MODULE` starts the service (build hints)
    console_scripts: tuple[str, ...] = ("server",)  # its console scripts, likewise
    final_image: FinalImage = FinalImage()
    policy: Policy = Policy()
    late_policy: LatePolicy = LatePolicy()

    @property
    def max_score(self) -> float:
        return sum(v.max_points for v in self.variants) + sum(g.points for g in self.global_checks)

    def variant(self, name: str) -> VariantRubric:
        return next(v for v in self.variants if v.name == name)


def load(path: Path | None = None) -> Assignment:
    path = path or DEFAULT_ASSIGNMENT
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"assignment file {path} cannot be read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"assignment file {path} is not valid TOML: {exc}") from exc
    found = problems(data)
    if found:
        raise ConfigError(f"assignment file {path}: " + "; ".join(found))
    data = with_variant_defaults(data)
    try:
        return _build(data, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"assignment file {path}: missing or invalid field {exc}") from exc


def with_variant_defaults(data: dict) -> dict:
    """The file with `[variant_defaults]` applied: a variant that lists no `advisory` checks of its
    own gets the defaults' (most courses advise the same hygiene in every variant)."""
    defaults = data.get("variant_defaults") or {}
    if "advisory" not in defaults:
        return data
    variants = [v if "advisory" in v else {**v, "advisory": list(defaults["advisory"])} for v in data["variants"]]
    return {**data, "variants": variants}


def _build(data: dict, path: Path) -> Assignment:
    VARIANT_CHECKS, GLOBAL_CHECKS = plugins.variant_checks(), plugins.global_checks()  # the names used must exist

    head = data["assignment"]
    variants = tuple(_variant(v) for v in data["variants"])
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("variant names must be unique")
    for variant in variants:
        _validate_variant(variant, set(VARIANT_CHECKS))
    global_checks = tuple(GlobalCheck(g["id"], float(g["points"])) for g in data.get("global_checks", []))
    unknown = {g.id for g in global_checks} - set(GLOBAL_CHECKS)
    if unknown:
        raise ValueError(f"unknown global checks {sorted(unknown)}")
    language = head.get("language", "ru")
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r}: use one of {LANGUAGES}")
    _require_languages("assignment title", head["title"])
    reference = head.get("reference") or None
    return Assignment(
        id=head["id"],
        title=dict(head["title"]),
        language=language,
        base_image=head["base_image"],
        app_port=int(head.get("app_port", 8080)),
        port_env=head.get("port_env") or None,
        alt_port=int(head["alt_port"]) if head.get("alt_port") else None,
        reference=(path.parent / reference).resolve() if reference else None,
        probes=tuple(Probe(p["method"].upper(), p["path"], int(p["status"]), p.get("json")) for p in data["probes"]),
        variants=variants,
        global_checks=global_checks,
        source=path,
        module=str(head.get("module", "counter_backend")),
        console_scripts=tuple(head.get("console_scripts", ("server",))),
        final_image=_final_image(data.get("final_image", {})),
        policy=_policy(data.get("policy", {})),
        late_policy=_late_policy(data.get("late_policy", {})),
    )


def _late_policy(table: dict) -> LatePolicy:
    """The table is checked by the schema (grader/assignment_schema.py) before this runs."""
    cap, per_day = table.get("cap"), table.get("per_day")
    return LatePolicy(kind=str(table.get("kind", "none")), cap=float(cap) if cap is not None else None,
                      per_day=float(per_day) if per_day is not None else None)


def _final_image(table: dict) -> FinalImage:
    unknown = set(table) - {"build_tools", "build_files", "source_paths"}
    if unknown:
        raise ValueError(f"[final_image]: unknown keys {sorted(unknown)}")
    default = FinalImage()
    return FinalImage(
        build_tools=tuple(table.get("build_tools", default.build_tools)),
        build_files=tuple(table.get("build_files", default.build_files)),
        source_paths=tuple(table.get("source_paths", default.source_paths)),
    )


def _policy(table: dict) -> Policy:
    unknown = set(table) - {"allowed_url_prefixes", "allowed_frontends", "allowed_base_images",
                            "allowed_mount_types", "allowed_flags"}
    if unknown:
        raise ValueError(f"[policy]: unknown keys {sorted(unknown)}")
    default = Policy()
    prefixes = tuple(table.get("allowed_url_prefixes", default.allowed_url_prefixes))
    for prefix in prefixes:
        # A prefix must fix the host: "https://files.example.edu" would also allow
        # "https://files.example.edu.attacker.net/...".
        if not re.match(r"https?://[^/@\s]+/", prefix):
            raise ValueError(f"[policy] allowed_url_prefixes: {prefix!r} must be http(s)://HOST/...")
    mounts = tuple(table.get("allowed_mount_types", default.allowed_mount_types))
    if set(mounts) - set(MOUNT_TYPES):
        raise ValueError(f"[policy] allowed_mount_types: unknown {sorted(set(mounts) - set(MOUNT_TYPES))}")
    flags = table.get("allowed_flags")
    return Policy(
        allowed_url_prefixes=prefixes,
        allowed_frontends=tuple(table.get("allowed_frontends", default.allowed_frontends)),
        allowed_base_images=tuple(table.get("allowed_base_images", default.allowed_base_images)),
        allowed_mount_types=mounts,
        allowed_flags=default.allowed_flags if flags is None else _flags(flags),
    )


def _flags(table: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    import dockerfile as buildkit_parser

    known = {c.upper() for c in buildkit_parser.all_cmds()}
    if set(table) - known:
        raise ValueError(f"[policy.allowed_flags]: unknown instructions {sorted(set(table) - known)}")
    return tuple((cmd, tuple(str(n).lower() for n in names)) for cmd, names in table.items())


def _require_languages(what: str, texts: dict) -> None:
    missing = [lang for lang in LANGUAGES if not isinstance(texts.get(lang), str)]
    if missing:
        raise ValueError(f"{what} needs a text for {', '.join(missing)}")


def _validate_variant(variant: VariantRubric, known: set[str]) -> None:
    _require_languages(f"variant {variant.name} title", variant.title)
    unknown = set(variant.required + variant.advisory) - known
    if unknown:
        raise ValueError(f"variant {variant.name}: unknown checks {sorted(unknown)}")
    unlisted = set(variant.check_points) - set(variant.required + variant.advisory)
    if unlisted:
        raise ValueError(f"variant {variant.name}: check_points for checks it does not run {sorted(unlisted)}")


def _variant(v: dict) -> VariantRubric:
    return VariantRubric(
        name=v["name"],
        filename=v["filename"],
        title=dict(v["title"]),
        points=float(v["points"]),
        required=tuple(v["required"]),
        advisory=tuple(v.get("advisory", ())),
        check_points={k: float(p) for k, p in v.get("check_points", {}).items()},
    )
