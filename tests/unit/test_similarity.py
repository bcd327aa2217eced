"""Similarity between students' Dockerfiles (grader/similarity): every threshold decision the
fixture cohort (tests/fixtures/similarity/README.md) was built to test, each with a control that
shows the decision can go the other way."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader.errors import ConfigError
from grader.similarity import ALL, Index, Pair, Record, compare, load_config, normalise
from grader.similarity.local import records_from_dirs
from tests.conftest import FIXTURES, REFERENCE_REPO

A = assignment_mod.load()
CONFIG = load_config(A)
COHORT = FIXTURES / "similarity" / "cohort"
HONEST = sorted(d.name for d in COHORT.iterdir() if d.name not in {"zaitsev", "orlova"}) + ["reference"]
VARIANTS = ("single", "multistage", "nonroot")


@pytest.fixture(scope="module")
def cohort() -> list[Record]:
    records, problems = records_from_dirs([*sorted(COHORT.iterdir()), REFERENCE_REPO], A)
    assert not problems and len(records) == 23 * 3
    return records


def scores(records: list[Record], config=CONFIG, exhaustive: bool = True) -> dict[tuple[str, str, str], Pair]:
    pairs, _ = compare(records, config, exhaustive=exhaustive)
    return {(Path(p.a).name, Path(p.b).name, p.variant): p for p in pairs}


def one_pair(records: list[Record], a: str, b: str, config=CONFIG) -> dict[str, Pair]:
    """Every score of two submissions, listed or not, by variant."""
    _, index = compare(records, config)
    return {p.variant: p for p in index.compare_pair(str(COHORT / a), str(COHORT / b))}


def units(text: str) -> list[str]:
    return [u.text for u in normalise(text).units]


# -- normalisation ---------------------------------------------------------------------------------
def test_comments_spacing_quoting_and_line_breaks_leave_the_units_unchanged():
    plain = 'FROM python:3.11\nRUN apt-get update && apt-get install -y curl\nENTRYPOINT ["python", "-m", "x"]\n'
    reformatted = ('# a comment\nFROM python:3.11\n\nRUN apt-get update \\\n    &&   apt-get install -y "curl"\n'
                   "ENTRYPOINT python -m x\n")
    assert units(plain) == units(reformatted)
    assert units(plain) != units(plain.replace("-y curl", "-y wget"))  # control: a changed word is a change


def test_arg_stage_user_and_own_directory_names_are_abstracted_system_paths_are_not():
    def file(arg: str, stage: str, user: str, home: str) -> str:
        return (f"FROM python:3.11 AS {stage}\nARG {arg}={home}\nWORKDIR ${{{arg}}}\n"
                f"FROM python:3.11\nCOPY --from={stage} {home}/dist /tmp/dist\n"
                f"RUN adduser --system --home {home} {user} && chmod 0750 /usr/local/lib/python3.11\n"
                f"ENV PYTHONUNBUFFERED=1\nUSER {user}\n")

    original = units(file("APP_HOME", "build", "counter", "/home/counter"))
    assert original == units(file("DIR", "compile", "zaitsev", "/opt/zaitsev"))
    assert "RUN adduser --system --home /P U" in original and "ENV PYTHONUNBUFFERED=1" in original
    assert "COPY --from=S0 /P/dist /P" in original  # the tail of an own path stays: dist is dist
    moved = file("APP_HOME", "build", "counter", "/home/counter").replace("/usr/local/lib", "/usr/lib")
    assert units(moved) != original  # control: a system path is what the file does, not a name


def test_a_chained_run_becomes_one_unit_per_sub_command_on_its_own_line():
    text = "FROM python\nRUN set -eux; \\\n    pip --version \\\n && rm -rf /root/.cache || true\n"
    found = [(u.text, u.line, u.end_line) for u in normalise(text).units[1:]]
    assert found == [("RUN set -eux", 2, 2), ("RUN pip --version", 3, 3), ("RUN rm -rf /root/.cache", 4, 4),
                     ("RUN true", 4, 4)]


def test_each_line_of_a_heredoc_is_a_unit():
    text = "FROM python\nRUN <<EOF\nset -e\npip check\nEOF\n"
    assert units(text)[1:] == ["RUN set -e", "RUN pip check"]


# -- what is never evidence ------------------------------------------------------------------------
def test_the_course_reference_is_never_flagged_and_would_be_without_the_base_files(tmp_path, cohort):
    assert not [k for k, p in scores(cohort).items() if "reference" in k[:2] and p.flagged]
    for name in ("one", "two"):  # two students who hand in the reference itself
        shutil.copytree(REFERENCE_REPO, tmp_path / name)
    twins, _ = records_from_dirs([tmp_path / "one", tmp_path / "two"], A)
    assert scores(twins) == {}
    bare = scores(twins, replace(CONFIG, base=(), skeleton=()))
    assert all(bare[("one", "two", v)].flagged for v in (*VARIANTS, ALL))  # control


def test_students_who_follow_the_lecture_are_not_flagged_and_would_be_without_it(cohort):
    followers = ("abramova", "belov", "vasilieva", "grigoriev")
    found = scores(cohort)
    assert not [k for k, p in found.items() if k[0] in followers and k[1] in followers and p.flagged]
    without = replace(CONFIG, base=tuple(b for b in CONFIG.base if "lecture" not in b[0]))
    assert scores(cohort, without)[("abramova", "belov", "nonroot")].flagged  # control


def test_files_passed_with_base_are_course_material_too(cohort):
    pair = [r for r in cohort if Path(r.id).name in ("kuznetsova", "zaitsev")]
    assert scores(pair)[("kuznetsova", "zaitsev", ALL)].flagged  # control
    with_base = load_config(A, [COHORT / "kuznetsova" / "counter-backend"])  # e.g. a TA's posted example
    assert not any(p.flagged for p in scores(pair, with_base).values())


def test_the_recipe_written_in_a_spelling_of_ones_own_is_still_skeleton():
    # Flags in another order than the course's files: no base file holds these 3-grams.
    recipe = ("FROM python:3.11.6-slim-bookworm\nCOPY . .\n"
              "RUN pip install poetry==1.8.2 wheel setuptools --break-system-packages --no-cache-dir\n"
              "RUN poetry export --output dist/constraints.txt --format constraints.txt --without-hashes\n"
              "RUN poetry run pip wheel --wheel-dir dist/vendor --requirement dist/constraints.txt --isolated\n"
              "RUN poetry build --format wheel\n"
              "RUN pip install --break-system-packages --no-deps --no-index --isolated dist/*.whl dist/vendor/*.whl\n"
              'CMD ["python", "-m", "counter_backend"]\n')
    two = [Record(name, "single", recipe) for name in ("ivanov", "petrov")]
    assert scores(two) == {}
    assert scores(two, replace(CONFIG, skeleton=()))[("ivanov", "petrov", "single")].flagged  # control


def test_two_files_with_almost_no_evidence_do_not_score_high_on_the_little_they_share():
    # The lecture's files plus the one line everyone finds online: nothing else to go by.
    lecture = dict(CONFIG.base)["[similarity] lecture 2"]
    two = [Record(n, "multistage", lecture + "ENV PYTHONUNBUFFERED=1\n") for n in ("ivanov", "petrov")]
    assert scores(two) == {}  # 1 shared 3-gram, scored as if there were 12: not even listed
    assert scores(two, replace(CONFIG, min_evidence=1))[("ivanov", "petrov", "multistage")].flagged  # control


def test_lines_many_students_wrote_weigh_less_than_lines_only_two_wrote():
    popular = ("RUN apt-get update\nRUN apt-get install -y --no-install-recommends curl ca-certificates\n"
               "RUN rm -rf /var/lib/apt/lists/*\nENV PYTHONUNBUFFERED=1\nENV PYTHONDONTWRITEBYTECODE=1\n"
               "RUN python -m pip install --upgrade pip\nRUN pip --version\nRUN python -m pip check\n"
               "RUN pip cache purge\nSTOPSIGNAL SIGTERM\n")

    def student(name: str, own: str) -> Record:
        own_lines = f"RUN echo {own} > /etc/{own}.conf\nENV STUDENT={own}\n"
        return Record(name, "single", f"FROM python\n{popular}{own_lines}")

    pair = [student("a", "alpha"), student("b", "bravo")]
    crowd = [student(f"s{i}", f"word{i}") for i in range(20)]
    alone = scores(pair)[("a", "b", "single")]
    among = scores(pair + crowd)[("a", "b", "single")]
    copy = scores(pair + crowd + [Record("c", "single", pair[0].text)])[("a", "c", "single")]
    assert alone.flagged  # alone, what they share is all there is to go by (0.59)
    assert not among.flagged  # twenty more students wrote it too (0.37)
    assert copy.flagged  # control: a copy made of popular lines still is one (0.77)


# -- copies ----------------------------------------------------------------------------------------
def test_a_copy_with_renamed_args_reordered_and_reformatted_is_flagged_everywhere(cohort):
    found = scores(cohort)
    assert all(found[("kuznetsova", "zaitsev", v)].flagged for v in (*VARIANTS, ALL))
    regions = [(r.a_lines, r.b_lines) for r in found[("kuznetsova", "zaitsev", "nonroot")].regions]
    assert regions == [
        ((4, 15), (4, 12)),  # the build stage: ENV, pip upgrade, poetry --version, ls (RUNs re-chained)
        ((18, 19), (21, 21)),  # the course label, moved below the user
        ((22, 24), (18, 20)),  # the runtime ENV and the user creation (user, group, uid renamed)
        ((28, 33), (25, 30)),  # pip check, compileall, cleanup; the HEALTHCHECK, moved after ENTRYPOINT
    ]
    first = found[("kuznetsova", "zaitsev", "nonroot")].regions[2]
    assert "adduser --system --uid ${APP_UID}" in first.a_text and "adduser --system --uid ${ID}" in first.b_text


def test_a_copy_of_one_variant_is_flagged_for_that_variant_only(cohort):
    pair = one_pair(cohort, "orlova", "sokolov")  # variants sharing nothing at all have no score
    assert {v for v, p in pair.items() if p.flagged} == {"nonroot"}
    assert not pair[ALL].flagged and pair[ALL].score <= 1 / 3 + 1e-9  # one variant of three
    assert [(r.a_lines, r.b_lines) for r in pair["nonroot"].regions] == [
        ((13, 15), (13, 18)), ((16, 17), (26, 27)), ((20, 20), (22, 24)), ((22, 22), (29, 29))]


def test_twenty_independent_solutions_are_never_flagged(cohort):
    found = scores(cohort)
    honest = {k: p for k, p in found.items() if k[0] in HONEST and k[1] in HONEST}
    assert len(HONEST) == 21  # twenty students and the course's reference
    assert not [k for k, p in honest.items() if p.flagged], sorted(honest.items(), key=lambda kv: -kv[1].score)[:3]
    assert max(p.score for p in honest.values()) < CONFIG.threshold - 0.15  # a margin, not a near miss
    assert {k for k, p in found.items() if p.flagged} == {  # control: the same run does flag the copies
        ("kuznetsova", "zaitsev", v) for v in (*VARIANTS, ALL)} | {("orlova", "sokolov", "nonroot")}


def test_the_index_misses_nothing_an_exhaustive_comparison_flags(cohort):
    indexed, exhaustive = scores(cohort, exhaustive=False), scores(cohort, exhaustive=True)
    assert set(indexed) <= set(exhaustive)
    assert {k for k, p in indexed.items() if p.flagged} == {k for k, p in exhaustive.items() if p.flagged}
    _, index = compare(cohort, CONFIG)
    assert index.proposed < 23 * 22 / 2 / 10  # and it scores a few pairs, not all 253: that is the point


def test_a_new_submission_is_scored_against_the_stored_ones_without_redoing_the_others(cohort):
    index = Index(CONFIG)
    for sub_id in sorted({r.id for r in cohort} - {str(COHORT / "zaitsev")}):
        index.insert([r for r in cohort if r.id == sub_id])
    newcomer = [r for r in cohort if r.id == str(COHORT / "zaitsev")]
    found = index.add(newcomer)
    assert found and all(str(COHORT / "zaitsev") in (p.a, p.b) for p in found)
    assert {(p.variant, p.flagged) for p in found if "kuznetsova" in p.a} == {(v, True) for v in (*VARIANTS, ALL)}
    assert index.proposed < 22  # pairs proposed over all 23 submissions so far, not 23*22/2
    honest = [replace(r, text=(COHORT / "abramova" / r.path).read_text()) for r in newcomer]
    assert not any(p.flagged for p in index.add(honest))  # added again: the new text replaces the old


# -- who was first ---------------------------------------------------------------------------------
def _commit(repo: Path, when: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_NAME": "s",
           "GIT_AUTHOR_EMAIL": "s@example.edu", "GIT_COMMITTER_NAME": "s", "GIT_COMMITTER_EMAIL": "s@example.edu"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "homework"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env=env, capture_output=True)


@pytest.mark.parametrize("source_first", [True, False])
def test_who_pushed_the_matching_text_first_comes_from_commit_times(tmp_path, source_first):
    for name in ("kuznetsova", "zaitsev"):
        shutil.copytree(COHORT / name, tmp_path / name)
    early, late = "2026-03-01T10:00:00+00:00", "2026-03-04T22:30:00+00:00"
    _commit(tmp_path / "kuznetsova", early if source_first else late)
    _commit(tmp_path / "zaitsev", late if source_first else early)
    records, _ = records_from_dirs([tmp_path / "kuznetsova", tmp_path / "zaitsev"], A)
    pair = next(p for p in compare(records, CONFIG)[0] if p.variant == "nonroot")
    assert pair.first == str(tmp_path / ("kuznetsova" if source_first else "zaitsev"))
    assert pair.a_time == (datetime(2026, 3, 1, 10, tzinfo=UTC) if source_first else datetime(2026, 3, 4, 22, 30,
                                                                                              tzinfo=UTC))


def test_a_file_changed_since_its_commit_or_outside_git_is_dated_by_its_mtime(tmp_path):
    for name in ("kuznetsova", "zaitsev"):
        shutil.copytree(COHORT / name, tmp_path / name)
    _commit(tmp_path / "kuznetsova", "2026-03-05T12:00:00+00:00")
    changed = tmp_path / "kuznetsova" / "counter-backend" / "Dockerfile.nonroot"
    changed.write_text(changed.read_text() + "# edited\n")
    os.utime(changed, (datetime(2026, 3, 9, tzinfo=UTC).timestamp(),) * 2)
    os.utime(tmp_path / "zaitsev" / "counter-backend" / "Dockerfile.nonroot",
             (datetime(2026, 3, 7, tzinfo=UTC).timestamp(),) * 2)  # no git at all
    records, _ = records_from_dirs([tmp_path / "kuznetsova", tmp_path / "zaitsev"], A)
    times = {(Path(r.id).name, r.variant): r.timestamp for r in records}
    assert times[("kuznetsova", "nonroot")] == datetime(2026, 3, 9, tzinfo=UTC)  # edited: not the commit's
    assert times[("kuznetsova", "single")] == datetime(2026, 3, 5, 12, tzinfo=UTC)  # committed as is
    assert times[("zaitsev", "nonroot")] == datetime(2026, 3, 7, tzinfo=UTC)


# -- the command -----------------------------------------------------------------------------------
def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader.cli", "similarity", *args], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2])


def test_json_output_is_the_contract_others_rely_on():
    dirs = [str(COHORT / n) for n in ("kuznetsova", "orlova", "sokolov", "zaitsev", "abramova")]
    result = run_cli(*dirs, "--format", "json")
    assert result.returncode == 0, result.stderr
    pairs = json.loads(result.stdout)["pairs"]
    assert pairs and [p["score"] for p in pairs] == sorted((p["score"] for p in pairs), reverse=True)
    for p in pairs:
        assert {"a", "b", "variant", "score", "flagged", "regions"} <= set(p)
        assert p["a"] in dirs and p["b"] in dirs and p["variant"] in (*VARIANTS, ALL) and 0 <= p["score"] <= 1
        assert p["flagged"] == (p["score"] >= CONFIG.threshold)
    top = pairs[0]
    assert top["flagged"] and {top["a"], top["b"]} in ({dirs[1], dirs[2]}, {dirs[0], dirs[3]})
    assert {"a_path", "a_lines", "a_text", "b_path", "b_lines", "b_text"} <= set(top["regions"][0])


def test_text_shows_the_top_pairs_with_their_matching_lines_and_csv_one_row_each():
    dirs = [str(COHORT / n) for n in ("kuznetsova", "zaitsev", "abramova")]
    text = run_cli(*dirs, "--top", "1").stdout
    assert "FLAGGED" in text and "a reason to look, not a verdict" in text
    assert "counter-backend/Dockerfile." in text and "|" in text and text.count("FLAGGED") == 1
    rows = list(csv.DictReader(io.StringIO(run_cli(*dirs, "--format", "csv").stdout)))
    assert rows and {r["variant"] for r in rows} == {*VARIANTS, ALL} and all(r["flagged"] == "1" for r in rows)


def test_an_unparsable_file_is_named_and_the_rest_compared(tmp_path):
    for name in ("kuznetsova", "zaitsev"):
        shutil.copytree(COHORT / name, tmp_path / name)
    (tmp_path / "zaitsev" / "counter-backend" / "Dockerfile.single").write_text("RUN echo no FROM\n")
    result = run_cli(str(tmp_path / "kuznetsova"), str(tmp_path / "zaitsev"), "--format", "json")
    report = json.loads(result.stdout)
    assert any("Dockerfile.single" in s for s in report["skipped"])
    assert {p["variant"] for p in report["pairs"] if p["flagged"]} == {"multistage", "nonroot", ALL}  # 2 of 3


def test_a_base_file_pattern_that_matches_nothing_is_a_configuration_error(tmp_path):
    course = tmp_path / "course.toml"  # its base_files are relative to it: nothing there
    text = A.source.read_text()
    course.write_text(text)
    with pytest.raises(ConfigError, match="matches no file"):
        load_config(assignment_mod.load(course))
    result = run_cli(str(COHORT / "belov"), "--assignment", str(course))
    assert result.returncode == 2 and "matches no file" in result.stderr
    course.write_text(text.replace("min_evidence = 12", "min_evidance = 12"))
    with pytest.raises(ConfigError, match="unknown keys"):
        load_config(assignment_mod.load(course))
