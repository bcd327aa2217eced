"""Applies the rubric to the facts: runs the checks and turns their outcomes into points."""

from __future__ import annotations

from dataclasses import dataclass

from grader import plugins
from grader.assignment import Assignment, VariantRubric
from grader.checkapi import CheckSpec, Outcome
from grader.errors import GraderError
from grader.facts import SubmissionFacts, VariantFacts


@dataclass(frozen=True)
class CheckResult:
    id: str
    status: str  # pass | fail | warn | skip
    points: float
    max_points: float
    required: bool
    outcome: Outcome


@dataclass(frozen=True)
class VariantScore:
    name: str
    facts: VariantFacts
    checks: tuple[CheckResult, ...]
    score: float
    max_score: float


@dataclass(frozen=True)
class Scored:
    variants: tuple[VariantScore, ...]
    checks: tuple[CheckResult, ...]  # assignment-wide
    score: float
    max_score: float


def score(facts: SubmissionFacts, assignment: Assignment) -> Scored:
    variants = tuple(_variant(facts.variants[r.name], r, assignment) for r in assignment.variants)
    global_results = tuple(_global(g.id, g.points, facts, assignment) for g in assignment.global_checks)
    total = sum(v.score for v in variants) + sum(c.points for c in global_results)
    return Scored(variants, global_results, round(total, 2), assignment.max_score)


def _variant(v: VariantFacts, rubric: VariantRubric, assignment: Assignment) -> VariantScore:
    results = []
    for check_id in rubric.required + rubric.advisory:
        outcome = _run(check_id, plugins.variant_checks()[check_id], v, assignment)
        required = check_id in rubric.required
        status = outcome.status if required or outcome.status != "fail" else "warn"
        max_points = rubric.check_points.get(check_id, 0.0)
        points = max_points if outcome.status == "pass" else 0.0
        results.append(CheckResult(check_id, status, points, max_points, required, outcome))
    gate = all(r.status == "pass" for r in results if r.required)
    total = (rubric.points if gate else 0.0) + sum(r.points for r in results)
    return VariantScore(rubric.name, v, tuple(results), round(total, 2), rubric.max_points)


def _global(check_id: str, points: float, facts: SubmissionFacts, assignment: Assignment) -> CheckResult:
    outcome = _run(check_id, plugins.global_checks()[check_id], facts, assignment)
    got = points if outcome.status == "pass" else 0.0
    return CheckResult(check_id, outcome.status, got, points, True, outcome)


def _run(check_id: str, spec: CheckSpec, facts: object, assignment: Assignment) -> Outcome:
    try:
        outcome = spec(facts, assignment)
    except Exception as exc:  # a crashing check is our bug, never the student's zero
        raise GraderError(f"check {check_id} crashed: {type(exc).__name__}: {exc}") from exc
    # A reason nobody declared may have no message: our bug too, caught before a student sees "?".
    items = {item["reason"] for item in outcome.params.get("items") or ()}
    if outcome.reason not in spec.reasons or not items <= spec.item_reasons:
        raise GraderError(f"check {check_id} returned an undeclared reason {outcome.reason!r} "
                          f"(items {sorted(items - spec.item_reasons)})")
    return outcome
