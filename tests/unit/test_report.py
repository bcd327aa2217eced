"""grader.report: the JSON contract and its text and Markdown renderings, from hand-built facts."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pydantic
import pytest

from grader import assignment as assignment_mod
from grader.dockerfile import parse_file
from grader.facts import BuildFacts
from grader.report import render_json, render_markdown, render_text, to_json
from grader.report_model import json_schema, validate
from grader.scoring import score
from tests.unit.factories import REFERENCE, SIZES, passing_submission, passing_variant

A = assignment_mod.load()
BROKEN = REFERENCE.parents[1] / "broken"

TOP_KEYS = {"score", "max_score", "variants", "checks"}
VARIANT_KEYS = {"name", "dockerfile", "built", "build_seconds", "image_size_bytes", "stage_count",
                "runtime_uid", "stop_seconds", "probes", "checks", "score", "max_score"}
PROBE_KEYS = {"method", "path", "status", "body", "passed"}
CHECK_KEYS = {"id", "status", "points", "max_points", "message"}
STATUSES = {"pass", "fail", "warn", "skip"}


def report_for(facts=None, lang: str = "en") -> dict:
    facts = facts or passing_submission(A)
    return to_json(facts, score(facts, A), A, lang)


def nonroot_running_as_root():
    nonroot = passing_variant("nonroot", A)
    return passing_submission(A, nonroot=replace(nonroot, runtime=replace(nonroot.runtime, uid=0)))


def single_with_shell_form_cmd():
    path = BROKEN / "shell_form_cmd" / "Dockerfile.single"
    return passing_submission(A, single=passing_variant(
        "single", A, parsed=parse_file(path, "Dockerfile.single")))


def multistage_build_failed():
    failed_build = BuildFacts(succeeded=False, seconds=12.5, exit_code=1,
                              log_tail="#9 [build 4/6] RUN poetry export\n#9 ERROR: exit code: 1")
    return passing_submission(A, multistage=passing_variant(
        "multistage", A, build=failed_build, image=None, runtime=None))


def by_name(report: dict) -> dict[str, dict]:
    return {v["name"]: v for v in report["variants"]}


def check(variant: dict, check_id: str) -> dict:
    return next(c for c in variant["checks"] if c["id"] == check_id)


# -- JSON contract ----------------------------------------------------------------------------


def test_json_has_the_contract_keys_at_the_top():
    report = report_for()

    assert TOP_KEYS <= set(report)
    assert isinstance(report["variants"], list) and isinstance(report["checks"], list)


def test_json_variants_have_the_contract_keys_in_the_rubric_order():
    report = report_for()

    assert [v["name"] for v in report["variants"]] == ["single", "multistage", "nonroot"]
    for v in report["variants"]:
        assert VARIANT_KEYS <= set(v), v["name"]


def test_json_probes_and_checks_have_the_contract_keys():
    report = report_for()
    all_checks = report["checks"] + [c for v in report["variants"] for c in v["checks"]]

    for v in report["variants"]:
        assert len(v["probes"]) == 3
        assert all(set(p) >= PROBE_KEYS for p in v["probes"])
    assert all(set(c) >= CHECK_KEYS for c in all_checks)
    assert {c["status"] for c in all_checks} <= STATUSES


def test_json_round_trips_through_render_json():
    report = report_for(nonroot_running_as_root(), "ru")

    text = render_json(report)

    assert json.loads(text) == report
    assert "Процесс" in text  # not \u-escaped: the Russian stays readable


def test_passing_facts_score_5_of_5():
    report = report_for()

    assert (report["score"], report["max_score"]) == (5.0, 5.0)
    assert [(v["score"], v["max_score"]) for v in report["variants"]] == [(1.5, 1.5)] * 3
    assert [(c["id"], c["status"], c["points"], c["max_points"]) for c in report["checks"]] == [
        ("size_comparison", "pass", 0.5, 0.5)]


def test_passing_facts_report_what_was_observed():
    v = by_name(report_for())

    assert v["single"]["dockerfile"] == "Dockerfile.single"
    assert v["single"]["built"] is True
    assert v["single"]["build_seconds"] == 37.25
    assert v["single"]["image_size_bytes"] == SIZES["single"]
    assert [v[n]["stage_count"] for n in ("single", "multistage", "nonroot")] == [1, 2, 2]
    assert [v[n]["runtime_uid"] for n in ("single", "multistage", "nonroot")] == [0, 0, 999]
    assert v["nonroot"]["stop_seconds"] == 0.31
    assert v["nonroot"]["probes"][1] == {"method": "POST", "path": "/api/counter", "status": 201,
                                         "body": '{"count": 1}', "passed": True}
    assert all(c["status"] == "pass" for x in v.values() for c in x["checks"])


def test_nonroot_running_as_root_fails_that_variant_only():
    report = report_for(nonroot_running_as_root())
    v = by_name(report)

    assert report["score"] == 3.5
    assert (v["nonroot"]["score"], v["single"]["score"], v["multistage"]["score"]) == (0.0, 1.5, 1.5)
    failed = check(v["nonroot"], "runtime_nonroot")
    assert (failed["status"], failed["required"]) == ("fail", True)
    assert "uid 0" in failed["message"]
    assert [e["kind"] for e in failed["evidence"]] == ["observed", "command"]


def test_advisory_failure_is_a_warning_and_keeps_the_points():
    v = by_name(report_for(single_with_shell_form_cmd()))

    warned = check(v["single"], "exec_form")
    assert (warned["status"], warned["required"]) == ("warn", False)
    assert "0.3 s" in warned["message"]  # the stop time the engine observed
    assert v["single"]["score"] == 1.5


def test_failed_build_reports_no_image_and_no_runtime():
    report = report_for(multistage_build_failed())
    v = by_name(report)["multistage"]

    assert (v["built"], v["build_seconds"]) == (False, 12.5)
    assert (v["image_size_bytes"], v["runtime_uid"], v["stop_seconds"], v["probes"]) == (None, None, None, [])
    assert check(v, "built")["status"] == "fail"
    assert check(v, "http_contract")["status"] == "skip"
    assert v["score"] == 0.0
    assert report["checks"][0]["status"] == "fail"  # no image: sizes cannot be compared
    assert report["score"] == 3.0


# -- languages --------------------------------------------------------------------------------


def test_language_changes_titles_and_messages():
    en, ru = report_for(lang="en"), report_for(lang="ru")
    en_check, ru_check = check(by_name(en)["single"], "runs_as_root"), check(by_name(ru)["single"], "runs_as_root")

    assert (en["language"], ru["language"]) == ("en", "ru")
    assert by_name(en)["single"]["title"] == "Single-stage build"
    assert by_name(ru)["single"]["title"] == "Одноэтапная сборка"
    assert en_check["title"] == "Process runs as root"
    assert ru_check["title"] == "Процесс работает от root"
    assert en_check["message"].startswith("As this variant requires")
    assert ru_check["message"].startswith("Как и требуется")


def test_language_does_not_change_the_score():
    facts = nonroot_running_as_root()
    en, ru = report_for(facts, "en"), report_for(facts, "ru")

    assert (en["score"], [v["score"] for v in en["variants"]]) == (ru["score"], [v["score"] for v in ru["variants"]])


# -- Markdown (the GitLab comment) -------------------------------------------------------------


def test_markdown_leads_with_the_title_the_total_and_each_variant():
    md = render_markdown(report_for())
    lines = md.splitlines()

    assert lines[0] == "## Docker: counter-backend three ways — Total **5/5**"
    assert lines[2] == ("**single** ✓ 1.5/1.5 · **multistage** ✓ 1.5/1.5 · **nonroot** ✓ 1.5/1.5 · "
                        "**Image size comparison** ✓ 0.5/0.5")
    assert "A variant counts only when every one of its required checks passes" in md
    assert "Nothing to fix: every required check passes." in md


def test_markdown_collapses_what_passed_and_has_the_size_table():
    md = render_markdown(report_for())

    passed = md[md.index("<details><summary>✓ Passed: 62 checks</summary>"):md.index("</details>")]
    assert "Process does not run as root" in passed
    assert md.count("✗") == 2  # only the rule and the legend name it
    assert "| single | `Dockerfile.single` | 37.2 s | 412 MB | 11 | 1.5/1.5 |" in md
    assert "| nonroot | `Dockerfile.nonroot` | 37.2 s | 172 MB | 11 | 1.5/1.5 |" in md


def test_markdown_shows_a_failed_check_first_with_its_evidence():
    md = render_markdown(report_for(nonroot_running_as_root()))

    assert md.startswith("## Docker: counter-backend three ways — Total **3.5/5**")
    fix = md[md.index("### What to fix"):md.index("<details><summary>✓")]
    assert "1. ✗ **Process does not run as root** — variant nonroot" in fix
    assert "uid=0 (root)" in fix  # the evidence, not collapsed
    assert "| nonroot | `Dockerfile.nonroot` | 37.2 s | 172 MB | 11 | 0/1.5 |" in md


def test_markdown_shows_a_warning_as_advice_with_the_dockerfile_line():
    md = render_markdown(report_for(single_with_shell_form_cmd()))

    advice = md[md.index("### Advice"):md.index("<details><summary>✓")]
    assert "- ! **ENTRYPOINT/CMD in exec form** — variant single" in advice
    assert "`Dockerfile.single:15`" in advice  # no project known (local run): a plain reference
    assert "line 15: CMD python -m counter_backend" in advice
    assert "Nothing to fix" in md  # a warning costs nothing


def test_markdown_escapes_student_text_in_messages():
    facts = passing_submission(A)
    facts.variants["single"].runtime.probes[0].passed = False
    facts.variants["single"].runtime.probes[0].body = "a|b <img src=x> **c** @teacher"

    md = render_markdown(report_for(facts))

    line = next(line for line in md.splitlines() if "a\\|b" in line)
    assert "\\<img src=x\\>" in line and "\\*\\*c\\*\\*" in line and "@\u200bteacher" in line
    outside_code = re.sub(r"```.*?```", "", md, flags=re.S)
    assert "<img" in md and not re.search(r"(?<!\\)<img", outside_code)  # raw only in the code block


def test_markdown_in_russian():
    md = render_markdown(report_for(lang="ru"))

    assert md.startswith("## Docker: counter-backend тремя способами — Итого **5/5**")
    assert "**single** ✓ 1,5/1,5" in md
    assert "| Вариант | Файл | Сборка | Размер | Слоёв | Баллы |" in md
    assert "| single | `Dockerfile.single` | 37,2 с | 412 МБ | 11 | 1,5/1,5 |" in md


# -- text (terminals, CI logs) -----------------------------------------------------------------


def test_text_has_the_total_and_the_size_table():
    text = render_text(report_for())
    lines = text.splitlines()

    assert lines[0] == "Docker: counter-backend three ways — Total 5/5"
    sizes = text[text.index("Builds and image sizes"):]
    for name, mb in (("single", "412 MB"), ("multistage", "171 MB"), ("nonroot", "172 MB")):
        row = next(line for line in sizes.splitlines() if f" {name} " in line)
        assert mb in row and "11" in row


def test_a_build_that_waited_for_a_free_slot_says_so_and_one_that_did_not_does_not():
    facts = passing_submission(A)
    facts.variants["single"].build.started_s, facts.variants["single"].build.waited_s = 0.1, 0.1
    facts.variants["nonroot"].build.started_s, facts.variants["nonroot"].build.waited_s = 8.2, 8.1
    report = report_for(facts)
    assert [v["build_waited_s"] for v in report["variants"]] == [0.1, None, 8.1]  # multistage: not timed

    text = render_text(report)
    nonroot = next(line for line in text.splitlines() if line.startswith("  nonroot "))
    single = next(line for line in text.splitlines() if line.startswith("  single "))
    assert "37.2 s, after waiting 8.1 s for a free build slot" in nonroot
    assert "waiting" not in single  # 0.1 s is the pool starting, not a wait
    ru = render_markdown(report_for(facts, lang="ru"))
    assert "37,2 с, после 8,1 с ожидания свободной сборки" in ru


def test_text_lists_the_failed_check_before_what_passed():
    text = render_text(report_for(nonroot_running_as_root()))

    assert "Docker: counter-backend three ways — Total 3.5/5" in text
    assert "nonroot ✗ 0/1.5" in text
    fix = text.index("✗ 1. Process does not run as root (variant nonroot)")
    assert "The process in the container runs as root (uid 0)." in text[fix:]
    assert "│ uid=0 (root)" in text  # the evidence of a failed check
    assert fix < text.index("Passed: ")
    assert "Image size comparison" in text[text.index("Passed: "):]


def test_text_says_a_build_failed_with_its_log():
    text = render_text(report_for(multistage_build_failed()))

    assert "✗ 1. Image builds (variant multistage)" in text
    assert "The build failed (exit code 1)." in text
    assert "│ #9 ERROR: exit code: 1" in text


@pytest.mark.parametrize(("lang", "total", "sizes"), [("en", "Total", "Builds and image sizes"),
                                                      ("ru", "Итого", "Сборки и размеры образов")])
def test_text_labels_follow_the_language(lang, total, sizes):
    text = render_text(report_for(lang=lang))

    assert text.splitlines()[0].endswith(f" — {total} 5/5")
    assert sizes in text


def test_the_checked_in_json_schema_is_the_models():
    checked_in = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"
    assert checked_in.read_text(encoding="utf-8") == json_schema(), \
        "regenerate: python -c 'from grader.report_model import json_schema; print(json_schema(), end=\"\")' " \
        "> docs/report.schema.json"


def test_a_report_breaking_the_contract_is_refused():
    with pytest.raises(pydantic.ValidationError):
        validate({"schema": "grader.report/1", "score": "five"})
