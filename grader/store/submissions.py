"""The life of a submission: its state changes, each one UPDATE guarded by the state it leaves.

    queued ──start──► running ──finish──► graded
       │                 ├──mark_ungradable──► ungradable
       │                 └──supersede (an older commit than one already recorded)──► superseded
       ├──supersede_older / supersede──► superseded ──revive (it was the newer one after all)──► queued
       └──mark_ungradable──► ungradable
    graded / ungradable ──requeue (regrade)──► queued
    skipped: a push the webhook recorded only to say on its commit why it is not graded (another branch)

Push time: `pushed_at` is when GitLab says the commit was pushed (its push events), or when the push
arrived; `pushed_at_source` says which (`push_event` | `received`; null while a queued submission
is not resolved yet, which its worker does first). `late` is judged by `pushed_at` once resolved.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grader.store import dockerfiles as dockerfiles_
from grader.store import events
from grader.store.database import Database, rowcount
from grader.store.records import Dockerfile
from grader.store.schema import ACTIVE, PUSH_TIME_SOURCES, PendingPost, State, Submission, utcnow


class Submissions(Database):
    def forget(self, id: int) -> None:
        """Removes a submission that was just recorded and could not be queued (with its posts and
        history), so that GitLab's retry of the same delivery records it afresh instead of finding
        a duplicate."""
        with self._session() as s:
            s.execute(delete(PendingPost).where(PendingPost.submission_id == id))
            s.execute(delete(Submission).where(Submission.id == id,
                                               Submission.state.in_((State.QUEUED, State.SKIPPED))))

    def get(self, id: int) -> Submission | None:
        with self._session(write=False) as s:
            return s.get(Submission, id)

    def by_token(self, token: str) -> Submission | None:
        with self._session(write=False) as s:
            return s.scalars(select(Submission).where(Submission.token == token)).first()

    def start(self, id: int, *, stale_after: timedelta | None = None) -> bool:
        """queued → running. False when it is not queued any more (superseded, already started).

        `stale_after`: also take over a *running* submission started longer ago than this — a
        worker that died mid-grading (Celery redelivers the task with acks_late).
        """
        now = utcnow()
        takeable = Submission.state == State.QUEUED
        if stale_after is not None:
            takeable = or_(takeable, and_(Submission.state == State.RUNNING,
                                          Submission.started_at < now - stale_after))
        with self._session() as s:
            result = s.execute(update(Submission).where(Submission.id == id, takeable)
                               .values(state=State.RUNNING, started_at=now, finished_at=None))
            return rowcount(result) == 1

    def finish(self, id: int, report: dict, grader_version: str, image_digests: list[str] | None = None,
               dockerfiles: Sequence[Dockerfile] | None = None, *, event: str | None = None,
               actor: str | None = None, reason: str | None = None, detail: dict | None = None) -> bool:
        """running → graded, with the score from the report. False when it was not running.
        `dockerfiles`: the files this grading took, replacing those stored before, in the same
        transaction as the verdict (None: keep what is stored).

        `event` ("graded", "regraded"): the history says so in the same transaction, its detail
        holding the score this grade replaced (`old_score`, None on a first grading) and the new one
        (`new_score`), plus `detail`. Without `actor` and `reason`, it names those of the regrade
        request it answers (`requeue(..., event="regrade_requested")`), if one is open.
        """
        try:
            score, max_score = float(report["score"]), float(report["max_score"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"report has no numeric score/max_score: {e}") from None
        if event is not None:
            events.check(event, actor)
        with self._session() as s:
            # The grade replaced, read under the row's lock (PostgreSQL; SQLite's write lock is held
            # already), so the history's old score is the one this grade replaced.
            old_score = s.scalar(select(Submission.score).where(Submission.id == id).with_for_update()) \
                if event is not None else None
            result = s.execute(update(Submission).where(Submission.id == id, Submission.state == State.RUNNING)
                               .values(state=State.GRADED, finished_at=utcnow(), score=score, max_score=max_score,
                                       report=report, grader_version=grader_version, image_digests=image_digests,
                                       error=None))
            if rowcount(result) != 1:
                return False
            if dockerfiles is not None:
                dockerfiles_.replace(s, id, dockerfiles)
            if event is not None:
                if actor is None and reason is None and (request := events.open_request(s, id)) is not None:
                    actor, reason = request.actor, request.reason
                events.add(s, id, event, actor=actor, reason=reason,
                           detail={"old_score": old_score, "new_score": score, **(detail or {})})
            return True

    def mark_ungradable(self, id: int, error: str) -> bool:
        """queued/running → ungradable (our failure, not the student's). False otherwise.
        A regrade that fails keeps the grade it had: back to graded, with the error recorded."""
        active = (Submission.id == id, Submission.state.in_((State.QUEUED, State.RUNNING)))
        with self._session() as s:
            kept = s.execute(update(Submission).where(*active, Submission.score.is_not(None))
                             .values(state=State.GRADED, error=f"regrade failed, previous grade kept: {error}"))
            if rowcount(kept) == 1:
                return True
            result = s.execute(update(Submission).where(*active)
                               .values(state=State.UNGRADABLE, finished_at=utcnow(), error=error))
            return rowcount(result) == 1

    def supersede_older(self, project_id: int, newer_id: int) -> list[int]:
        """Marks the project's queued submissions of the same branch recorded before `newer_id`
        superseded; their ids. A late push never supersedes an on-time one: on deadline night the
        queue is long, and the student's last on-time push must still be graded.

        Recorded earlier is taken as pushed earlier, except where GitLab's own `before` says
        otherwise: when a recorded push was made on top of `newer_id`'s commit, that commit is the
        older one, delivered late, and supersedes nothing (`newer_than_by_push` finds it)."""
        with self._session() as s:
            newer = s.get(Submission, newer_id)
            if newer is not None and self._newer_by_push(s, newer) is not None:
                return []
            on_time_kept = Submission.late.is_(True) if newer is not None and newer.late else true()
            same_branch = Submission.ref == newer.ref if newer is not None else true()
            ids = s.scalars(update(Submission)
                            .where(Submission.project_id == project_id, Submission.id < newer_id,
                                   same_branch, Submission.state == State.QUEUED, on_time_kept)
                            .values(state=State.SUPERSEDED, finished_at=utcnow())
                            .returning(Submission.id)).all()
        return sorted(ids)

    @staticmethod
    def _newer_by_push(s: Session, sub: Submission) -> Submission | None:
        return s.scalars(select(Submission)
                         .where(Submission.project_id == sub.project_id, Submission.ref == sub.ref,
                                Submission.before_sha == sub.sha, Submission.id != sub.id,
                                Submission.state != State.SKIPPED)
                         .order_by(Submission.id.desc())).first()

    def newer_than_by_push(self, id: int) -> Submission | None:
        """A recorded push of the same branch made on top of this submission's commit (its
        `before` is this commit): proof that this one is older, whatever order they arrived in."""
        with self._session(write=False) as s:
            sub = s.get(Submission, id)
            return self._newer_by_push(s, sub) if sub is not None else None

    def supersede(self, id: int) -> bool:
        """queued/running → superseded: a newer commit of the branch is already recorded."""
        with self._session() as s:
            result = s.execute(update(Submission)
                               .where(Submission.id == id, Submission.state.in_((State.QUEUED, State.RUNNING)))
                               .values(state=State.SUPERSEDED, finished_at=utcnow()))
            return rowcount(result) == 1

    def revive(self, id: int) -> bool:
        """superseded → queued: it was superseded by a push that turned out older (delivered late).
        False when it is not superseded, or its commit is live in another row."""
        try:
            with self._session() as s:
                result = s.execute(update(Submission).where(Submission.id == id, Submission.state == State.SUPERSEDED)
                                   .values(state=State.QUEUED, started_at=None, finished_at=None))
                return rowcount(result) == 1
        except IntegrityError:
            return False

    def set_push_time(self, id: int, pushed_at: datetime, source: str, late: bool) -> None:
        """Records when the commit was pushed (and which clock says so), and lateness judged by it."""
        if source not in PUSH_TIME_SOURCES or pushed_at.tzinfo is None:
            raise ValueError(f"push time must be aware and its source one of {PUSH_TIME_SOURCES}")
        with self._session() as s:
            s.execute(update(Submission).where(Submission.id == id)
                      .values(pushed_at=pushed_at, pushed_at_source=source, late=late))

    def same_branch(self, id: int, limit: int = 10) -> list[Submission]:
        """The other submissions of this one's project and branch that are or were in line to be
        graded (queued, running, graded, superseded), newest recorded first."""
        with self._session(write=False) as s:
            sub = s.get(Submission, id)
            if sub is None:
                return []
            return list(s.scalars(select(Submission)
                                  .where(Submission.project_id == sub.project_id, Submission.ref == sub.ref,
                                         Submission.id != id, Submission.sha != sub.sha,
                                         Submission.state.in_((*ACTIVE, State.SUPERSEDED)))
                                  .order_by(Submission.id.desc()).limit(limit)))

    def active_for_commit(self, project_id: int, sha: str) -> Submission | None:
        """The queued, running or graded submission of this commit, if any."""
        with self._session(write=False) as s:
            return s.scalars(select(Submission).where(Submission.project_id == project_id, Submission.sha == sha,
                                                      Submission.state.in_(ACTIVE))).first()

    def requeue(self, ids: Iterable[int], *, event: str | None = None, actor: str | None = None,
                reason: str | None = None, detail: dict | None = None) -> list[int]:
        """graded/ungradable → queued (regrade); the ids requeued. The previous grade (score and
        report) stays until the new one replaces it, so the student never vanishes from the
        scoreboard, and a regrade that fails loses nothing. `event` ("regrade_requested"): each
        requeued submission's history says so, with who asked and why, in the requeue's transaction.

        Skipped: ids that are queued, running or superseded, and an ungradable one whose commit
        is already queued, running or graded in another row.
        """
        if event is not None:
            events.check(event, actor)
        done = []
        for id in ids:
            try:
                with self._session() as s:
                    result = s.execute(
                        update(Submission)
                        .where(Submission.id == id, Submission.state.in_((State.GRADED, State.UNGRADABLE)))
                        .values(state=State.QUEUED, started_at=None, error=None))
                    if rowcount(result) == 1:
                        if event is not None:
                            events.add(s, id, event, actor=actor, reason=reason, detail=detail)
                        done.append(id)
            except IntegrityError:
                continue
        return done

    def requeue_running(self, id: int) -> bool:
        """running → queued, for a retry after an infrastructure failure."""
        with self._session() as s:
            result = s.execute(update(Submission).where(Submission.id == id, Submission.state == State.RUNNING)
                               .values(state=State.QUEUED, started_at=None))
            return rowcount(result) == 1
