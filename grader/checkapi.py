"""The check API: what a check receives, what it returns, and how it says what it can return.

A check is a pure function of facts; it returns an `Outcome` whose `reason` keys a sentence in
`checks/messages/*.toml` (in every report language). A check declares the facts it reads and
every reason it can return, so a test proves each reason has its messages, and scoring refuses
(as our bug, never the student's zero) a reason nobody declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from grader.dockerfile import Instruction

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


class CheckFn(Protocol):
    def __call__(self, facts: Any, assignment: Any, /) -> Outcome: ...


@dataclass(frozen=True)
class CheckSpec:
    """A registered check: its function, the facts it reads, the reasons it may return."""

    id: str
    fn: CheckFn
    reads: tuple[str, ...]
    reasons: frozenset[str]
    item_reasons: frozenset[str] = frozenset()  # reasons of `items` entries (one sentence each)

    def __call__(self, facts: Any, assignment: Any) -> Outcome:
        return self.fn(facts, assignment)


VARIANT_CHECKS: dict[str, CheckSpec] = {}
GLOBAL_CHECKS: dict[str, CheckSpec] = {}


def _register(registry: dict[str, CheckSpec], check_id: str, reads: Iterable[str], reasons: Iterable[str],
              item_reasons: Iterable[str]) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in registry:
            raise ValueError(f"check {check_id} is registered twice")
        registry[check_id] = CheckSpec(check_id, fn, tuple(reads), frozenset(reasons), frozenset(item_reasons))
        return fn

    return register


def variant_check(check_id: str, *, reads: Iterable[str], reasons: Iterable[str],
                  item_reasons: Iterable[str] = ()) -> Callable[[CheckFn], CheckFn]:
    """Registers fn(variant: VariantFacts, assignment: Assignment) -> Outcome."""
    return _register(VARIANT_CHECKS, check_id, reads, reasons, item_reasons)


def global_check(check_id: str, *, reads: Iterable[str], reasons: Iterable[str]) -> Callable[[CheckFn], CheckFn]:
    """Registers fn(submission: SubmissionFacts, assignment: Assignment) -> Outcome."""
    return _register(GLOBAL_CHECKS, check_id, reads, reasons, ())
