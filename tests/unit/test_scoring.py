"""The rubric applied: all-or-nothing variants, advisory warnings, per-check points, crashing checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

import checks
from grader import assignment as assignment_mod
from grader.errors import GraderError
from grader.scoring import score
from tests.unit.factories import passing_submission, passing_variant

A = assignment_mod.load()


def test_passing_facts_score_the_full_rubric():
    scored = score(passing_submission(A), A)
    assert (scored.score, scored.max_score) == (5.0, 5.0)
    assert [v.score for v in scored.variants] == [1.5, 1.5, 1.5]


def test_one_failed_required_check_costs_the_whole_variant():
    nonroot = passing_variant("nonroot", A, runtime=replace(passing_variant("nonroot", A).runtime, uid=0))
    scored = score(passing_submission(A, nonroot=nonroot), A)
    by_name = {v.name: v for v in scored.variants}
    assert by_name["nonroot"].score == 0 and scored.score == 3.5


def test_failed_advisory_check_is_a_warning_without_cost():
    single = passing_variant("single", A)
    entry = single.parsed.final.instructions[-1]
    single.parsed.final.instructions[-1] = replace(entry, json_form=False)
    scored = score(passing_submission(A, single=single), A)
    result = next(c for c in scored.variants[0].checks if c.id == "exec_form")
    assert result.status == "warn" and scored.variants[0].score == 1.5


def test_check_points_from_the_assignment_are_added_per_check():
    rubric = replace(A.variants[0], check_points={"built": 0.25})
    course = replace(A, variants=(rubric, *A.variants[1:]))
    scored = score(passing_submission(course), course)
    assert scored.max_score == 5.25 and scored.score == 5.25


def test_a_crashing_check_is_a_grader_error_not_a_zero(monkeypatch):
    def crash(v, a):
        raise KeyError("boom")

    monkeypatch.setitem(checks.VARIANT_CHECKS, "built", crash)
    with pytest.raises(GraderError, match="check built crashed"):
        score(passing_submission(A), A)


def test_a_check_returning_a_reason_it_did_not_declare_is_a_grader_error(monkeypatch):
    spec = checks.VARIANT_CHECKS["built"]
    monkeypatch.setitem(checks.VARIANT_CHECKS, "built",
                        replace(spec, fn=lambda v, a: checks.failed("made_up_on_the_spot")))
    with pytest.raises(GraderError, match="undeclared reason 'made_up_on_the_spot'"):
        score(passing_submission(A), A)
    # control: the declared reasons of the same check score normally
    monkeypatch.setitem(checks.VARIANT_CHECKS, "built", replace(spec, fn=lambda v, a: checks.failed("error")))
    assert score(passing_submission(A), A).variants[0].score == 0
