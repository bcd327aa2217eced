"""The assignment file's shape, checked before anything is built from it: unknown keys (a misspelled
`advisroy`, a `late_penalty` nobody implements), wrong types, negative points, a probe method
`PSOT`, a check listed twice or a file name used by two variants are refused, each with the path
of the field (`variants[1].advisroy`) — never loaded silently with a default the instructor did not mean.
"""

from __future__ import annotations

import difflib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class _Texts(_Strict):
    ru: str = Field(min_length=1)
    en: str = Field(min_length=1)


class _Head(_Strict):
    id: str = Field(min_length=1)
    title: _Texts
    language: Literal["ru", "en"] = "ru"
    base_image: str = Field(min_length=1)
    app_port: int = Field(default=8080, ge=1, le=65535)
    port_env: str | None = None
    alt_port: int | None = Field(default=None, ge=1, le=65535)
    reference: str = ""
    module: str = Field(default="counter_backend", min_length=1)
    console_scripts: list[str] = ["server"]


class _Probe(_Strict):
    method: str
    path: str = Field(pattern=r"^/")
    status: int = Field(ge=100, le=599)
    json_: Any = Field(default=None, alias="json")

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value.upper() not in HTTP_METHODS:
            raise ValueError(f"{value!r} is not an HTTP method ({', '.join(HTTP_METHODS)})")
        return value


class _Variant(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    filename: str = Field(min_length=1)
    title: _Texts
    points: float = Field(ge=0)
    required: list[str] = Field(min_length=1)
    advisory: list[str] = []
    check_points: dict[str, float] = {}

    @model_validator(mode="after")
    def _each_check_once(self) -> _Variant:
        listed = self.required + self.advisory
        twice = sorted({c for c in listed if listed.count(c) > 1})
        if twice:
            raise ValueError(f"checks listed more than once (in required and/or advisory): {', '.join(twice)}")
        negative = sorted(c for c, p in self.check_points.items() if p < 0)
        if negative:
            raise ValueError(f"check_points must not be negative: {', '.join(negative)}")
        return self


class _Global(_Strict):
    id: str
    points: float = Field(ge=0)


class _LatePolicy(_Strict):
    """`[late_policy]`: what a push after the deadline (the student's, extensions included) counts for."""

    kind: Literal["none", "cap", "penalty_per_day"] = "none"
    cap: float | None = Field(default=None, ge=0)  # kind = "cap": a late push counts at most this many points
    per_day: float | None = Field(default=None, ge=0)  # kind = "penalty_per_day": points off per started day

    @model_validator(mode="after")
    def _values_of_its_kind(self) -> _LatePolicy:
        needs = {"cap": "cap", "penalty_per_day": "per_day"}
        wanted = needs.get(self.kind)
        if wanted is not None and getattr(self, wanted) is None:
            example = "cap = 3.0 (the most a late push scores)" if wanted == "cap" \
                else "per_day = 0.5 (points off per started day late)"
            raise ValueError(f'kind = "{self.kind}" needs {example}')
        extra = [name for name in needs.values() if name != wanted and getattr(self, name) is not None]
        if extra:
            raise ValueError(f'{", ".join(extra)} is not read with kind = "{self.kind}"')
        return self


class _VariantDefaults(_Strict):
    """`[variant_defaults]`: what a variant that does not say otherwise has."""

    advisory: list[str] = []


class AssignmentFile(_Strict):
    assignment: _Head
    probes: list[_Probe] = Field(min_length=1)
    variant_defaults: _VariantDefaults = _VariantDefaults()
    variants: list[_Variant] = Field(min_length=1)
    global_checks: list[_Global] = []
    late_policy: _LatePolicy = _LatePolicy()
    # Tables with parsers of their own (grader/assignment.py), which refuse unknown keys themselves.
    final_image: dict[str, Any] = {}
    policy: dict[str, Any] = {}
    similarity: dict[str, Any] = {}

    @model_validator(mode="after")
    def _unique(self) -> AssignmentFile:
        for what, values in (("variant names", [v.name for v in self.variants]),
                             ("variant file names", [v.filename for v in self.variants]),
                             ("global checks", [g.id for g in self.global_checks])):
            twice = sorted({x for x in values if values.count(x) > 1})
            if twice:
                raise ValueError(f"{what} must be unique: {', '.join(twice)} used more than once")
        return self


def problems(data: dict[str, Any]) -> list[str]:
    """Every problem of the file's shape, one line each with the field's path; [] when it is sound.
    Variants are checked with `[variant_defaults]` applied (a default advisory check a variant
    also requires is listed twice)."""
    from grader.assignment import with_variant_defaults

    try:
        if isinstance(data.get("variants"), list) and all(isinstance(v, dict) for v in data["variants"]) \
                and isinstance(data.get("variant_defaults", {}), dict):
            data = with_variant_defaults(data)
        AssignmentFile.model_validate(data)
    except ValidationError as exc:
        return [_line(e, data) for e in exc.errors()]
    return []


def _line(error: Any, data: dict[str, Any]) -> str:
    path = _path(error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown key{_did_you_mean(error['loc'], data)}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{path}: {message}" if path else message


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _did_you_mean(loc: tuple[Any, ...], data: dict[str, Any]) -> str:
    """The known key the misspelled one is closest to, e.g. `advisroy` → `advisory`."""
    model: Any = AssignmentFile
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        inner = getattr(annotation, "__args__", (annotation,))[0]
        model = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
        if model is None:
            return ""
    known = [f.alias or name for name, f in model.model_fields.items()]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    return f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(known)})"
