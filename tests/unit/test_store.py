"""grader.store on a real SQLite file and a real PostgreSQL database (every test runs on both)."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import OperationalError

from grader.errors import ConfigError
from grader.store import Store, StoreUnavailable
from tests.unit.conftest import T0, make_report, new_sha


def count_rows(store: Store) -> int:
    return sum(store.status_counts().values())


# -- recording pushes ----------------------------------------------------------------------------


def test_record_push_creates_a_queued_submission_with_the_push_details(store):
    sha = new_sha()
    sub, created = store.record_push(project_id=7, project_path="devops-2026/ivanov-docker", student="ivanov",
                                     sha=sha.upper(), ref="refs/heads/main", event_uuid="e-1", received_at=T0,
                                     late=True)
    assert created is True
    again = store.get(sub.id)
    assert (again.project_id, again.project_path, again.student, again.sha, again.ref, again.event_uuid) == \
        (7, "devops-2026/ivanov-docker", "ivanov", sha, "refs/heads/main", "e-1")
    assert again.state == "queued" and again.late is True
    assert again.received_at == T0 and again.received_at.tzinfo is not None
    assert again.started_at is None and again.score is None and again.report is None


def test_redelivered_event_uuid_returns_the_existing_submission(store, push):
    first = push(event_uuid="evt-1")
    sub, created = store.record_push(project_id=1, project_path="devops-2026/project-1", student="ivanov",
                                     sha=new_sha(), ref="refs/heads/main", event_uuid="evt-1",
                                     received_at=T0, late=False)
    assert created is False
    assert sub.id == first.id and sub.sha == first.sha
    assert count_rows(store) == 1


@pytest.mark.parametrize("state", ["queued", "running", "graded"])
def test_same_commit_queued_running_or_graded_is_not_recorded_twice(store, push, state):
    first = push(event_uuid="evt-a")
    if state in ("running", "graded"):
        store.start(first.id)
    if state == "graded":
        store.finish(first.id, make_report(5), "0.1.0")
    sub, created = store.record_push(project_id=1, project_path="devops-2026/project-1", student="ivanov",
                                     sha=first.sha, ref="refs/heads/main", event_uuid="evt-b",
                                     received_at=T0, late=False)
    assert created is False
    assert sub.id == first.id and sub.state == state
    assert count_rows(store) == 1


@pytest.mark.parametrize("state", ["ungradable", "superseded"])
def test_same_commit_after_ungradable_or_superseded_is_recorded_again(store, push, state):
    first = push(event_uuid="evt-a")
    if state == "ungradable":
        store.mark_ungradable(first.id, "engine down")
    else:
        store.supersede_older(1, first.id + 1)
    sub, created = store.record_push(project_id=1, project_path="devops-2026/project-1", student="ivanov",
                                     sha=first.sha, ref="refs/heads/main", event_uuid="evt-b",
                                     received_at=T0, late=False)
    assert created is True and sub.id != first.id
    assert store.get(first.id).state == state


def test_same_commit_in_another_project_is_a_separate_submission(store, push):
    first = push(project_id=1)
    other = push(project_id=2, sha=first.sha)
    assert other.id != first.id


def test_record_push_refuses_a_malformed_sha_and_a_naive_time(store):
    args = dict(project_id=1, project_path="g/p", student="s", ref="refs/heads/main", event_uuid=None, late=False)
    with pytest.raises(ValueError, match="SHA"):
        store.record_push(sha="abc123", received_at=T0, **args)
    with pytest.raises(ValueError, match="aware"):
        store.record_push(sha=new_sha(), received_at=datetime(2026, 3, 1, 12, 0), **args)
    assert count_rows(store) == 0


def _record_at_barrier(store: Store, event: str, sha: str, barrier: threading.Barrier, results: list, i: int) -> None:
    barrier.wait()
    results[i] = store.record_push(project_id=1, project_path="g/p", student="s", sha=sha, ref="refs/heads/main",
                                   event_uuid=event, received_at=T0, late=False)


def test_concurrent_record_push_of_one_event_from_two_threads_creates_one_row(store_url):
    # Two Stores: separate engines and connections, as two webhook processes would have.
    stores = [Store(store_url), Store(store_url)]
    try:
        for n in range(10):
            barrier = threading.Barrier(2)
            results: list = [None, None]
            event, sha = str(uuid.uuid4()), new_sha()
            threads = [threading.Thread(target=_record_at_barrier,
                                        args=(stores[i], event, sha, barrier, results, i))
                       for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert all(r is not None for r in results), f"round {n}: a thread failed"
            assert sorted(created for _, created in results) == [False, True], f"round {n}"
            assert results[0][0].id == results[1][0].id
        assert count_rows(stores[0]) == 10
    finally:
        for s in stores:
            s.close()


def _record_in_process(url: str, event: str, sha: str, start: float) -> tuple[int, bool]:
    store = Store(url)
    time.sleep(max(0.0, start - time.time()))
    sub, created = store.record_push(project_id=1, project_path="g/p", student="s", sha=sha, ref="refs/heads/main",
                                     event_uuid=event, received_at=T0, late=False)
    store.close()
    return sub.id, created


def test_concurrent_record_push_of_one_event_from_two_processes_creates_one_row(store, store_url):
    event, sha = str(uuid.uuid4()), new_sha()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        start = time.time() + 2.0  # both processes past their imports, then both at once
        results = pool.starmap(_record_in_process, [(store_url, event, sha, start)] * 2)
    assert sorted(created for _, created in results) == [False, True]
    assert results[0][0] == results[1][0]
    assert count_rows(store) == 1


def test_record_push_that_loses_the_insert_race_returns_the_winners_row(store, store_url, monkeypatch):
    # The other process inserts between our duplicate check and our insert: the unique index refuses
    # our row, and the winner's is returned.
    winner = Store(store_url)
    try:
        first, _ = winner.record_push(project_id=1, project_path="g/p", student="s", sha=new_sha(),
                                      ref="refs/heads/main", event_uuid="evt-race", received_at=T0, late=False)
    finally:
        winner.close()
    real = Store._find_duplicate
    calls = []

    def blind_first_time(self, s, project_id, sha, event_uuid):
        calls.append(event_uuid)
        return None if len(calls) == 1 else real(self, s, project_id, sha, event_uuid)

    monkeypatch.setattr(Store, "_find_duplicate", blind_first_time)
    sub, created = store.record_push(project_id=1, project_path="g/p", student="s", sha=new_sha(),
                                     ref="refs/heads/main", event_uuid="evt-race", received_at=T0, late=False)
    assert len(calls) == 2
    assert created is False and sub.id == first.id
    assert count_rows(store) == 1


def test_a_push_recorded_with_its_status_puts_both_in_the_store_and_a_repeat_adds_neither(store):
    status = {"state": "pending", "name": "autograder", "description": "queued", "target_url": "u/reports/tok",
              "ref": "main", "coverage": None}
    sha = new_sha()
    first, created = store.record_push(project_id=1, project_path="g/p", student="s", sha=sha, ref="refs/heads/main",
                                       event_uuid="evt-status", received_at=T0, late=False, token="tok",
                                       status=status)
    again, again_created = store.record_push(project_id=1, project_path="g/p", student="s", sha=sha,
                                             ref="refs/heads/main", event_uuid="evt-status-2", received_at=T0,
                                             late=False, status=status)
    posts = store.due_posts(datetime.now(UTC) + timedelta(seconds=1))
    assert (created, again_created, again.id) == (True, False, first.id)
    assert store.get(first.id).token == first.token == "tok"
    assert [(p.submission_id, p.kind, p.payload) for p in posts] == [(first.id, "status", status)]


def test_pushes_recorded_at_once_by_many_threads_are_each_recorded_once(store_url):
    # 8 threads at once (the webhook's threadpool): the push writer commits what waits together;
    # each push is answered for itself, and a push sent by two threads at once is recorded once.
    store = Store(store_url)
    try:
        events = [(f"evt-many-{n % 24}", f"{n % 24:040x}") for n in range(48)]  # each event twice
        results: list = [None] * len(events)
        barrier = threading.Barrier(8)

        def record(worker: int) -> None:
            barrier.wait()
            for i in range(worker, len(events), 8):
                event, sha = events[i]
                results[i] = store.record_push(project_id=1, project_path="g/p", student="s", sha=sha,
                                               ref="refs/heads/main", event_uuid=event, received_at=T0, late=False)

        threads = [threading.Thread(target=record, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert all(r is not None for r in results)
        by_event: dict[str, set[int]] = {}
        for (event, _), (sub, _created) in zip(events, results, strict=True):
            by_event.setdefault(event, set()).add(sub.id)
        assert all(len(ids) == 1 for ids in by_event.values())  # both deliveries name the same row
        assert sum(created for _, created in results) == 24 == count_rows(store)
    finally:
        store.close()


def _batch_push(n: int, event: str, sha: str, **extra: object) -> dict:
    status = {"state": "pending", "name": "autograder", "description": "queued", "target_url": f"u/reports/t{n}",
              "ref": "main", "coverage": None}
    return dict(project_id=n, project_path=f"g/p{n}", student=f"s{n}", sha=sha, ref="refs/heads/main",
                event_uuid=event, received_at=T0, late=False, status=status, **extra)


def test_pushes_recorded_as_one_batch_each_get_their_own_row_and_a_repeat_in_or_before_the_batch_gets_the_first(store):
    # The webhook's intake thread records what arrived together in one transaction (on PostgreSQL
    # one multi-row INSERT whose rows come back in no promised order): each push must get its own id.
    earlier, _ = store.record_push(**_batch_push(1, "evt-earlier", "1" * 40))
    batch = [_batch_push(n, f"evt-{n}", f"{n:040x}") for n in range(2, 12)]
    batch.insert(3, _batch_push(1, "evt-earlier", "1" * 40))  # GitLab redelivering an earlier push
    batch.insert(6, _batch_push(5, "evt-5", f"{5:040x}"))  # ... and one of this very batch
    batch.append(_batch_push(7, "evt-7-again", f"{7:040x}"))  # another delivery of a commit in the batch
    batch.append(_batch_push(99, "evt-bad", "not-a-sha"))  # fails alone
    results = store.record_pushes(batch)
    assert isinstance(results[-1], ValueError)
    recorded = results[:-1]
    assert all(isinstance(r, tuple) for r in recorded), recorded
    by_push = {(p["event_uuid"], i): r for i, (p, r) in enumerate(zip(batch[:-1], recorded, strict=True))}
    created = [r[0] for r in recorded if r[1]]
    assert len(created) == 10 == len({s.id for s in created})  # projects 2..11, each once
    for (event, i), (sub, _) in by_push.items():
        assert (sub.project_id, sub.sha) == (batch[i]["project_id"], batch[i]["sha"].lower()), event
        assert store.get(sub.id).event_uuid in (event, "evt-7") and store.get(sub.id).project_id == sub.project_id
    assert (recorded[3][0].id, recorded[3][1]) == (earlier.id, False)
    fives = [r for p, r in zip(batch[:-1], recorded, strict=True) if p["event_uuid"] == "evt-5"]
    assert [c for _, c in fives] == [True, False] and fives[0][0].id == fives[1][0].id
    sevens = [r for p, r in zip(batch[:-1], recorded, strict=True) if p["project_id"] == 7]
    assert [c for _, c in sevens] == [True, False] and sevens[0][0].id == sevens[1][0].id
    posts = store.due_posts(datetime.now(UTC) + timedelta(seconds=1), limit=100)
    # one pending status per new row, its own (the target URL names the push's report)
    assert sorted((p.submission_id, p.payload["target_url"]) for p in posts) == sorted(
        [(earlier.id, "u/reports/t1")] + [(s.id, f"u/reports/t{s.project_id}") for s in created])
    assert count_rows(store) == 11


def test_a_batch_that_fails_on_the_database_tells_every_push_so_and_keeps_none(store, monkeypatch):
    def commit_fails(_conn: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("database is locked"))

    monkeypatch.setattr(store._engine.dialect, "do_commit", commit_fails)
    results = store.record_pushes([_batch_push(n, f"evt-down-{n}", f"{n:040x}") for n in range(1, 4)])
    monkeypatch.undo()
    assert [type(r) for r in results] == [StoreUnavailable] * 3
    assert count_rows(store) == 0 and store.due_posts(datetime.now(UTC) + timedelta(seconds=1)) == []


def test_a_push_whose_commit_fails_is_not_recorded_and_the_caller_hears_the_store_is_down(store, monkeypatch):
    ok, _ = store.record_push(project_id=1, project_path="g/p", student="s", sha=new_sha(), ref="refs/heads/main",
                              event_uuid="evt-fine", received_at=T0, late=False)

    def commit_fails(_conn: object) -> None:
        raise OperationalError("COMMIT", {}, Exception("database is locked"))

    monkeypatch.setattr(store._engine.dialect, "do_commit", commit_fails)
    with pytest.raises(StoreUnavailable, match="database is locked"):
        store.record_push(project_id=1, project_path="g/p", student="s", sha=new_sha(), ref="refs/heads/main",
                          event_uuid="evt-down", received_at=T0, late=False)
    monkeypatch.undo()
    assert count_rows(store) == 1 and store.get(ok.id) is not None


# -- the life of a submission --------------------------------------------------------------------


def test_start_takes_a_queued_submission_exactly_once(store, push):
    sub = push()
    assert store.start(sub.id) is True
    assert store.start(sub.id) is False
    running = store.get(sub.id)
    assert running.state == "running" and running.started_at is not None


def test_start_refuses_a_superseded_submission(store, push):
    old, new = push(), push()
    assert store.supersede_older(1, new.id) == [old.id]
    assert store.start(old.id) is False
    assert store.get(old.id).state == "superseded"
    assert store.start(new.id) is True


def test_start_with_stale_after_takes_over_only_a_long_running_submission(store, push):
    sub = push()
    store.start(sub.id)
    first_start = store.get(sub.id).started_at
    assert store.start(sub.id, stale_after=timedelta(hours=1)) is False
    time.sleep(0.01)
    assert store.start(sub.id, stale_after=timedelta(0)) is True  # the worker that started it is gone
    assert store.get(sub.id).started_at > first_start


def test_select_stuck_names_queued_and_long_running_submissions_only(store, push):
    queued, running, graded, superseded = push(), push(project_id=2), push(project_id=3), push(project_id=4)
    store.start(running.id)
    store.start(graded.id)
    store.finish(graded.id, make_report(5), "1")
    store.supersede_older(4, superseded.id + 1)
    assert store.select_stuck(timedelta(hours=1)) == [queued.id]  # the running one may still be working
    time.sleep(0.01)
    assert store.select_stuck(timedelta(0)) == [queued.id, running.id]  # its worker is gone


def test_each_submission_gets_its_own_report_token_which_a_regrade_keeps(store, push):
    subs = [push() for _ in range(50)]
    tokens = [s.token for s in subs]
    assert len(set(tokens)) == 50 and all(len(t) >= 22 for t in tokens)
    store.start(subs[0].id)
    store.finish(subs[0].id, make_report(5), "1")
    assert store.requeue([subs[0].id]) == [subs[0].id]
    assert store.get(subs[0].id).token == tokens[0]
    assert store.by_token(tokens[1]).id == subs[1].id
    assert store.by_token("no-such-token-here-000") is None


def test_start_of_an_unknown_id_is_refused(store):
    assert store.start(12345) is False


def test_supersede_older_touches_only_older_queued_submissions_of_that_project(store, push):
    older_queued = push(project_id=1)
    older_running = push(project_id=1)
    store.start(older_running.id)
    older_graded = push(project_id=1)
    store.start(older_graded.id)
    store.finish(older_graded.id, make_report(3), "0.1.0")
    other_project = push(project_id=2)
    older_queued_2 = push(project_id=1)
    newer = push(project_id=1)
    newest = push(project_id=1)

    assert store.supersede_older(1, newer.id) == [older_queued.id, older_queued_2.id]

    states = {s.id: store.get(s.id).state for s in
              (older_queued, older_running, older_graded, other_project, older_queued_2, newer, newest)}
    assert states == {older_queued.id: "superseded", older_running.id: "running", older_graded.id: "graded",
                      other_project.id: "queued", older_queued_2.id: "superseded", newer.id: "queued",
                      newest.id: "queued"}
    assert store.supersede_older(1, newer.id) == []


def test_finish_stores_score_report_version_and_digests(store, push):
    sub = push()
    store.start(sub.id)
    report = make_report(4.5, 5.0, {"single": 1.5, "multistage": 1.5, "nonroot": 1.0})
    assert store.finish(sub.id, report, "0.2.0", ["sha256:" + "a" * 64]) is True
    done = store.get(sub.id)
    assert done.state == "graded"
    assert (done.score, done.max_score, done.grader_version) == (4.5, 5.0, "0.2.0")
    assert done.report == report
    assert done.image_digests == ["sha256:" + "a" * 64]
    assert done.finished_at >= done.started_at


def test_finish_of_a_submission_that_is_not_running_changes_nothing(store, push):
    sub = push()
    assert store.finish(sub.id, make_report(5), "0.1.0") is False
    assert store.get(sub.id).state == "queued" and store.get(sub.id).score is None


def test_finish_refuses_a_report_without_a_score(store, push):
    sub = push()
    store.start(sub.id)
    with pytest.raises(ValueError, match="score"):
        store.finish(sub.id, {"variants": []}, "0.1.0")
    assert store.get(sub.id).state == "running"


def test_ungradable_submissions_keep_their_error_and_are_listed_newest_first(store, push):
    a, b, c = push(), push(), push()
    store.start(a.id)
    assert store.mark_ungradable(a.id, "Docker engine unavailable") is True
    time.sleep(0.01)
    assert store.mark_ungradable(b.id, "archive download failed") is True  # straight from queued
    store.start(c.id)
    store.finish(c.id, make_report(5), "0.1.0")
    assert store.mark_ungradable(c.id, "too late") is False  # graded stays graded

    failures = store.recent_failures(10)
    assert [(f.id, f.error) for f in failures] == [(b.id, "archive download failed"),
                                                   (a.id, "Docker engine unavailable")]
    assert [f.id for f in store.recent_failures(1)] == [b.id]


def test_status_counts_reports_every_state(store, push):
    subs = [push() for _ in range(5)]
    store.start(subs[1].id)
    store.start(subs[2].id)
    store.finish(subs[2].id, make_report(5), "0.1.0")
    store.mark_ungradable(subs[3].id, "x")
    store.supersede_older(1, subs[0].id + 1)
    assert store.status_counts() == {"queued": 1, "running": 1, "graded": 1, "ungradable": 1, "superseded": 1,
                                     "skipped": 0}


# -- regrading -----------------------------------------------------------------------------------


def test_requeue_puts_graded_and_ungradable_back_in_the_queue_keeping_the_previous_grade(store, push):
    a, b, c = push(), push(), push()
    store.start(a.id)
    store.finish(a.id, make_report(4), "0.1.0")
    store.mark_ungradable(b.id, "engine down")
    store.start(c.id)

    assert store.requeue([a.id, b.id, c.id]) == [a.id, b.id]  # a running one is left alone

    graded_again, ungradable_again = store.get(a.id), store.get(b.id)
    assert (graded_again.state, graded_again.score, graded_again.report["score"]) == ("queued", 4.0, 4.0)
    assert (ungradable_again.state, ungradable_again.score, ungradable_again.error) == ("queued", None, None)
    assert [s.id for s in store.graded_summaries()] == [a.id]  # still on the scoreboard while regraded
    assert store.get(c.id).state == "running"
    assert store.start(a.id) is True


def test_a_regrade_that_fails_keeps_the_previous_grade(store, push):
    sub = push()
    store.start(sub.id)
    store.finish(sub.id, make_report(4), "0.1.0")
    store.requeue([sub.id])
    store.start(sub.id)
    assert store.mark_ungradable(sub.id, "engine down")
    kept = store.get(sub.id)
    assert (kept.state, kept.score, kept.error) == ("graded", 4.0, "regrade failed, previous grade kept: engine down")
    first = push()  # control: a first grading that fails is ungradable, with no grade
    store.start(first.id)
    store.mark_ungradable(first.id, "engine down")
    assert (store.get(first.id).state, store.get(first.id).score) == ("ungradable", None)


def test_requeue_skips_an_ungradable_commit_that_is_already_queued_again(store, push):
    failed = push(event_uuid="e1")
    store.mark_ungradable(failed.id, "engine down")
    retry = push(sha=failed.sha, event_uuid="e2")  # pushed again: a new live row for that commit
    assert store.requeue([failed.id]) == []
    assert store.get(failed.id).state == "ungradable" and store.get(retry.id).state == "queued"


def test_select_for_regrade_filters_by_project_and_group_prefix(store, graded, push):
    a = graded(4, project_id=1, project_path="devops_2026/ivanov-docker")
    b = graded(5, project_id=2, project_path="devops_2026/sub/petrov-docker")
    c = graded(3, project_id=3, project_path="devopsX2026/sidorov-docker")  # `_` is no wildcard
    d = graded(3, project_id=4, project_path="devops_2026-old/kuznetsov")  # a prefix, not the group

    assert store.select_for_regrade(project_path="devops_2026/ivanov-docker") == [a.id]
    assert store.select_for_regrade(group_prefix="devops_2026") == [a.id, b.id]
    assert store.select_for_regrade(group_prefix="devops_2026/") == [a.id, b.id]
    assert store.select_for_regrade() == [a.id, b.id, c.id, d.id]


def test_select_for_regrade_takes_one_row_per_commit_and_none_of_a_busy_commit(store, graded, push):
    sha = new_sha()
    failed = push(sha=sha, event_uuid="e1")
    store.mark_ungradable(failed.id, "engine down")
    ok = graded(4, sha=sha, event_uuid="e2")  # same commit graded later: that row is the one
    only_failed = push()
    store.mark_ungradable(only_failed.id, "engine down")
    busy = push()
    store.start(busy.id)
    superseded, newer = push(), push()
    store.supersede_older(1, newer.id)

    assert store.select_for_regrade() == sorted([ok.id, only_failed.id])
    assert superseded.id not in store.select_for_regrade()


def test_select_for_regrade_latest_only_takes_each_projects_last_push(store, graded):
    graded(3, project_id=1)
    last_1 = graded(4, project_id=1)
    last_2 = graded(5, project_id=2)
    assert store.select_for_regrade(latest_only=True) == [last_1.id, last_2.id]


# -- the outbox of GitLab posts ------------------------------------------------------------------


def test_a_failed_post_waits_for_its_retry_time_and_counts_attempts(store, push):
    s1, s2 = push(), push()
    p1 = store.add_post(s1.id, "status", {"state": "success"})
    p2 = store.add_post(s2.id, "status", {"state": "success"})
    now = datetime.now(UTC)
    assert [p.id for p in store.due_posts(now, 10)] == [p1.id, p2.id]

    store.post_failed(p1.id, "502 Bad Gateway", now + timedelta(minutes=5))
    assert [p.id for p in store.due_posts(now, 10)] == [p2.id]
    later = store.due_posts(now + timedelta(minutes=6), 10)
    assert [p.id for p in later] == [p2.id, p1.id]  # by next attempt time
    assert (later[1].attempts, later[1].last_error) == (1, "502 Bad Gateway")

    store.post_failed(p1.id, "timeout", now + timedelta(minutes=1))
    store.post_failed(p2.id, "timeout", now + timedelta(minutes=3))
    assert store.get_post(p1.id).attempts == 2
    assert [p.id for p in store.due_posts(now + timedelta(minutes=2), 10)] == [p1.id]
    assert [p.id for p in store.due_posts(now + timedelta(minutes=4), 10)] == [p1.id, p2.id]


def test_due_posts_honours_the_limit_oldest_first(store, push):
    subs = [push() for _ in range(3)]
    posts = [store.add_post(s.id, "comment", {"body": f"report {i}"}) for i, s in enumerate(subs)]
    assert [p.id for p in store.due_posts(datetime.now(UTC), 2)] == [posts[0].id, posts[1].id]


def test_delivered_posts_are_not_returned_again(store, push):
    sub = push()
    status = store.add_post(sub.id, "status", {"state": "pending", "name": "autograder"})
    comment = store.add_post(sub.id, "comment", {"note": "## 5/5"})
    assert store.post_delivered(status.id) is True
    assert store.post_delivered(status.id) is False
    due = store.due_posts(datetime.now(UTC) + timedelta(days=1), 10)
    assert [(p.id, p.payload) for p in due] == [(comment.id, {"note": "## 5/5"})]
    assert store.get_post(status.id).delivered_at is not None
    assert store.undelivered_count() == 1


def test_a_later_status_waits_until_the_earlier_status_of_that_submission_is_delivered(store, push):
    sub = push()
    pending = store.add_post(sub.id, "status", {"state": "pending"})
    now = datetime.now(UTC)
    store.post_failed(pending.id, "500", now + timedelta(minutes=1))
    running = store.add_post(sub.id, "status", {"state": "running"})
    comment = store.add_post(sub.id, "comment", {"note": "report"})

    # `running` is due by its time, but must not overtake `pending`; the comment is independent.
    assert [p.id for p in store.due_posts(now + timedelta(seconds=1), 10)] == [comment.id]
    due = store.due_posts(now + timedelta(minutes=2), 10)
    assert [p.id for p in due] == [comment.id, pending.id]
    store.post_delivered(pending.id)
    assert running.id in [p.id for p in store.due_posts(now + timedelta(minutes=2), 10)]


def test_an_abandoned_post_is_not_retried_and_unblocks_the_next(store, push):
    sub = push()
    first = store.add_post(sub.id, "status", {"state": "pending"})
    second = store.add_post(sub.id, "status", {"state": "success"})
    store.post_abandoned(first.id, "404 Project Not Found")
    assert [p.id for p in store.due_posts(datetime.now(UTC), 10)] == [second.id]
    assert store.get_post(first.id).abandoned_at is not None


def test_leased_posts_are_not_handed_to_a_second_caller_until_the_lease_ends(store, push):
    sub = push()
    post = store.add_post(sub.id, "comment", {"note": "x"})
    now = datetime.now(UTC)
    assert [p.id for p in store.due_posts(now, 10, lease=timedelta(seconds=60))] == [post.id]
    assert store.due_posts(now, 10, lease=timedelta(seconds=60)) == []
    assert [p.id for p in store.due_posts(now + timedelta(seconds=61), 10)] == [post.id]


def test_add_post_refuses_an_unknown_kind(store, push):
    with pytest.raises(ValueError, match="kind"):
        store.add_post(push().id, "pipeline", {})


# -- opening the store ---------------------------------------------------------------------------


def test_unreachable_postgresql_is_a_config_error_within_seconds():
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        Store("postgresql+psycopg://grader:s3cret@127.0.0.1:1/grader")
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "cannot open the database" in message and "127.0.0.1:1" in message
    assert "s3cret" not in message and "\n" not in message


@pytest.mark.parametrize("url, expected", [
    ("not a url", "not a URL"),
    ("mysql://u@h/db", "only sqlite:// and postgresql://"),
    ("sqlite:////proc/grader-nope/grader.db", "cannot use database URL"),
])
def test_a_bad_database_url_is_a_one_line_config_error(url, expected):
    with pytest.raises(ConfigError, match=expected) as info:
        Store(url)
    assert "\n" not in str(info.value)


def test_a_plain_postgresql_url_uses_psycopg(pg_url):
    s = Store(pg_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        assert s.dialect == "postgresql"
        assert s.status_counts()["queued"] == 0
    finally:
        s.close()


def test_sqlite_store_runs_in_wal_mode_and_creates_its_directory(tmp_path):
    path = tmp_path / "nested" / "dir" / "grader.db"
    s = Store(f"sqlite:///{path}")
    s.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_a_store_keeps_its_rows(store_url):
    first = Store(store_url)
    sub, _ = first.record_push(project_id=1, project_path="g/p", student="s", sha=new_sha(), ref="refs/heads/main",
                               event_uuid="keep", received_at=T0, late=False)
    first.close()
    second = Store(store_url)
    try:
        assert second.get(sub.id).event_uuid == "keep"
    finally:
        second.close()


def test_objects_returned_are_usable_after_their_session_closed(store, push):
    sub = push()
    store.mark_ungradable(sub.id, "engine down")
    [failure] = store.recent_failures(5)
    post = store.add_post(sub.id, "status", {"state": "failed"})
    # Every column loaded: reading them needs no session.
    assert (failure.error, failure.sha, failure.finished_at is not None) == ("engine down", sub.sha, True)
    assert (post.attempts, post.delivered_at, post.payload) == (0, None, {"state": "failed"})


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_worker_gets_its_own_connections(store, push):
    # Celery's prefork pool forks after the Store exists: parent and child then use the store at
    # the same time, and must not share the pooled connection (one socket, interleaved messages).
    parent_sub = push()  # the pool now holds a connection
    pid = os.fork()
    if pid == 0:  # child
        code = 1
        try:
            sub, created = store.record_push(project_id=9, project_path="g/child", student="c", sha=new_sha(),
                                             ref="refs/heads/main", event_uuid="child", received_at=T0, late=False)
            ok = created and store.start(sub.id)
            ok = ok and all(store.get(parent_sub.id).sha == parent_sub.sha for _ in range(300))
            code = 0 if ok else 1
        finally:
            os._exit(code)
    seen = [store.get(parent_sub.id).sha for _ in range(300)]
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert set(seen) == {parent_sub.sha}
    assert store.status_counts() == {"queued": 1, "running": 1, "graded": 0, "ungradable": 0, "superseded": 0,
                                     "skipped": 0}


def test_a_running_submission_goes_back_to_queued_for_a_retry(store, push):
    sub = push()
    assert store.start(sub.id)
    assert store.requeue_running(sub.id)
    assert store.get(sub.id).state == "queued"
    assert not store.requeue_running(sub.id)  # only from running


def test_a_late_push_never_supersedes_an_on_time_one_still_queued(store, push):
    on_time = push(late=False)
    late_one = push(late=True)
    assert store.supersede_older(1, late_one.id) == []  # the on-time push is still graded
    later = push(late=True)
    assert store.supersede_older(1, later.id) == [late_one.id]  # late ones supersede each other
    newest_on_time = push(late=False)  # control: an on-time push supersedes the older on-time one
    assert store.supersede_older(1, newest_on_time.id) == [on_time.id, later.id]


# -- schema version 3: the Dockerfiles kept with a verdict ---------------------------------------


def test_finish_keeps_the_dockerfiles_with_the_verdict_and_a_regrade_replaces_them(store, push):
    from grader.store import Dockerfile

    sub = push()
    store.start(sub.id)
    first = [Dockerfile("multistage", "Dockerfile.multistage", "FROM a\n", {"key": "k"}),
             Dockerfile("single", "Dockerfile.single", "FROM b\n")]
    assert store.finish(sub.id, make_report(5), "0.1.0", dockerfiles=first)
    assert [(d.variant, d.text, d.fingerprint) for d in store.dockerfiles(sub.id)] == [
        ("multistage", "FROM a\n", {"key": "k"}), ("single", "FROM b\n", None)]
    store.requeue([sub.id])
    store.start(sub.id)
    again = [Dockerfile("nonroot", "x/Dockerfile", "FROM c\n")]
    assert store.finish(sub.id, make_report(4), "0.1.0", dockerfiles=again)
    assert [d.variant for d in store.dockerfiles(sub.id)] == ["nonroot"]  # replaced, not added


def test_a_verdict_whose_dockerfiles_cannot_be_written_is_not_written_either(store, push):
    from grader.store import Dockerfile

    sub = push()
    store.start(sub.id)
    twice = [Dockerfile("single", "a", "FROM a\n"), Dockerfile("single", "b", "FROM b\n")]  # one per variant only
    with pytest.raises(Exception, match="(?i)unique"):
        store.finish(sub.id, make_report(5), "0.1.0", dockerfiles=twice)
    after = store.get(sub.id)
    assert (after.state, after.score, after.report) == ("running", None, None)  # one transaction: nothing half-written
    assert store.dockerfiles(sub.id) == []
    assert store.finish(sub.id, make_report(5), "0.1.0", dockerfiles=twice[:1])  # control: a valid set is written
    assert store.get(sub.id).state == "graded" and len(store.dockerfiles(sub.id)) == 1


# -- the package's public names ------------------------------------------------------------------


def test_the_store_package_exports_what_the_rest_of_the_grader_imports():
    """grader/store/ is a package of one concern per module; callers import from `grader.store` only."""
    import grader.store

    assert set(grader.store.__all__) == {
        "ACTIVE", "CONNECT_TIMEOUT_S", "DEFAULT_URL", "EVENT_KINDS", "ORIGINS", "POST_KINDS", "PUSH_TIME_SOURCES",
        "SCHEMA_VERSION", "SQLITE_BUSY_TIMEOUT_S", "Base", "ComparedSubmission", "Dockerfile", "Extension",
        "GradedSummary", "PendingPost", "SchemaInfo", "State", "Store", "StoreUnavailable", "Submission",
        "SubmissionDockerfile", "SubmissionEvent", "SubmissionEventRow", "UTCDateTime", "new_report_token", "utcnow"}
    assert all(hasattr(grader.store, name) for name in grader.store.__all__)
    for method in ("record_push", "finish", "requeue", "due_posts", "set_extension", "compared_submissions",
                   "add_event", "events", "events_for_project", "graded_summaries", "close"):
        assert callable(getattr(grader.store.Store, method)), method
