"""Each submission's history: what happened to it, when, who did it and why (schema version 4).

Events are only ever added, and read in the order they were added (by id, not by `at`: the
clocks of the hosts that add them may disagree). The transitions an instructor's "who and why"
belong to write their event in their own transaction: `requeue(..., event="regrade_requested",
actor=, reason=)` with the requeue, `finish(..., event="regraded")` with the new grade — which,
unless told otherwise, names the actor and reason of the regrade request it answers, so the
worker that grades need not know who asked.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from grader.store.database import Database
from grader.store.records import SubmissionEvent
from grader.store.schema import EVENT_KINDS, Submission, SubmissionEventRow, utcnow

ACTOR_MAX = 255  # the column's size: PostgreSQL refuses a longer name, SQLite would keep it


def check(kind: str, actor: str | None) -> None:
    if kind not in EVENT_KINDS:
        raise ValueError(f"event kind must be one of {EVENT_KINDS}, not {kind!r}")
    if actor is not None and len(actor) > ACTOR_MAX:
        raise ValueError(f"actor is {len(actor)} characters long, longer than {ACTOR_MAX}")


def add(s: Session, submission_id: int, kind: str, *, actor: str | None, reason: str | None,
        detail: dict | None) -> None:
    """Adds an event in the caller's transaction (`check` it first)."""
    s.execute(insert(SubmissionEventRow).values(submission_id=submission_id, at=utcnow(), kind=kind, actor=actor,
                                                reason=reason, detail=detail))


def open_request(s: Session, submission_id: int) -> SubmissionEventRow | None:
    """The latest regrade request of the submission that no grade has answered yet."""
    latest = s.scalars(select(SubmissionEventRow)
                       .where(SubmissionEventRow.submission_id == submission_id,
                              SubmissionEventRow.kind.in_(("regrade_requested", "graded", "regraded")))
                       .order_by(SubmissionEventRow.id.desc()).limit(1)).first()
    return latest if latest is not None and latest.kind == "regrade_requested" else None


def _record(row: SubmissionEventRow) -> SubmissionEvent:
    return SubmissionEvent(row.id, row.submission_id, row.at, row.kind, row.actor, row.reason, row.detail)


class Events(Database):
    def add_event(self, submission_id: int, kind: str, *, actor: str | None = None, reason: str | None = None,
                  detail: dict | None = None) -> None:
        """Adds to the submission's history. `kind`: one of EVENT_KINDS; `actor`: who did it (an
        instructor's name; None: the system); `detail`: what changed, as JSON."""
        check(kind, actor)
        try:
            with self._session() as s:
                add(s, submission_id, kind, actor=actor, reason=reason, detail=detail)
        except IntegrityError:  # the only constraint an event can break: its submission's foreign key
            raise ValueError(f"no submission {submission_id}") from None

    def events(self, submission_id: int) -> list[SubmissionEvent]:
        """The submission's history, oldest first."""
        with self._session(write=False) as s:
            rows = s.scalars(select(SubmissionEventRow).where(SubmissionEventRow.submission_id == submission_id)
                             .order_by(SubmissionEventRow.id))
            return [_record(r) for r in rows]

    def events_for_project(self, project_id: int) -> list[SubmissionEvent]:
        """The history of every submission of a project, oldest first."""
        with self._session(write=False) as s:
            rows = s.scalars(select(SubmissionEventRow)
                             .join(Submission, Submission.id == SubmissionEventRow.submission_id)
                             .where(Submission.project_id == project_id)
                             .order_by(SubmissionEventRow.id))
            return [_record(r) for r in rows]
