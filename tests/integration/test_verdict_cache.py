"""An unchanged re-push on the real engine: the second grading reuses the first's verdict in
under a second and says so; a verdict an infrastructure problem touched is never reused."""

from __future__ import annotations

import shutil
import time

import pytest

from grader import assignment as assignment_mod
from grader.pipeline import grade_report
from grader.verdict_cache import VerdictCache
from tests.conftest import BROKEN, REFERENCE_REPO, REFERENCE_SOURCE

pytestmark = pytest.mark.docker
A = assignment_mod.load()


def test_an_unchanged_repush_reuses_the_verdict_in_under_a_second(tmp_path, settings, engine):
    cache = VerdictCache(tmp_path / "verdicts")
    first, score = grade_report(REFERENCE_REPO, A, settings, engine, "en", cache=cache, source="commit aaaa1111")
    assert score == 5
    repo = tmp_path / "repush"
    shutil.copytree(REFERENCE_REPO, repo)
    (repo / "README.md").write_text("only the repository's README changed\n")
    started = time.monotonic()
    again, score = grade_report(repo, A, settings, engine, "en", cache=cache, source="commit bbbb2222")
    elapsed = time.monotonic() - started
    assert elapsed < 1.0 and score == 5
    assert again["notes"][0].startswith("These same Dockerfiles and build contexts were graded before (commit aaaa1111")
    assert again["variants"] == first["variants"]
    (repo / "counter-backend" / "Dockerfile.single").write_text(
        (REFERENCE_SOURCE / "Dockerfile.single").read_text().replace("EXPOSE 8080", "EXPOSE 8080\nLABEL a=b"))
    changed, _ = grade_report(repo, A, settings, engine, "en", cache=cache, source="commit cccc3333")
    assert not any("graded before" in n for n in changed["notes"])  # control: a changed file is built again


def test_a_verdict_touched_by_a_timeout_is_not_kept(tmp_path, settings, engine):
    cache = VerdictCache(tmp_path / "verdicts")
    hurried = settings.model_copy(update={"build_timeout_s": 15.0})
    grade_report(BROKEN / "server_in_run", A, hurried, engine, "en", reference=REFERENCE_SOURCE, cache=cache)
    assert not list((tmp_path / "verdicts").rglob("*.json"))
