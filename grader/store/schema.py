"""The tables (SQLAlchemy ORM), their vocabulary and the UTC datetime type every table uses.

The tables here are the schema at the head revision: a new database is made from them
(`create_all`), an older one is brought to them by the revisions in `migrations/versions/`, which
keep their own frozen copies (a revision must not change meaning when these do).
`tests/unit/test_store_migrations.py` proves both ways give the same tables.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class State(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    GRADED = "graded"
    UNGRADABLE = "ungradable"
    SUPERSEDED = "superseded"
    SKIPPED = "skipped"


# A push of a SHA that is in one of these states is a duplicate (no second job).
ACTIVE = (State.QUEUED, State.RUNNING, State.GRADED)
POST_KINDS = ("status", "comment")
PUSH_TIME_SOURCES = ("push_event", "received")  # GitLab's push events, or our arrival time
ORIGINS = ("push", "merge_request", "catch_up", "instructor")  # webhook push, MR event, grade-group, grade --post
# What a submission's history can say happened to it. Checked in Python, not by a CHECK constraint,
# so that a new kind is one word here rather than a revision.
EVENT_KINDS = ("received", "graded", "regrade_requested", "regraded", "config_changed", "superseded", "extension")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so naive UTC text is stored (its
    comparisons stay correct because every value is UTC). A naive datetime is refused rather
    than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware one, e.g. datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


def _in(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


class Submission(Base):
    __tablename__ = "submissions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(Integer)
    project_path: Mapped[str] = mapped_column(String(512))  # "devops-2026/ivanov-docker"
    student: Mapped[str] = mapped_column(String(255))  # username of the user who pushed
    sha: Mapped[str] = mapped_column(String(40))
    ref: Mapped[str] = mapped_column(String(255))  # "refs/heads/main"
    event_uuid: Mapped[str | None] = mapped_column(String(64), unique=True)  # X-Gitlab-Event-UUID
    state: Mapped[str] = mapped_column(String(16), default=State.QUEUED)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    late: Mapped[bool] = mapped_column(default=False)
    score: Mapped[float | None]
    max_score: Mapped[float | None]
    report: Mapped[dict | None] = mapped_column(JSON)  # grader.report/1
    error: Mapped[str | None] = mapped_column(Text)  # why it is ungradable
    grader_version: Mapped[str | None] = mapped_column(String(64))
    image_digests: Mapped[list | None] = mapped_column(JSON)
    # The report page's address: unguessable, so a student cannot read others' reports by
    # counting ids. Kept across regrades (the link on the commit stays valid).
    token: Mapped[str | None] = mapped_column(String(32))
    # -- schema version 2 --
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # when the commit was pushed (see source)
    pushed_at_source: Mapped[str | None] = mapped_column(String(16))  # PUSH_TIME_SOURCES; null: not resolved yet
    before_sha: Mapped[str | None] = mapped_column(String(40))  # the branch's head before this push (null: new)
    origin: Mapped[str | None] = mapped_column(String(16))  # ORIGINS; null: recorded before version 2
    merge_request_iid: Mapped[int | None] = mapped_column(Integer)  # graded for this merge request (origin MR)

    __table_args__ = (
        CheckConstraint(f"state IN ({_in(State)})", name="ck_submissions_state"),
        Index("ix_submissions_project_sha", "project_id", "sha"),
        Index("ix_submissions_project_received", "project_id", "received_at"),
        Index("ix_submissions_state", "state"),
        Index("ix_submissions_token", "token", unique=True),
        # One live submission per commit: the database, not a check in Python, refuses a second.
        Index("uq_submissions_active_sha", "project_id", "sha", unique=True,
              sqlite_where=text(f"state IN ({_in(ACTIVE)})"),
              postgresql_where=text(f"state IN ({_in(ACTIVE)})")),
    )

    def __repr__(self) -> str:
        return f"<Submission {self.id} {self.project_path}@{self.sha[:8]} {self.state}>"


class PendingPost(Base):
    """One commit status or comment for GitLab, kept until it is delivered (or given up on)."""

    __tablename__ = "pending_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "status" | "comment"
    payload: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # when a delivery last claimed it: a post claimed before may already be on GitLab
    leased_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    abandoned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # permanent failure (e.g. 404)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        CheckConstraint(f"kind IN ({_in(POST_KINDS)})", name="ck_pending_posts_kind"),
        Index("ix_pending_posts_submission_kind", "submission_id", "kind"),
        Index("ix_pending_posts_due", "next_attempt_at",
              sqlite_where=text("delivered_at IS NULL AND abandoned_at IS NULL"),
              postgresql_where=text("delivered_at IS NULL AND abandoned_at IS NULL")),
    )

    def __repr__(self) -> str:
        return f"<PendingPost {self.id} {self.kind} of submission {self.submission_id} attempts={self.attempts}>"


class Extension(Base):
    """A deadline extension granted with `grader extend`: a student (as the scoreboard names them)
    or a project path (lower case) → the new deadline. The extensions file's entries are not here."""

    __tablename__ = "extensions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(512), unique=True)
    until: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SubmissionDockerfile(Base):
    """-- schema version 3 -- The Dockerfiles a grading took, one per variant, kept with the
    submission so that similarity (grader/similarity/) can run over a course at any time: the text
    as written, its path in the repository, and the file's similarity fingerprint (null: not worked
    out, e.g. the assignment has no [similarity] table). Written by `finish`, with the verdict."""

    __tablename__ = "submission_dockerfiles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(1024))
    text: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of the text: the same file in another push
    fingerprint: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (UniqueConstraint("submission_id", "variant", name="uq_submission_dockerfiles_variant"),
                      Index("ix_submission_dockerfiles_digest", "digest"))


class SubmissionEventRow(Base):
    """-- schema version 4 -- One entry of a submission's history: what happened (EVENT_KINDS), when,
    who did it (an instructor's name; null: the system) and why, with what changed (`detail`, e.g.
    the old and new score). Only ever added to: the history is what the instructors' pages quote."""

    __tablename__ = "submission_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_submission_events_submission", "submission_id", "id"),)


class SchemaInfo(Base):
    """One row: the schema version of the tables in this database, as numbered before Alembic.
    Still written by every revision (version N by revision N): a grader of that time, started on
    a newer database by a rollback, reads it and refuses to start instead of misreading the tables."""

    __tablename__ = "grader_schema"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int]
