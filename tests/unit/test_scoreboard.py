"""grader.scoreboard: best, latest, late and on-time scores per student, as JSON and CSV (both backends)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta

import pytest

from grader.scoreboard import CSV_FIELDS, SCHEMA, scoreboard, to_csv
from tests.unit.conftest import T0

ENTRY_KEYS = {"student", "project", "latest_score", "best_score", "max_score", "on_time_score", "sha",
              "graded_at", "late", "report_url", "variants", "attempts", "name", "email", "student_id"}


@pytest.fixture
def course(store, graded, push):
    """ivanov: 3, then 5 on time, then 4 late. petrov: 2, then an ungradable and a queued push.
    sidorov: nothing graded."""
    iv = dict(project_id=1, project_path="devops-2026/ivanov-docker", student="ivanov")
    graded(3, received_at=T0, **iv)
    best = graded(5, received_at=T0 + timedelta(hours=1), **iv)
    latest = graded(4, received_at=T0 + timedelta(days=2), late=True,
                    variants={"single": 1.5, "multistage": 1.5, "nonroot": 1.0}, **iv)

    pe = dict(project_id=2, project_path="devops-2026/petrov-docker", student="petrov")
    petrov = graded(2, received_at=T0, variants={"single": 1.5, "multistage": 0.5}, **pe)
    failed = push(received_at=T0 + timedelta(hours=2), **pe)
    store.mark_ungradable(failed.id, "engine down")
    push(received_at=T0 + timedelta(hours=3), **pe)

    si = dict(project_id=3, project_path="devops-2026/sidorov-docker", student="sidorov")
    old, new = push(received_at=T0, **si), push(received_at=T0 + timedelta(hours=1), **si)
    store.supersede_older(3, new.id)
    store.mark_ungradable(new.id, "engine down")
    return {"ivanov_best": best, "ivanov_latest": latest, "petrov": petrov, "sidorov_old": old}


def by_student(board: dict) -> dict:
    return {e["student"]: e for e in board["entries"]}


def test_scoreboard_has_the_versioned_envelope_and_is_json(store, course):
    board = scoreboard(store)
    assert board["schema"] == SCHEMA == "grader.scoreboard/1"
    assert datetime.fromisoformat(board["generated_at"]).tzinfo is not None
    assert json.loads(json.dumps(board)) == board
    assert all(set(e) >= ENTRY_KEYS for e in board["entries"])


def test_only_students_with_a_graded_push_have_an_entry_in_project_order(store, course):
    board = scoreboard(store)
    assert [(e["project"], e["student"]) for e in board["entries"]] == [
        ("devops-2026/ivanov-docker", "ivanov"), ("devops-2026/petrov-docker", "petrov")]


def test_latest_is_the_last_graded_push_and_best_the_highest(store, course):
    ivanov = by_student(scoreboard(store))["ivanov"]
    latest = course["ivanov_latest"]
    assert (ivanov["latest_score"], ivanov["best_score"], ivanov["max_score"]) == (4.0, 5.0, 5.0)
    assert ivanov["sha"] == latest.sha
    assert datetime.fromisoformat(ivanov["graded_at"]) == latest.finished_at
    assert ivanov["variants"] == {"single": 1.5, "multistage": 1.5, "nonroot": 1.0}


def test_a_late_latest_push_is_flagged_and_the_on_time_score_is_the_best_before_it(store, course):
    ivanov = by_student(scoreboard(store))["ivanov"]
    assert ivanov["late"] is True
    assert ivanov["on_time_score"] == 5.0


def test_ungradable_and_queued_pushes_do_not_replace_the_last_graded_one(store, course):
    petrov = by_student(scoreboard(store))["petrov"]
    assert (petrov["latest_score"], petrov["best_score"], petrov["sha"]) == (2.0, 2.0, course["petrov"].sha)
    assert petrov["late"] is False and petrov["on_time_score"] == 2.0


def test_a_deadline_given_judges_lateness_instead_of_the_recorded_flag(store, course):
    extended = scoreboard(store, deadline=T0 + timedelta(days=3))
    assert extended["deadline"] == (T0 + timedelta(days=3)).isoformat()
    ivanov = by_student(extended)["ivanov"]
    assert ivanov["late"] is False and ivanov["on_time_score"] == 5.0

    strict = by_student(scoreboard(store, deadline=T0 - timedelta(minutes=1)))
    assert strict["ivanov"]["late"] is True and strict["ivanov"]["on_time_score"] is None
    assert strict["petrov"]["on_time_score"] is None


def test_on_time_score_is_none_when_every_graded_push_was_late(store, graded):
    graded(5, late=True)
    [entry] = scoreboard(store)["entries"]
    assert entry["on_time_score"] is None and entry["best_score"] == 5.0


def test_a_naive_deadline_is_refused(store):
    with pytest.raises(ValueError, match="aware"):
        scoreboard(store, deadline=datetime(2026, 3, 1))


def test_an_empty_store_gives_an_empty_scoreboard(store):
    board = scoreboard(store)
    assert board["entries"] == []
    assert to_csv(board).splitlines() == [",".join(CSV_FIELDS)]


def test_csv_has_a_header_and_one_row_per_entry_with_a_column_per_variant(store, course):
    rows = list(csv.reader(io.StringIO(to_csv(scoreboard(store)))))
    assert rows[0] == CSV_FIELDS + ["multistage", "nonroot", "single"]
    assert len(rows) == 3
    ivanov, petrov = (dict(zip(rows[0], r, strict=True)) for r in rows[1:])
    assert (ivanov["project"], ivanov["student"]) == ("devops-2026/ivanov-docker", "ivanov")
    assert (ivanov["latest_score"], ivanov["best_score"], ivanov["on_time_score"], ivanov["late"]) == \
        ("4", "5", "5", "true")
    assert (ivanov["single"], ivanov["nonroot"]) == ("1.5", "1")
    assert ivanov["sha"] == course["ivanov_latest"].sha
    assert petrov["nonroot"] == ""  # a variant missing from a report is an empty cell
    assert petrov["late"] == "false"


def test_each_entry_links_its_latest_graded_push_report_page(store, course):
    ivanov = by_student(scoreboard(store, report_base_url="https://grader.example.edu/"))["ivanov"]
    latest = store.get(course["ivanov_latest"].id)
    assert ivanov["report_url"] == f"https://grader.example.edu/reports/{latest.token}"
    assert by_student(scoreboard(store))["ivanov"]["report_url"] is None  # no base URL, no link
    header, *rows = csv.reader(io.StringIO(to_csv(scoreboard(store, report_base_url="https://g.test"))))
    assert all(dict(zip(header, r, strict=True))["report_url"].startswith("https://g.test/reports/") for r in rows)


def test_csv_rows_are_sorted_by_project_then_student_whatever_the_entry_order(store, course):
    board = scoreboard(store)
    board["entries"].reverse()
    rows = list(csv.reader(io.StringIO(to_csv(board))))
    assert [r[:2] for r in rows[1:]] == [["devops-2026/ivanov-docker", "ivanov"],
                                        ["devops-2026/petrov-docker", "petrov"]]


def test_one_project_is_one_row_whoever_recorded_its_pushes(store, graded):
    # rows recorded under an older rule (the pusher's name) still make one row, named by the latest
    graded(3, project_id=5, project_path="devops-2026/team", student="b")
    graded(4, project_id=5, project_path="devops-2026/team", student="team")
    board = scoreboard(store)
    assert [(e["student"], e["latest_score"], e["best_score"], e["attempts"]) for e in board["entries"]] == [
        ("team", 4.0, 4.0, 2)]


def test_roster_columns_come_from_the_roster_and_are_null_when_unlisted(store, course, tmp_path):
    from grader.intake import Roster
    path = tmp_path / "roster.csv"
    path.write_text("project,student,name,email,student_id\n"
                    "devops-2026/ivanov-docker,ivanov,Иванов Иван,ivanov@example.edu,2026-0042\n", encoding="utf-8")
    board = scoreboard(store, roster=Roster.load(path))
    ivanov, petrov = by_student(board)["ivanov"], by_student(board)["petrov"]
    assert (ivanov["name"], ivanov["email"], ivanov["student_id"]) == ("Иванов Иван", "ivanov@example.edu", "2026-0042")
    assert (petrov["name"], petrov["email"], petrov["student_id"]) == (None, None, None)
