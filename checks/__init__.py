"""The check registry: every requirement is a named, pure function of facts.

A check returns an `Outcome`; its message is looked up in `messages/*.toml` by check id and
reason, in the assignment's language. A check that raises is a grader bug, not a verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Evidence:
    kind: Literal["dockerfile", "log", "command", "observed"]
    text: str
    line: int | None = None  # Dockerfile line the evidence refers to

    @classmethod
    def at(cls, ins) -> Evidence:
        """The Dockerfile instruction itself, with its line."""
        return cls("dockerfile", ins.original, ins.line)

    def to_json(self) -> dict:
        return {"kind": self.kind, "text": self.text, "line": self.line}


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str  # key into the message catalogue under the check's id
    params: dict = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()


def passed(reason: str = "ok", evidence: tuple[Evidence, ...] = (), **params: object) -> Outcome:
    return Outcome("pass", reason, params, evidence)


def failed(reason: str, evidence: tuple[Evidence, ...] = (), **params: object) -> Outcome:
    return Outcome("fail", reason, params, evidence)


def skipped(reason: str, **params: object) -> Outcome:
    return Outcome("skip", reason, params)


VariantCheck = Callable[..., Outcome]
VARIANT_CHECKS: dict[str, VariantCheck] = {}
GLOBAL_CHECKS: dict[str, VariantCheck] = {}


def variant_check(check_id: str) -> Callable[[VariantCheck], VariantCheck]:
    """Registers fn(variant: VariantFacts, assignment: Assignment) -> Outcome."""

    def register(fn: VariantCheck) -> VariantCheck:
        VARIANT_CHECKS[check_id] = fn
        return fn

    return register


def global_check(check_id: str) -> Callable[[VariantCheck], VariantCheck]:
    """Registers fn(submission: SubmissionFacts, assignment: Assignment) -> Outcome."""

    def register(fn: VariantCheck) -> VariantCheck:
        GLOBAL_CHECKS[check_id] = fn
        return fn

    return register


# Importing the modules fills the registries.
from checks import build, entrypoint, http, hygiene, lint, secrets, size, stages, user  # noqa: E402,F401
