"""`grader regrade` as a declaration over the instructor service: what it passes down (who
regrades and why, for each submission's history) and what it prints, the service stubbed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from grader.cli import app
from grader.instructor import Preview


class _Instructor:
    def __init__(self) -> None:
        self.regraded: list[tuple] = []

    def select(self, *, project, group, all_pushes, stuck):
        return [3, 4]

    def groups_of(self, ids):
        return {"devops-2026"}

    def preview(self, ids):
        yield Preview("ivanov", "devops-2026/ivanov", 5.0, 3.5)
        yield Preview("petrov", "devops-2026/petrov", 2.0, None, error="GitLab did not answer")

    def regrade(self, ids, *, stuck, reason, actor):
        self.regraded.append((list(ids), stuck, reason, actor))
        return len(ids)


@pytest.fixture
def instructor(monkeypatch):
    stub = _Instructor()
    monkeypatch.setattr("grader.cli.instructor.root", lambda: SimpleNamespace(instructor=stub))
    return stub


def test_the_reason_and_who_regrades_reach_the_service(instructor, monkeypatch):
    monkeypatch.setenv("GRADER_ACTOR", "prof-smirnova")
    result = CliRunner().invoke(app, ["regrade", "--group", "devops-2026", "--reason", "rubric 1.1: exec form"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "requeued 2 submission(s)\n"
    assert instructor.regraded == [([3, 4], False, "rubric 1.1: exec form", "prof-smirnova")]


def test_without_grader_actor_the_login_regrades_and_no_reason_is_none(instructor, monkeypatch):
    monkeypatch.delenv("GRADER_ACTOR", raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "ta-ivanova")
    result = CliRunner().invoke(app, ["regrade", "--stuck"])
    assert (result.exit_code, result.stdout) == (0, "sent again 2 submission(s)\n")
    assert instructor.regraded == [([3, 4], True, None, "ta-ivanova")]


def test_a_dry_run_prints_old_and_new_and_queues_nothing_whatever_the_reason(instructor):
    text = CliRunner().invoke(app, ["regrade", "--all", "--dry-run", "--reason", "why"])
    assert text.exit_code == 0, text.output
    assert text.stdout == "ivanov 5 -> 3.5\npetrov 2 -> —\n"
    assert text.stderr == "  petrov: cannot grade now (GitLab did not answer)\n"
    rows = CliRunner().invoke(app, ["regrade", "--all", "--dry-run", "--format", "json"])
    assert json.loads(rows.stdout) == [
        {"student": "ivanov", "project": "devops-2026/ivanov", "old_score": 5.0, "new_score": 3.5},
        {"student": "petrov", "project": "devops-2026/petrov", "old_score": 2.0, "new_score": None}]
    assert instructor.regraded == []
