"""End to end on the real engine: the reference gets full marks, each broken fixture its verdict."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader.consistency import contradictions
from grader.errors import GraderError
from grader.pipeline import grade
from grader.report import to_json
from tests.conftest import BROKEN, REFERENCE_REPO, REFERENCE_SOURCE
from tests.integration.verdicts import assert_verdict, fixture_names, load_expected

pytestmark = pytest.mark.docker
ASSIGNMENT = assignment_mod.load()


def run(repo, settings, engine, **kw):
    facts, scored = grade(repo, ASSIGNMENT, settings, engine, **kw)
    return to_json(facts, scored, ASSIGNMENT, "en")


def test_reference_solution_gets_full_marks_with_evidence(settings, engine):
    report = run(REFERENCE_REPO, settings, engine)
    assert report["score"] == report["max_score"] == 5
    assert contradictions(report) == []
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["single"]["runtime_uid"] == 0
    assert by_name["nonroot"]["runtime_uid"] not in (0, None)
    assert [v["stage_count"] for v in report["variants"]] == [1, 2, 2]
    for v in report["variants"]:
        assert v["built"] and v["image_size_bytes"] > 0
        assert [p["status"] for p in v["probes"]] == [200, 201, 200]
        assert v["stop_seconds"] < 3  # exec form: SIGTERM reaches the server
        assert {c["status"] for c in v["checks"]} == {"pass"}
    assert by_name["multistage"]["image_size_bytes"] < by_name["single"]["image_size_bytes"]


@pytest.mark.parametrize("slots", [1, 3])
def test_the_report_says_which_build_waited_for_a_free_slot(settings, engine, slots):
    """One build slot: each variant waits for the one before it, and says how long; three: none waits."""
    report = run(REFERENCE_REPO, settings.model_copy(update={"parallel_builds": slots}), engine)
    waits = [v["build_waited_s"] for v in report["variants"]]
    starts = [v["build_started_s"] for v in report["variants"]]
    assert report["score"] == 5 and None not in waits and None not in starts
    if slots == 1:
        single, multi, nonroot = report["variants"]
        assert waits[0] < 0.5 and waits[1] >= single["build_seconds"] and waits[2] >= waits[1] + multi["build_seconds"]
    else:
        assert max(waits) < 0.5


@pytest.mark.parametrize("name", fixture_names(BROKEN))
def test_broken_submission_gets_its_stated_verdict(name, settings, engine):
    expected = load_expected(BROKEN / name)
    local = settings.model_copy(update={"build_timeout_s": float(expected.get("build_timeout", 600))})
    assert_verdict(run(BROKEN / name, local, engine, reference=REFERENCE_SOURCE), expected)


def test_free_named_dockerfiles_are_classified_by_content_and_built_on_the_reference(tmp_path, settings, engine):
    for variant, name in [("single", "Dockerfile"), ("multistage", "multi.dockerfile"), ("nonroot", "Dockerfile.prod")]:
        shutil.copy(REFERENCE_SOURCE / f"Dockerfile.{variant}", tmp_path / name)
    report = run(tmp_path, settings, engine, reference=REFERENCE_SOURCE)
    assert {v["name"]: v["dockerfile"] for v in report["variants"]} == {
        "single": "Dockerfile", "multistage": "multi.dockerfile", "nonroot": "Dockerfile.prod"}
    assert all(v["context"] == "reference" for v in report["variants"])
    assert any("took Dockerfile.prod as nonroot" in n for n in report["notes"])
    assert report["score"] == 5


def test_unparsable_variant_is_a_verdict_and_the_others_are_still_graded(tmp_path, settings, engine):
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "Dockerfile.single")
    (tmp_path / "Dockerfile.multistage").write_text("FROM python:3.11.6-slim-bookworm\nRUN <<EOF\n")
    report = run(tmp_path, settings, engine, reference=REFERENCE_SOURCE)
    by_name = {v["name"]: v for v in report["variants"]}
    parsed = next(c for c in by_name["multistage"]["checks"] if c["id"] == "parsed")
    assert parsed["status"] == "fail" and "heredoc" in parsed["message"]
    assert by_name["single"]["score"] == 1.5
    assert by_name["nonroot"]["dockerfile"] is None


def test_dockerfiles_without_source_and_without_reference_are_a_verdict_for_that_variant(tmp_path, settings, engine):
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "Dockerfile.single")
    report = run(tmp_path, settings, engine)
    built = next(c for c in report["variants"][0]["checks"] if c["id"] == "built")
    assert (built["status"], report["score"]) == ("fail", 0)
    assert "pyproject.toml" in built["message"] and "--reference" in built["message"]


def test_missing_base_image_is_our_error_not_a_zero(tmp_path, settings, engine):
    rubric = replace(ASSIGNMENT, base_image="grader-test/no-such-base:1")
    with pytest.raises(GraderError, match="scripts/setup"):
        grade(REFERENCE_REPO, rubric, settings, engine)


def _server_processes() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and b"-m\0counter_backend" in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_build_timeout_really_stops_the_build(settings, engine):
    short = settings.model_copy(update={"build_timeout_s": 20.0})
    report = run(BROKEN / "server_in_run", short, engine, reference=REFERENCE_SOURCE)
    single = report["variants"][0]
    assert not single["built"] and single["build_seconds"] < 30
    deadline = time.monotonic() + 15
    while _server_processes() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _server_processes() == [], "the RUN step's server outlived the cancelled build"


def test_watchdog_stops_a_grading_that_runs_too_long_and_leaves_nothing(settings, engine):
    hurried = settings.model_copy(update={"job_timeout_s": 3.0})
    started = time.monotonic()
    with pytest.raises(GraderError, match="watchdog"):
        run(BROKEN / "server_in_run", hurried, engine, reference=REFERENCE_SOURCE)
    assert time.monotonic() - started < 20
