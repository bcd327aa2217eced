"""Similarity from the store (grader/similarity/stored.py): the Dockerfiles a grading took are kept
with its verdict, the course is compared from them (`grader similarity --group`), the stored
fingerprints spare every parse, and a new push is compared against them alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

import grader.similarity.index as index_mod
from grader import assignment as assignment_mod
from grader.similarity import ALL, compare, load_config
from grader.similarity import stored as stored_mod
from grader.similarity.local import records_from_dirs
from grader.store import Store
from tests.conftest import FIXTURES, REFERENCE_REPO
from tests.unit.conftest import T0, make_report, new_sha

A = assignment_mod.load()
CONFIG = load_config(A)
COHORT = FIXTURES / "similarity" / "cohort"
VARIANTS = ("single", "multistage", "nonroot")
GROUP = "devops-2026"
# The copiers' and sources' push times: kuznetsova a day before zaitsev copied her; orlova's copy of
# sokolov's non-root file reached GitLab before sokolov pushed it (he worked on it locally for longer).
PUSHED = {"kuznetsova": T0, "zaitsev": T0 + timedelta(days=1), "orlova": T0 + timedelta(hours=2),
          "sokolov": T0 + timedelta(hours=5)}


def project(name: str) -> str:
    return f"{GROUP}/{name}-docker"


def grade_into(store: Store, directory: Path, project_id: int, name: str | None = None,
               when: datetime | None = None) -> int:
    """A push of `directory` recorded and graded (the report is given; the Dockerfiles are kept as
    the worker keeps them)."""
    name = name or directory.name
    when = when or PUSHED.get(name, T0 + timedelta(minutes=project_id))
    sub, _ = store.record_push(project_id=project_id, project_path=project(name), student=name, sha=new_sha(),
                               ref="refs/heads/main", event_uuid=None, received_at=when + timedelta(seconds=3),
                               late=False, pushed_at=when, pushed_at_source="push_event")
    assert store.start(sub.id)
    assert store.finish(sub.id, make_report(5), "test", dockerfiles=stored_mod.dockerfiles_of(directory, A))
    return sub.id


def cohort_dirs() -> list[Path]:
    return [*sorted(COHORT.iterdir()), REFERENCE_REPO]


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> tuple[str, dict[str, int]]:
    """A SQLite store holding the whole fixture cohort and the reference, graded: (url, ids by name)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('course') / 'grader.db'}"
    store = Store(url)
    ids = {d.name: grade_into(store, d, i) for i, d in enumerate(cohort_dirs(), start=1)}
    store.close()
    return url, ids


@pytest.fixture
def course_store(course) -> Store:
    store = Store(course[0])
    yield store
    store.close()


def by_name(pairs) -> dict[tuple[str, str, str], object]:
    """Pairs by (student, student, variant), the students in name order (a project path or a
    directory: the same student)."""
    def name(p: str) -> str:
        return p.split("/")[-1].removesuffix("-docker")
    return {(*sorted((name(p.a), name(p.b))), p.variant): p for p in pairs}


class Parses:
    """Counts the students' Dockerfiles the similarity index parses (`texts`); the course's own
    files, which every index parses to discount them, are not counted."""

    def __init__(self, monkeypatch) -> None:
        self.texts: list[str] = []
        real = index_mod.normalise
        course = {t for _, t in CONFIG.base}

        def counting(text: str, path: str = "Dockerfile"):
            if text not in course:
                self.texts.append(text)
            return real(text, path)

        monkeypatch.setattr(index_mod, "normalise", counting)


# -- what is kept ----------------------------------------------------------------------------------
def test_each_graded_submission_keeps_its_dockerfiles_text_path_variant_and_fingerprint(course_store, course):
    files = course_store.dockerfiles(course[1]["zaitsev"])
    assert [(d.variant, d.path) for d in files] == [(v, f"counter-backend/Dockerfile.{v}") for v in sorted(VARIANTS)]
    for d in files:
        assert d.text == (COHORT / "zaitsev" / d.path).read_text()
        assert d.fingerprint["key"] and len(d.fingerprint["signature"]) == index_mod.NUM_PERM
        assert d.fingerprint["shingles"]  # the evidence, skeleton and course files taken out


def test_an_assignment_without_a_similarity_table_keeps_the_files_without_fingerprints(tmp_path):
    course = tmp_path / "course.toml"
    rubric = A.source.read_text()
    course.write_text(rubric[:rubric.index("[similarity]")])
    files = stored_mod.dockerfiles_of(COHORT / "belov", assignment_mod.load(course))
    assert len(files) == 3 and all(d.fingerprint is None for d in files)
    assert all(d.fingerprint for d in stored_mod.dockerfiles_of(COHORT / "belov", A))  # control


def test_a_file_any_database_would_refuse_is_kept_as_shown_with_its_verdict(store, push, tmp_path):
    student = tmp_path / "nul"
    shutil.copytree(COHORT / "belov", student)
    single = student / "counter-backend" / "Dockerfile.single"
    single.write_bytes(single.read_bytes() + b"# a NUL \x00 here\n")
    files = stored_mod.dockerfiles_of(student, A)
    sub = push()
    store.start(sub.id)
    assert store.finish(sub.id, make_report(5), "test", dockerfiles=files)  # PostgreSQL's text refuses NUL
    kept = next(d for d in store.dockerfiles(sub.id) if d.variant == "single")
    assert kept.text.endswith("# a NUL \ufffd here\n") and kept.fingerprint


# -- the course from the store ---------------------------------------------------------------------
def test_the_store_gives_the_pairs_the_directories_give(course_store, monkeypatch):
    parses = Parses(monkeypatch)
    index, subs = stored_mod.load(course_store, CONFIG, [GROUP])
    assert len(subs) == 23
    stored_texts = {d.text for s in subs.values() for d in s.dockerfiles}
    assert not [t for t in parses.texts if t in stored_texts]  # built from stored fingerprints: nothing parsed
    from_store = by_name(index.pairs())
    parsed_for_regions = len([t for t in parses.texts if t in stored_texts])
    assert parsed_for_regions < len(stored_texts) / 2  # only the files of the listed pairs, to show their lines
    records, _ = records_from_dirs(cohort_dirs(), A)
    from_dirs = by_name(compare(records, CONFIG)[0])
    assert {k: round(p.score, 6) for k, p in from_store.items()} == {k: round(p.score, 6) for k, p in from_dirs.items()}
    assert {k for k, p in from_store.items() if p.flagged} == {
        ("kuznetsova", "zaitsev", v) for v in (*VARIANTS, ALL)} | {("orlova", "sokolov", "nonroot")}
    regions = [(r.a_lines, r.b_lines) for r in from_store[("kuznetsova", "zaitsev", "nonroot")].regions]
    assert regions == [((4, 15), (4, 12)), ((18, 19), (21, 21)), ((22, 24), (18, 20)), ((28, 33), (25, 30))]


def test_who_pushed_first_comes_from_the_submissions_push_times(course_store):
    index, _ = stored_mod.load(course_store, CONFIG, [GROUP])
    found = by_name(index.pairs())
    copied = found[("kuznetsova", "zaitsev", "nonroot")]
    assert copied.first == project("kuznetsova")
    assert (copied.a_time, copied.b_time) == (PUSHED["kuznetsova"], PUSHED["zaitsev"])
    # control: the copier can be first to push; the time says so, whatever the names' order
    assert found[("orlova", "sokolov", "nonroot")].first == project("orlova")


def test_a_later_push_of_the_same_text_keeps_the_time_it_was_first_pushed(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    source = tmp_path / "kuznetsova"
    shutil.copytree(COHORT / "kuznetsova", source)
    grade_into(store, source, 1)
    grade_into(store, COHORT / "zaitsev", 2)
    (source / "README.md").write_text("fixed a typo\n")  # pushed again three days later, Dockerfiles unchanged
    latest = grade_into(store, source, 1, when=T0 + timedelta(days=3))
    index, subs = stored_mod.load(store, CONFIG, [GROUP])
    assert subs[project("kuznetsova")].id == latest  # the latest submission is compared...
    pair = by_name(index.pairs())[("kuznetsova", "zaitsev", "nonroot")]
    assert pair.first == project("kuznetsova") and pair.a_time == T0  # ...dated by its text's first push
    changed = source / "counter-backend" / "Dockerfile.nonroot"
    changed.write_text(changed.read_text() + "# reworded\n")  # control: a changed text is a new text
    grade_into(store, source, 1, when=T0 + timedelta(days=4))
    index, _ = stored_mod.load(store, CONFIG, [GROUP])
    pair = by_name(index.pairs())[("kuznetsova", "zaitsev", "nonroot")]
    assert pair.first == project("zaitsev") and pair.a_time == T0 + timedelta(days=4)
    store.close()


def test_only_the_projects_under_the_group_and_each_ones_latest_submission(course_store, course):
    other = grade_into(course_store, COHORT / "abramova", 900, "stranger")  # a project of another group
    with course_store._session() as s:
        s.execute(text("UPDATE submissions SET project_path = 'other-course/stranger' WHERE id = :id"), {"id": other})
    assert project("stranger") not in stored_mod.load(course_store, CONFIG, [GROUP])[1]
    assert "other-course/stranger" in stored_mod.load(course_store, CONFIG, [])[1]  # no group: every project
    _, subs = stored_mod.load(course_store, CONFIG, [GROUP])
    assert subs[project("belov")].id == course[1]["belov"]


def test_a_fingerprint_made_for_other_course_files_is_worked_out_again_and_stored_back(course_store, course):
    [single, *_] = [d for d in course_store.dockerfiles(course[1]["belov"]) if d.variant == "single"]
    course_store.set_fingerprints({single.id: dict(single.fingerprint, key="made-for-last-year")})
    stored_mod.load(course_store, CONFIG, [GROUP])
    again = next(d for d in course_store.dockerfiles(course[1]["belov"]) if d.variant == "single")
    assert again.fingerprint == single.fingerprint  # the current key, the same evidence


# -- incremental -----------------------------------------------------------------------------------
def test_a_new_push_is_compared_against_the_stored_fingerprints_alone(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    for i, d in enumerate(cohort_dirs(), start=1):
        if d.name != "zaitsev":
            grade_into(store, d, i)
    newcomer = grade_into(store, COHORT / "zaitsev", 99)  # its fingerprint is worked out as it is graded
    parses = Parses(monkeypatch)
    pairs = stored_mod.pairs_of(store, CONFIG, newcomer, [GROUP])
    assert pairs and all(project("zaitsev") in (p.a, p.b) for p in pairs)
    assert {(p.variant, p.flagged) for p in pairs if project("kuznetsova") in (p.a, p.b)} == {
        (v, True) for v in (*VARIANTS, ALL)}
    others = {d.text for s in store.compared_submissions([GROUP]) for d in s.dockerfiles if s.id != newcomer}
    reparsed = {t for t in parses.texts if t in others}
    partners = {p.a if p.b == project("zaitsev") else p.b for p in pairs}
    assert len(reparsed) <= 3 * len(partners) < len(others) / 3  # only the listed partners' files, for their lines
    store.close()


# -- the command -----------------------------------------------------------------------------------
def run_cli(url: str, *args: str, groups: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env["GRADER_DATABASE_URL"] = url
    if groups is not None:
        env["GRADER_GROUPS"] = groups
    return subprocess.run([sys.executable, "-m", "grader.cli", "similarity", *args], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).parents[2], env=env)


def test_group_json_is_the_same_contract_with_the_time_order(course):
    result = run_cli(course[0], "--group", GROUP, "--format", "json")
    assert result.returncode == 0, result.stderr
    pairs = json.loads(result.stdout)["pairs"]
    assert [p["score"] for p in pairs] == sorted((p["score"] for p in pairs), reverse=True)
    for p in pairs:
        assert {"a", "b", "variant", "score", "flagged", "regions", "first", "a_time", "b_time"} <= set(p)
        assert p["variant"] in (*VARIANTS, ALL) and 0 <= p["score"] <= 1 and p["flagged"] == (p["score"] >= 0.5)
    flagged = {(p["a"], p["b"], p["variant"]) for p in pairs if p["flagged"]}
    assert (project("kuznetsova"), project("zaitsev"), "nonroot") in flagged and len(flagged) == 5
    top = next(p for p in pairs if p["variant"] == "nonroot" and p["b"] == project("zaitsev"))
    assert top["first"] == project("kuznetsova") and top["a_time"] == PUSHED["kuznetsova"].isoformat()
    assert {"a_path", "a_lines", "a_text", "b_path", "b_lines", "b_text"} <= set(top["regions"][0])


def test_without_dirs_or_group_the_settings_groups_are_compared_and_text_and_csv_work(course):
    shown = run_cli(course[0], "--top", "1", groups=json.dumps([GROUP])).stdout
    assert "FLAGGED" in shown and shown.count("FLAGGED") == 1 and "first: " in shown
    csv_out = run_cli(course[0], "--format", "csv", groups=json.dumps([GROUP])).stdout
    assert csv_out.startswith("a,b,variant,score") and project("zaitsev") in csv_out
    nothing = run_cli(course[0], "--group", "no-such-group")
    assert nothing.returncode == 1 and "no graded submission" in nothing.stderr  # control: the group filters
    both = run_cli(course[0], str(COHORT / "belov"), "--group", GROUP)
    assert both.returncode == 2 and "not both" in both.stderr


# -- the worker ------------------------------------------------------------------------------------
@pytest.fixture
def service(store: Store, tmp_path: Path):
    from grader.config import Settings
    from grader.gitlab import GitLab
    from grader.service import Service
    from tests.support.fake_gitlab import FakeGitLab

    with FakeGitLab() as fake:
        settings = Settings(gitlab_url=fake.url, gitlab_token=fake.token, work_dir=tmp_path / "work",
                            report_base_url="http://grader.test")
        yield Service(settings, store, GitLab(fake.url, fake.token, timeout_s=5)), fake


def test_the_worker_keeps_the_dockerfiles_it_graded_with_the_verdict(service, store, tmp_path, monkeypatch):
    import grader.pipeline as pipeline

    svc, fake = service
    project_, sha = fake.create_repo_project(project("zaitsev"), tmp_path / "repos", source=COHORT / "zaitsev")
    sub_id, _ = svc.record(svc.gitlab.project(project_.path_with_namespace), sha, "main")
    seen: list[Path] = []

    def graded(repo: Path, *args, **kwargs):  # the engine-bound step only; the archive and discovery are real
        seen.append(repo)
        return make_report(4.5), 4.5

    monkeypatch.setattr(pipeline, "grade_report", graded)
    assert svc.grade(sub_id, post=False).state == "graded"
    files = store.dockerfiles(sub_id)
    assert [(d.variant, d.path) for d in files] == [(v, f"counter-backend/Dockerfile.{v}") for v in sorted(VARIANTS)]
    assert all(d.text == (COHORT / "zaitsev" / d.path).read_text() and d.fingerprint for d in files)
    assert seen and not seen[0].exists()  # read from the archive's files before the workspace went
    assert store.get(sub_id).score == 4.5  # with its verdict
