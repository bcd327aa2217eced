"""A corpus that looks like a real course: each submission of tests/fixtures/course gets the verdict
an expert gives it (the reasoning is the comment at the top of its expected.toml), on the real engine.

Two editions (see expected.toml's `layout`):
- "earlier": the fixture holds only Dockerfiles, built against the course's reference source;
- "current": a repository is assembled — counter-backend/ is the reference source without its
  Dockerfiles and .dockerignore, and the fixture's files are copied over it at their paths (so
  fixture/counter-backend/Dockerfile.multistage lands next to pyproject.toml, fixture/Dockerfile.single
  in the repository root); it is graded with no reference, as the service grades a student's push.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader.pipeline import grade
from grader.report import to_json
from tests.conftest import FIXTURES, REFERENCE_SOURCE
from tests.integration.verdicts import assert_verdict, fixture_names, load_expected

pytestmark = pytest.mark.docker  # tests/integration's autouse fixtures need the engine
COURSE = FIXTURES / "course"
ASSIGNMENT = assignment_mod.load()
LAYOUTS = ("earlier", "current")
# The reference's own Dockerfiles and .dockerignore stay out of a current-edition repository, and so
# does what running its tests in the working tree may have left.
_NOT_THE_STUDENTS = shutil.ignore_patterns("Dockerfile.*", ".dockerignore", "__pycache__", ".pytest_cache",
                                           "*.pyc", ".venv", "dist")


def _student_files(fixture: Path) -> list[Path]:
    return sorted(p for p in fixture.rglob("*") if p.is_file() and p.name != "expected.toml")


def assemble(fixture: Path, layout: str, into: Path) -> Path:
    """The student's repository for this fixture, in `into`."""
    repo = into / "repo"
    if layout == "current":
        shutil.copytree(REFERENCE_SOURCE, repo / "counter-backend", ignore=_NOT_THE_STUDENTS)
    repo.mkdir(exist_ok=True)
    for src in _student_files(fixture):
        dest = repo / src.relative_to(fixture)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)  # bytes as they are: CRLF and BOM fixtures depend on it
    return repo


@pytest.mark.parametrize("name", fixture_names(COURSE))
def test_course_submission_gets_the_experts_verdict(name, tmp_path, settings, engine):
    expected = load_expected(COURSE / name)
    layout = expected.get("layout", "earlier")
    assert layout in LAYOUTS, f"{name}: layout must be one of {LAYOUTS}"
    repo = assemble(COURSE / name, layout, tmp_path)
    local = settings.model_copy(update={"build_timeout_s": float(expected.get("build_timeout", 600))})
    reference = REFERENCE_SOURCE if layout == "earlier" else None
    facts, scored = grade(repo, ASSIGNMENT, local, engine, reference=reference)
    assert_verdict(to_json(facts, scored, ASSIGNMENT, "en"), expected)


def test_every_course_fixture_explains_its_verdict_and_states_each_variant():
    names = fixture_names(COURSE)
    assert len(names) >= 25
    for name in names:
        text = (COURSE / name / "expected.toml").read_text(encoding="utf-8")
        assert text.startswith("# "), f"{name}: expected.toml must start with the expert's reasoning"
        expected = load_expected(COURSE / name)
        assert ("mistake" in expected) != ("description" in expected), name
        assert expected.get("layout", "earlier") in LAYOUTS, name
        assert expected["variants"], name
        for variant, verdict in expected["variants"].items():
            assert variant in {v.name for v in ASSIGNMENT.variants}, (name, variant)
            assert {"score", "failed"} <= verdict.keys(), (name, variant)
            assert (verdict["score"] == 0) == bool(verdict["failed"]), (name, variant)


def test_corpus_fixtures_are_student_files_not_copies_of_the_reference_source():
    for name in fixture_names(COURSE):
        for path in _student_files(COURSE / name):
            rel = path.relative_to(COURSE / name).as_posix()
            assert not rel.startswith(("counter-backend/src/", "counter-backend/tests/")), (name, rel)
            assert path.name not in ("pyproject.toml", "poetry.lock"), (name, rel)


def test_line_ending_and_bom_fixtures_keep_their_bytes():
    """A checkout that normalised line endings or dropped the BOM would test nothing."""
    crlf = (COURSE / "crlf_line_endings" / "Dockerfile.nonroot").read_bytes()
    assert crlf.count(b"\r\n") == crlf.count(b"\n") > 20 and b"\\\r\n" in crlf
    assert (COURSE / "utf8_bom" / "Dockerfile.multistage").read_bytes().startswith(b"\xef\xbb\xbf# ")
