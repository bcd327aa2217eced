"""The contradiction rules themselves: each fires on a report that breaks it, and not on a sound one."""

from __future__ import annotations

import copy

import pytest

from grader import assignment as assignment_mod
from grader.consistency import contradictions
from grader.report import to_json
from grader.scoring import score
from tests.unit.factories import passing_submission

A = assignment_mod.load()


def sound_report() -> dict:
    facts = passing_submission(A)
    return to_json(facts, score(facts, A), A, "en")


def check(report: dict, variant: str, check_id: str) -> dict:
    v = next(v for v in report["variants"] if v["name"] == variant)
    return next(c for c in v["checks"] if c["id"] == check_id)


def variant(report: dict, name: str) -> dict:
    return next(v for v in report["variants"] if v["name"] == name)


def test_a_sound_report_has_no_contradiction():
    assert contradictions(sound_report()) == []


def _clean_image_but_isolation_quotes_leftovers(r):
    c = check(r, "multistage", "final_stage_isolated")
    c.update(status="fail", evidence=[{"kind": "observed", "text": "/usr/local/bin/poetry", "line": None}])


def _copy_found_leftovers_in_a_clean_image(r):
    check(r, "multistage", "copies_only_dist").update(status="fail", reason="too_much_found")


def _root_passes_with_a_user_uid(r):
    variant(r, "single")["runtime_uid"] = 1001


def _nonroot_passes_as_root(r):
    variant(r, "nonroot")["runtime_uid"] = 0


def _probe_passes_without_an_image(r):
    variant(r, "single")["built"] = False


def _http_passes_with_a_failed_probe(r):
    variant(r, "single")["probes"][1]["passed"] = False


def _refused_by_the_gate_but_built(r):
    check(r, "multistage", "build_policy").update(status="fail", reason="remote_source")


def _full_marks_with_a_failed_required_check(r):
    check(r, "nonroot", "user_created")["status"] = "fail"


@pytest.mark.parametrize("spoil, words", [
    (_clean_image_but_isolation_quotes_leftovers, "final_stage_isolated quotes"),
    (_copy_found_leftovers_in_a_clean_image, "copies_only_dist found"),
    (_root_passes_with_a_user_uid, "runs_as_root passes"),
    (_nonroot_passes_as_root, "runtime_nonroot passes"),
    (_probe_passes_without_an_image, "not built, yet a probe passed"),
    (_http_passes_with_a_failed_probe, "http_contract passes, a probe failed"),
    (_refused_by_the_gate_but_built, "build_policy refused the file, yet it was built"),
    (_full_marks_with_a_failed_required_check, "full marks although user_created"),
])
def test_each_rule_fires_on_the_contradiction_it_names(spoil, words):
    report = copy.deepcopy(sound_report())
    spoil(report)
    assert any(words in text for text in contradictions(report)), contradictions(report)
