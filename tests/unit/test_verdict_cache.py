"""The verdict cache's key and rules: what changes a verdict changes the key, what cannot does not;
only verdicts the machine did not touch are kept."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader.discovery import discover
from grader.facts import BuildFacts, RuntimeFacts
from grader.verdict_cache import VerdictCache, cacheable, key
from tests.conftest import REFERENCE_REPO
from tests.unit.factories import passing_submission

A = assignment_mod.load()


@pytest.fixture
def repo(tmp_path) -> Path:
    shutil.copytree(REFERENCE_REPO, tmp_path / "repo")
    return tmp_path / "repo"


def digest(repo: Path, lang: str = "ru", base: str = "sha256:base") -> str:
    return key(discover(repo, A, None), A, base, lang)


def test_the_same_input_gives_the_same_key(repo):
    assert digest(repo) == digest(repo)


@pytest.mark.parametrize("change", [
    lambda r: (r / "counter-backend" / "Dockerfile.single").write_text(
        (r / "counter-backend" / "Dockerfile.single").read_text() + "\n# a comment\n"),
    lambda r: (r / "counter-backend" / "src" / "counter_backend" / "app.py").write_text("# changed\n"),
    lambda r: (r / "counter-backend" / "README.md").write_text("copied into the image, so it counts\n"),
    lambda r: (r / "counter-backend" / "Dockerfile.nonroot").rename(r / "counter-backend" / "Dockerfile.non-root"),
])
def test_what_can_change_a_verdict_changes_the_key(repo, change):
    before = digest(repo)
    change(repo)
    assert digest(repo) != before


@pytest.mark.parametrize("change", [
    lambda r: (r / "README.md").write_text("the repository's own README is not in any build context\n"),
    lambda r: (r / "counter-backend" / "dist").mkdir(),  # kept out by .dockerignore
    lambda r: (r / "counter-backend" / "__pycache__").mkdir(),
])
def test_what_cannot_change_a_verdict_keeps_the_key(repo, change):
    before = digest(repo)
    change(repo)
    assert digest(repo) == before


def test_the_language_base_image_and_grader_version_are_part_of_the_key(repo, monkeypatch):
    import grader
    base = digest(repo)
    assert digest(repo, lang="en") != base and digest(repo, base="sha256:other") != base
    monkeypatch.setattr(grader, "__version__", "99.0")
    assert digest(repo) != base


def test_only_verdicts_the_machine_did_not_touch_are_cacheable():
    facts = passing_submission(A)
    assert cacheable(facts, A)
    single = facts.variants["single"]
    spoiled = {
        "timed out": replace(single, build=BuildFacts(False, 600.0, timed_out=True)),
        "killed": replace(single, build=BuildFacts(False, 9.0, exit_code=137, log_tail="exit code: 137")),
        "network": replace(single, build=BuildFacts(False, 9.0, exit_code=1,
                                                    log_tail="Temporary failure in name resolution")),
        "never answered": replace(single, runtime=RuntimeFacts(started=True, ready=False, error="no answer in 30 s")),
        "engine refused": replace(single, runtime=RuntimeFacts(started=False, error="cannot start")),
    }
    for why, variant in spoiled.items():
        facts.variants["single"] = variant
        assert not cacheable(facts, A), why
    facts.variants["single"] = replace(single, build=BuildFacts(
        False, 9.0, exit_code=1, log_tail="The requested command export does not exist."))  # the student's
    assert cacheable(facts, A)


def test_entries_are_stored_atomically_and_a_broken_one_is_a_miss(tmp_path):
    cache = VerdictCache(tmp_path / "verdicts")
    k = "a" * 64
    assert cache.get(k) is None
    cache.put(k, {"score": 5.0}, "devops-2026/x, commit 1234abcd", "2026-12-01T10:00:00+00:00")
    assert cache.get(k) == {"report": {"score": 5.0}, "source": "devops-2026/x, commit 1234abcd",
                            "graded_at": "2026-12-01T10:00:00+00:00"}
    (tmp_path / "verdicts" / "aa" / f"{k}.json").write_text("{half")
    assert cache.get(k) is None
    with pytest.raises(ValueError):
        cache.get("../../etc/passwd")
