"""Loads an assignment file: the rubric, file names, probes and base image, as data."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from grader.errors import ConfigError

DEFAULT_ASSIGNMENT = Path(__file__).resolve().parent.parent / "checks" / "assignments" / "counter_backend.toml"
LANGUAGES = ("ru", "en")


@dataclass(frozen=True)
class Probe:
    method: str
    path: str
    status: int
    json: object


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
    try:
        return _build(data, path)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"assignment file {path}: missing or invalid field {exc}") from exc


def _build(data: dict, path: Path) -> Assignment:
    from checks import GLOBAL_CHECKS, VARIANT_CHECKS  # the registry validates the names used

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
    )


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
