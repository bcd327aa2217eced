"""grader.service against a real store and the GitLab-compatible server: what a commit says when
grading breaks for a reason nobody foresaw (a bug of ours), as opposed to a student's mistake."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import grader.service as service_mod
from grader.config import Settings
from grader.gitlab import GitLab
from grader.service import Service
from grader.store import State, Store
from tests.conftest import REFERENCE_REPO
from tests.support.fake_gitlab import FakeGitLab


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    with FakeGitLab() as server:
        yield server


@pytest.fixture
def service(fake: FakeGitLab, store: Store, tmp_path: Path) -> Service:
    settings = Settings(gitlab_url=fake.url, gitlab_token=fake.token, work_dir=tmp_path / "work",
                        report_base_url="http://grader.test")
    return Service(settings, store, GitLab(fake.url, fake.token, timeout_s=5))


@pytest.fixture
def queued(service: Service, fake: FakeGitLab, tmp_path: Path) -> int:
    project, sha = fake.create_repo_project("course/ivanov-docker", tmp_path / "repos", source=REFERENCE_REPO)
    submission_id, created = service.record(service.gitlab.project(project.path_with_namespace), sha, "main")
    assert created
    return submission_id


@pytest.fixture
def a_bug(monkeypatch) -> None:
    """Fault injection: the archive step fails the way a programming error would."""
    def broken(*args, **kwargs):
        raise AttributeError("module 'tarfile' has no attribute 'FilterError'")
    monkeypatch.setattr(service_mod, "extract_archive", broken)


def delivered_statuses(service: Service, fake: FakeGitLab) -> list[tuple[str, str]]:
    """What the commit shows once the outbox is delivered (posts go out one at a time, in order)."""
    while service.deliver_due():
        pass
    return [(s.state, s.description) for s in fake.statuses]


def test_unexpected_error_ends_the_submission_ungradable_and_says_so_on_the_commit(service, fake, queued, a_bug):
    with pytest.raises(AttributeError):  # loud in the worker's log and in Celery's task state
        service.grade(queued)
    sub = service.store.get(queued)
    assert sub.state == State.UNGRADABLE
    assert "internal error (AttributeError)" in sub.error and "regrade" in sub.error
    # "running" is followed by "canceled", never left as the commit's last word; no zero is given.
    # The commit speaks the course's language (ru) and says whose problem it is; the error is the instructors'.
    assert delivered_statuses(service, fake) == [
        ("running", "идёт проверка…"),
        ("canceled", "не проверено из-за сбоя проверяющей системы — это не ваша ошибка; преподаватель перепроверит"),
    ]
    assert sub.score is None


def test_unexpected_error_in_a_dry_run_posts_nothing(service, fake, queued, a_bug):
    with pytest.raises(AttributeError):
        service.grade(queued, post=False)
    assert service.store.get(queued).state == State.UNGRADABLE
    assert delivered_statuses(service, fake) == []


@pytest.fixture
def graded(service: Service, queued: int) -> int:
    """A graded submission whose results wait in the outbox (no engine needed: the report is given)."""
    assert service.store.start(queued)
    report = {"score": 5.0, "max_score": 5.0, "variants": [], "error": "—"}
    service.store.finish(queued, report, "test")
    service._publish(service.store.get(queued), report)
    return queued


def test_comment_stored_by_gitlab_whose_answer_was_lost_is_not_posted_twice(service, fake, graded):
    fake.lose_reply_next(1, path_contains="/comments", method="POST")
    service.deliver_due()  # GitLab stores the comment; the worker hears nothing and will retry
    assert len(fake.comments) == 1
    [post] = [p for p in service.store.due_posts(service_mod.datetime.now(service_mod.UTC) + service_mod.MAX_BACKOFF)
              if p.kind == "comment"]
    assert post.attempts == 1 and post.delivered_at is None

    def delivered() -> bool:
        service.deliver_due()  # due again after its backoff (1 s)
        return service.store.get_post(post.id).delivered_at is not None

    fake.wait_until(delivered, timeout=10, interval=0.2)
    assert len(fake.comments) == 1
    posts = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/comments")]
    assert len(posts) == 1  # found by its marker, not posted again


def _status_posts(fake: FakeGitLab) -> int:
    return len([r for r in fake.requests if r.method == "POST" and "/statuses/" in r.path])


def _deliver_until_settled(service: Service) -> None:
    def settled() -> bool:
        service.deliver_due()  # due again after its backoff (1 s)
        return service.store.undelivered_count() == 0

    FakeGitLab.wait_until(settled, timeout=10, interval=0.2)


def test_a_final_status_gitlab_stored_whose_answer_was_lost_is_not_posted_twice(service, fake, graded):
    # GitLab adds a second `success` for a repeated one (it refuses only repeated pending/running)
    fake.lose_reply_next(1, path_contains="/statuses/", method="POST")
    service.deliver_due()
    assert [s.state for s in fake.statuses] == ["success"] and service.store.undelivered_count() >= 1
    _deliver_until_settled(service)
    assert [s.state for s in fake.statuses] == ["success"]
    assert _status_posts(fake) == 1  # read from the commit, not posted again


def test_a_status_whose_delivery_was_never_recorded_is_not_posted_again_after_its_lease(service, fake, graded):
    now = service_mod.datetime.now(service_mod.UTC)
    # a worker claims the status, GitLab takes it, and the worker dies (or the database goes away)
    # before recording it; the lease runs out at once here
    [status] = [p for p in service.store.due_posts(now, lease=service_mod.timedelta(0)) if p.kind == "status"]
    sub = service.store.get(graded)
    service.gitlab.post_status(sub.project_id, sub.sha, **status.payload)
    _deliver_until_settled(service)
    assert [s.state for s in fake.statuses] == ["success"] and _status_posts(fake) == 1
    assert len(fake.comments) == 1  # control: the comment claimed with it was never sent, and now is


def test_a_retried_status_that_never_reached_gitlab_is_posted(service, fake, graded):
    fake.fail_next(1, status=502, path_contains="/statuses/")  # control for the two above: not a blind skip
    service.deliver_due()
    assert fake.statuses == []
    _deliver_until_settled(service)
    assert [s.state for s in fake.statuses] == ["success"] and _status_posts(fake) == 2


def test_a_retried_status_is_posted_when_the_commit_shows_an_older_grade_of_the_same_name(service, fake, graded):
    sub = service.store.get(graded)
    [status] = [p for p in service.store.due_posts(service_mod.datetime.now(service_mod.UTC),
                                                   lease=service_mod.timedelta(0)) if p.kind == "status"]
    # an earlier grading's verdict is on the commit: not this post's
    service.gitlab.post_status(sub.project_id, sub.sha, "success", name=status.payload["name"],
                               description="5/5 (an earlier grading)", ref=status.payload.get("ref"))
    _deliver_until_settled(service)
    assert [(s.state, s.description) for s in fake.statuses][0] == ("success", "5/5 (an earlier grading)")
    assert len(fake.statuses) == 2 and fake.statuses[1].description != fake.statuses[0].description


def test_a_batch_slowed_past_its_lease_skips_what_another_delivery_took_over(service, fake, graded,
                                                                              store_url, monkeypatch):
    # worker A claims the due posts and stalls (GitLab timing out) past its lease; worker B claims
    # them and delivers them all; then A goes on with its batch
    other = Service(service.settings, Store(store_url), GitLab(fake.url, fake.token, timeout_s=5))
    service.lease = service_mod.timedelta(0)  # A's claim lapses at once
    claim = service.store.due_posts

    def stalls(now, limit=50, *, lease=None):
        batch = claim(now, limit, lease=lease)
        while other.deliver_due():
            pass
        return batch

    monkeypatch.setattr(service.store, "due_posts", stalls)
    service.deliver_due()
    other.store.close()
    assert [s.state for s in fake.statuses] == ["success"] and _status_posts(fake) == 1
    assert len(fake.comments) == 1 and service.store.undelivered_count() == 0


def test_a_claim_is_renewed_only_by_its_own_claimant(service, graded):
    now = service_mod.datetime.now(service_mod.UTC)
    [mine, *_] = service.store.due_posts(now, lease=service_mod.timedelta(0))
    assert service.store.renew_lease(mine.id, now, service.lease)  # control: the claimant renews
    later = now + service_mod.timedelta(minutes=5)
    assert mine.id in [p.id for p in service.store.due_posts(later, lease=service.lease)]  # lapsed, taken
    assert not service.store.renew_lease(mine.id, now, service.lease)
    assert service.store.renew_lease(mine.id, later, service.lease)


def test_comment_marker_is_invisible_markdown_at_the_end(service, fake, graded):
    while service.deliver_due():
        pass
    [comment] = fake.comments
    report, marker = comment.note.split("\n\n<!-- ")
    assert report == "**0/5**: —"  # the report as the service wrote it, untouched
    assert re.fullmatch(r"grader:post-\d+ -->", marker)


def test_a_post_gitlab_refuses_for_good_is_abandoned_with_the_reason_not_retried(service, fake, graded):
    fake.fail_next(None, status=404, path_contains="/statuses/")  # the project is gone, for every try
    service.deliver_due()
    [abandoned] = service.store.abandoned_posts()
    assert abandoned.kind == "status" and "404" in abandoned.last_error
    statuses_tried = len([r for r in fake.requests if "/statuses/" in r.path])
    service.deliver_due()
    assert len([r for r in fake.requests if "/statuses/" in r.path]) == statuses_tried  # never tried again


def test_a_post_that_can_get_better_is_kept_for_a_retry(service, fake, graded):
    fake.fail_next(1, status=502, path_contains="/statuses/")  # control: GitLab having a bad moment
    service.deliver_due()
    assert service.store.abandoned_posts() == []
    [status] = [p for p in service.store.due_posts(service_mod.datetime.now(service_mod.UTC)
                                                   + service_mod.MAX_BACKOFF) if p.kind == "status"]
    assert status.attempts == 1 and "502" in status.last_error


def _grades_as(service: Service, monkeypatch, report: dict) -> None:
    """Stands in for the engine-bound step only (archive → pipeline); everything else is real."""
    monkeypatch.setattr(service, "grade_commit", lambda project_id, sha, workspace, **_options: report)


def test_a_regrade_with_the_same_verdict_updates_the_status_but_posts_no_new_comment(
        service, fake, queued, monkeypatch):
    report = {"schema": "grader.report/1", "score": 4.5, "max_score": 5.0, "variants": [], "checks": [],
              "notes": [], "error": None}
    _grades_as(service, monkeypatch, report)
    service.grade(queued)
    while service.deliver_due():
        pass
    assert len(fake.comments) == 1
    service.store.requeue([queued])
    service.grade(queued)  # same verdict
    while service.deliver_due():
        pass
    assert len(fake.comments) == 1 and [s.state for s in fake.statuses][-1] == "failed"
    _grades_as(service, monkeypatch, dict(report, score=5.0))  # control: a changed verdict is commented
    service.store.requeue([queued])
    service.grade(queued)
    while service.deliver_due():
        pass
    assert len(fake.comments) == 2 and fake.statuses[-1].state == "success"


def test_a_regrade_names_who_asked_why_and_old_to_new_in_the_history(service, fake, queued, monkeypatch):
    report = {"schema": "grader.report/1", "score": 3.0, "max_score": 5.0, "variants": [], "checks": [],
              "notes": [], "error": None}
    _grades_as(service, monkeypatch, report)
    service.grade(queued)
    [graded] = service.store.events(queued)
    assert (graded.kind, graded.actor, graded.detail["new_score"]) == ("graded", None, 3.0)
    assert graded.detail["assignment"] == service_mod.assignment_digest(service.assignment.source)
    assert service.store.requeue([queued], event="regrade_requested", actor="prof-smirnova",
                                 reason="rubric 1.1: exec form") == [queued]
    _grades_as(service, monkeypatch, dict(report, score=4.5))
    service.grade(queued)  # by a worker that knows nothing of who asked
    kinds = [(e.kind, e.actor, e.reason) for e in service.store.events(queued)]
    assert kinds == [("graded", None, None), ("regrade_requested", "prof-smirnova", "rubric 1.1: exec form"),
                     ("regraded", "prof-smirnova", "rubric 1.1: exec form")]
    regraded = service.store.events(queued)[-1]
    assert (regraded.detail["old_score"], regraded.detail["new_score"]) == (3.0, 4.5)
    assert "assignment_before" not in regraded.detail  # control for the next test: same file, no change said


def test_a_regrade_under_a_changed_assignment_file_says_so(service, fake, queued, monkeypatch, tmp_path):
    report = {"schema": "grader.report/1", "score": 3.0, "max_score": 5.0, "variants": [], "checks": [],
              "notes": [], "error": None}
    _grades_as(service, monkeypatch, report)
    service.grade(queued)
    before = service.store.events(queued)[0].detail["assignment"]
    changed = tmp_path / "assignment.toml"  # the instructor edits the rubric (here: a comment line)
    changed.write_bytes(service.assignment.source.read_bytes() + b"\n# points for exec form changed\n")
    settings = service.settings.model_copy(update={"assignment_file": changed})
    later = Service(settings, service.store, service.gitlab)
    _grades_as(later, monkeypatch, dict(report, score=4.0))
    service.store.requeue([queued], event="regrade_requested", actor="ta-ivanova", reason="new rubric")
    later.grade(queued)
    regraded = service.store.events(queued)[-1]
    assert regraded.kind == "regraded" and regraded.detail["assignment_before"] == before
    assert regraded.detail["assignment"] != before and regraded.actor == "ta-ivanova"


def test_an_extension_is_in_the_history_of_each_of_the_students_submissions(service, queued, store_url):
    from grader.app import App

    instructor = App(service.settings.model_copy(update={"database_url": store_url})).instructor
    student = service.store.get(queued).student
    instructor.extend(student, "2099-12-08T23:59:00+03:00", "medical note", actor="prof-smirnova")
    instructor.remove_extension(student, actor="ta-ivanova")
    events = [(e.kind, e.actor, e.reason, e.detail) for e in service.store.events(queued)]
    assert events == [("extension", "prof-smirnova", "medical note", {"until": "2099-12-08T20:59:00+00:00"}),
                      ("extension", "ta-ivanova", None, {"until": None})]
