"""The check API: what a check receives, what it returns, and how it says what it can return.

A check is a pure function of facts; it returns an `Outcome` whose `reason` keys a sentence in
`checks/messages/*.toml` (in every report language). A check declares the facts it reads and
every reason it can return, so a test proves each reason has its messages, and scoring refuses
(as our bug, never the student's zero) a reason nobody declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from grader.assignment import Assignment
    from grader.dockerfile import Instruction
    from grader.facts import SubmissionFacts, VariantFacts

Status = Literal["pass", "fail", "skip"]
Fact = Literal["parsed", "context", "lint", "build", "image", "runtime", "contents", "port_runtime",
               "found", "variants", "policy"]


@dataclass(frozen=True)
class Evidence:
    kind: Literal["dockerfile", "log", "command", "observed"]
    text: str
    line: int | None = None  # Dockerfile line the evidence refers to

    @classmethod
    def at(cls, ins: Instruction, line: int | None = None, text: str | None = None) -> Evidence:
        """The Dockerfile instruction itself, with its line (or one physical line of it)."""
        return cls("dockerfile", ins.source if text is None else text, ins.line if line is None else line)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "line": self.line}


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str  # key into the message catalogue under the check's id
    params: dict[str, Any] = field(default_factory=dict)
    evidence: tuple[Evidence, ...] = ()


def passed(reason: str = "ok", evidence: tuple[Evidence, ...] = (), **params: object) -> Outcome:
    return Outcome("pass", reason, params, evidence)


def failed(reason: str, evidence: tuple[Evidence, ...] = (), **params: object) -> Outcome:
    return Outcome("fail", reason, params, evidence)


def skipped(reason: str, **params: object) -> Outcome:
    return Outcome("skip", reason, params)


class VariantCheckFn(Protocol):
    """A variant check: what was observed about one variant, and the rubric, to an Outcome."""

    def __call__(self, facts: VariantFacts, assignment: Assignment, /) -> Outcome: ...


class GlobalCheckFn(Protocol):
    """An assignment-wide check: what was observed about the whole submission, to an Outcome."""

    def __call__(self, facts: SubmissionFacts, assignment: Assignment, /) -> Outcome: ...


CheckFn = VariantCheckFn | GlobalCheckFn


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: its function, the facts it reads, the reasons it may return."""

    id: str
    fn: CheckFn
    reads: tuple[str, ...]
    reasons: frozenset[str]
    item_reasons: frozenset[str] = frozenset()  # reasons of `items` entries (one sentence each)

    def __call__(self, facts: Any, assignment: Assignment) -> Outcome:
        return self.fn(facts, assignment)  # the registry it is in tells which facts it takes


V = TypeVar("V", bound=VariantCheckFn)
G = TypeVar("G", bound=GlobalCheckFn)

VARIANT_CHECKS: dict[str, CheckSpec] = {}
GLOBAL_CHECKS: dict[str, CheckSpec] = {}


def _register(registry: dict[str, CheckSpec], spec: CheckSpec) -> None:
    if spec.id in registry:
        raise ValueError(f"check {spec.id} is registered twice")
    registry[spec.id] = spec


def variant_check(check_id: str, *, reads: Iterable[str], reasons: Iterable[str],
                  item_reasons: Iterable[str] = ()) -> Callable[[V], V]:
    """Registers fn(variant: VariantFacts, assignment: Assignment) -> Outcome."""
    def register(fn: V) -> V:
        _register(VARIANT_CHECKS, CheckSpec(check_id, fn, tuple(reads), frozenset(reasons), frozenset(item_reasons)))
        return fn

    return register


def global_check(check_id: str, *, reads: Iterable[str], reasons: Iterable[str]) -> Callable[[G], G]:
    """Registers fn(submission: SubmissionFacts, assignment: Assignment) -> Outcome."""
    def register(fn: G) -> G:
        _register(GLOBAL_CHECKS, CheckSpec(check_id, fn, tuple(reads), frozenset(reasons)))
        return fn

    return register
