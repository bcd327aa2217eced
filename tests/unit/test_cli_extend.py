"""`grader extend` and the scoreboard: an extension granted from the command line moves the
student's deadline, and `grader scoreboard` (the same board the page shows) applies it and the
assignment's late policy to `final_score`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from grader.assignment import DEFAULT_ASSIGNMENT
from grader.store import Store
from tests.support import reports as R

DEADLINE = datetime(2026, 12, 1, 20, 59, tzinfo=UTC)  # 23:59 Moscow time


def grader(tmp_path, *args: str) -> subprocess.CompletedProcess:
    course = tmp_path / "course.toml"
    if not course.exists():  # the course's rubric, with one point off per started day late
        course.write_text(DEFAULT_ASSIGNMENT.read_text(encoding="utf-8") +
                          '\n[late_policy]\nkind = "penalty_per_day"\nper_day = 1\n', encoding="utf-8")
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "GRADER_DATABASE_URL": f"sqlite:///{tmp_path / 'g.db'}",
           "GRADER_DEADLINE": DEADLINE.isoformat(), "GRADER_ASSIGNMENT_FILE": str(course)}
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True, text=True, timeout=60,
                          env=env, cwd=tmp_path)


def _graded_push(tmp_path, pushed: datetime) -> None:
    store = Store(f"sqlite:///{tmp_path / 'g.db'}")
    sub, _ = store.record_push(project_id=7, project_path="devops-2026/ivanov-docker", student="ivanov-docker",
                               sha="ab" * 20, ref="refs/heads/main", event_uuid=None, received_at=pushed, late=True,
                               pushed_at=pushed, pushed_at_source="push_event")
    assert store.start(sub.id) and store.finish(sub.id, R.report(R.full_marks(), provenance=False), "0.1.0")
    store.close()


def _final(tmp_path) -> float:
    result = grader(tmp_path, "scoreboard", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["entries"][0]["final_score"]


def test_a_late_push_loses_a_point_a_day_until_an_extension_covers_it(tmp_path):
    _graded_push(tmp_path, DEADLINE + timedelta(days=1, hours=2))  # two started days late
    assert _final(tmp_path) == 3.0
    granted = grader(tmp_path, "extend", "ivanov-docker", "--until", "2026-12-04T23:59:00+03:00", "--reason", "ill")
    assert granted.returncode == 0, granted.stderr
    assert _final(tmp_path) == 5.0
    shown = grader(tmp_path, "extend", "ivanov-docker")
    assert "2026-12-04T20:59:00+00:00" in shown.stdout and "ill" in shown.stdout
    assert grader(tmp_path, "extend", "ivanov-docker", "--remove").returncode == 0
    assert _final(tmp_path) == 3.0  # control: back to the course's deadline


def test_an_extension_before_the_deadline_or_without_an_offset_is_refused_in_one_line(tmp_path):
    earlier = grader(tmp_path, "extend", "ivanov-docker", "--until", "2026-11-30T23:59:00+03:00")
    naive = grader(tmp_path, "extend", "ivanov-docker", "--until", "2026-12-04T23:59:00")
    assert earlier.returncode == 2 and "is not after the course deadline" in earlier.stderr
    assert naive.returncode == 2 and "needs a UTC offset" in naive.stderr
    assert len(naive.stderr.strip().splitlines()) == 1
