"""A submission's history (grader/store/events.py) on a real SQLite file and a real PostgreSQL database."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import pytest

from grader.store import Dockerfile, SubmissionEvent
from tests.unit.conftest import make_report


def test_events_come_back_oldest_first_as_frozen_records(store, push):
    sub = push()
    store.add_event(sub.id, "received")
    store.add_event(sub.id, "extension", actor="petrova", reason="ill, certificate seen",
                    detail={"until": "2026-12-08T23:59:00+03:00"})
    first, second = store.events(sub.id)
    assert (first.kind, first.actor, first.reason, first.detail) == ("received", None, None, None)
    assert (second.kind, second.actor, second.reason, second.detail) == (
        "extension", "petrova", "ill, certificate seen", {"until": "2026-12-08T23:59:00+03:00"})
    assert isinstance(first, SubmissionEvent) and first.submission_id == sub.id and first.id < second.id
    assert isinstance(first.at, datetime) and first.at.tzinfo is not None and first.at <= second.at
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.kind = "graded"  # type: ignore[misc]


def test_events_of_a_project_span_its_submissions_and_no_other_projects(store, push):
    a1, other, a2 = push(project_id=1), push(project_id=2), push(project_id=1)
    store.add_event(a1.id, "received")
    store.add_event(other.id, "received")
    store.add_event(a2.id, "received")
    store.add_event(a1.id, "superseded", detail={"by": a2.id})
    assert [(e.submission_id, e.kind) for e in store.events_for_project(1)] == [
        (a1.id, "received"), (a2.id, "received"), (a1.id, "superseded")]
    assert [e.submission_id for e in store.events_for_project(2)] == [other.id]
    assert store.events_for_project(3) == [] and store.events(12345) == []


def test_add_event_refuses_an_unknown_kind_an_overlong_actor_and_an_unknown_submission(store, push):
    sub = push()
    with pytest.raises(ValueError, match="kind"):
        store.add_event(sub.id, "regrade")
    with pytest.raises(ValueError, match="actor"):
        store.add_event(sub.id, "graded", actor="x" * 256)
    with pytest.raises(ValueError, match="no submission 12345"):
        store.add_event(12345, "graded")
    assert store.events(sub.id) == []
    store.add_event(sub.id, "graded", actor="x" * 255)  # control: the longest name fits
    assert len(store.events(sub.id)) == 1


def test_finish_with_an_event_records_it_with_the_grade(store, push):
    sub = push()
    store.start(sub.id)
    assert store.finish(sub.id, make_report(4.5), "0.1.0", event="graded", detail={"assignment": "sha256:ab"})
    [event] = store.events(sub.id)
    assert (event.kind, event.actor, event.reason) == ("graded", None, None)
    assert event.detail == {"old_score": None, "new_score": 4.5, "assignment": "sha256:ab"}
    assert event.at >= store.get(sub.id).started_at


def test_finish_without_an_event_records_none_and_a_finish_refused_records_none(store, push):
    sub = push()
    store.start(sub.id)
    assert store.finish(sub.id, make_report(5), "0.1.0")
    assert store.events(sub.id) == []
    assert store.finish(sub.id, make_report(5), "0.1.0", event="graded") is False  # not running any more
    assert store.events(sub.id) == []


def test_a_grade_that_cannot_be_written_leaves_no_event_either(store, push):
    sub = push()
    store.start(sub.id)
    twice = [Dockerfile("single", "a", "FROM a\n"), Dockerfile("single", "b", "FROM b\n")]  # one per variant only
    with pytest.raises(Exception, match="(?i)unique"):
        store.finish(sub.id, make_report(5), "0.1.0", dockerfiles=twice, event="graded")
    assert store.events(sub.id) == [] and store.get(sub.id).state == "running"  # one transaction
    assert store.finish(sub.id, make_report(5), "0.1.0", dockerfiles=twice[:1], event="graded")  # control
    assert [e.kind for e in store.events(sub.id)] == ["graded"]


def test_a_regrade_records_who_asked_and_why_with_the_request_and_with_the_new_grade(store, graded):
    sub = graded(3.0)
    assert store.requeue([sub.id], event="regrade_requested", actor="petrova", reason="probe fixed") == [sub.id]
    assert store.start(sub.id)
    assert store.finish(sub.id, make_report(4.5), "0.2.0", event="regraded")
    request, regraded = store.events(sub.id)
    assert (request.kind, request.actor, request.reason) == ("regrade_requested", "petrova", "probe fixed")
    assert (regraded.kind, regraded.actor, regraded.reason) == ("regraded", "petrova", "probe fixed")
    assert regraded.detail == {"old_score": 3.0, "new_score": 4.5}


def test_a_grade_names_only_a_request_it_answers_and_the_caller_can_name_its_own(store, graded):
    sub = graded(3.0)
    store.requeue([sub.id], event="regrade_requested", actor="petrova", reason="probe fixed")
    store.start(sub.id)
    store.finish(sub.id, make_report(4.0), "0.2.0", event="regraded")
    store.requeue([sub.id])  # a regrade with no request recorded (e.g. `grader regrade --stuck`)
    store.start(sub.id)
    store.finish(sub.id, make_report(4.5), "0.2.0", event="regraded")  # answers no open request
    store.requeue([sub.id], event="regrade_requested", actor="petrova", reason="again")
    store.start(sub.id)
    store.finish(sub.id, make_report(5.0), "0.2.0", event="regraded", actor="sidorov", reason="by hand")
    assert [(e.kind, e.actor, e.reason, (e.detail or {}).get("old_score")) for e in store.events(sub.id)] == [
        ("regrade_requested", "petrova", "probe fixed", None),
        ("regraded", "petrova", "probe fixed", 3.0),
        ("regraded", None, None, 4.0),
        ("regrade_requested", "petrova", "again", None),
        ("regraded", "sidorov", "by hand", 4.5)]


def test_requeue_records_its_event_only_for_what_it_requeued(store, push, graded):
    done, running = graded(4.0), push()
    store.start(running.id)
    assert store.requeue([done.id, running.id], event="regrade_requested", actor="petrova") == [done.id]
    assert [e.kind for e in store.events(done.id)] == ["regrade_requested"]
    assert store.events(running.id) == []
    other = graded(3.0)
    with pytest.raises(ValueError, match="kind"):
        store.requeue([other.id], event="regrade")
    assert store.get(other.id).state == "graded" and store.events(other.id) == []  # refused before any write


def test_a_forgotten_submission_takes_its_history_with_it(store, push):
    gone, kept = push(), push()
    store.add_event(gone.id, "received")
    store.add_event(kept.id, "received")
    store.forget(gone.id)
    assert store.get(gone.id) is None and store.events(gone.id) == []
    assert [e.submission_id for e in store.events_for_project(1)] == [kept.id]
