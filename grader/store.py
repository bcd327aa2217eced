"""The results store: submissions and the durable outbox of GitLab posts (SQLAlchemy 2).

SQLite file by default, PostgreSQL via URL (`postgresql://…` is read as psycopg 3). Every
`Store` method runs in a session and transaction of its own and returns detached objects
(`expire_on_commit=False`), so one `Store` can be shared by threads, and each process (a forked
Celery worker too) gets its own connections.

States of a submission::

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

At most one submission per (project, SHA) is queued, running or graded: a partial unique index
says so, and `event_uuid` is unique, so two processes recording the same push race on the
database, not in Python — the loser gets the winner's row.

The schema's version is kept in the database (`grader_schema`): a grader refuses a database
written by a newer schema instead of misreading it (an upgrade rolled back without its backup).

SQLite runs in WAL mode with a busy timeout, and its write transactions start with
`BEGIN IMMEDIATE`: two processes never both read "no such push" and then both write.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import os
import re
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    and_,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    inspect,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import URL, Connection, CursorResult, Engine, Result, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, aliased, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateTable
from sqlalchemy.types import TypeDecorator

from grader.errors import ConfigError, GraderError

DEFAULT_URL = "sqlite:///grader.sqlite3"  # as in grader.config
CONNECT_TIMEOUT_S = 5  # PostgreSQL: an unreachable server is a startup error within seconds
SQLITE_BUSY_TIMEOUT_S = 30.0
SCHEMA_VERSION = 3  # raise it with every change of the tables, and migrate older ones in Store._check_schema
_PG_CREATE_LOCK = 0x67726472  # advisory lock: two processes creating the tables at once wait in turn
_SHA = re.compile(r"[0-9a-f]{40}")


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


class StoreUnavailable(GraderError):
    """The database stopped answering (server down, SQLite locked past the busy timeout)."""


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


@dataclass(frozen=True)
class Dockerfile:
    """One stored Dockerfile of a submission (`id` None: not stored yet). `first_pushed`: the
    earliest push of this project that held this very text for this variant (compared_submissions)."""

    variant: str
    path: str
    text: str
    fingerprint: dict | None = None
    id: int | None = None
    first_pushed: datetime | None = None


@dataclass(frozen=True)
class ComparedSubmission:
    """A project's latest graded submission that has Dockerfiles stored, for similarity."""

    id: int
    project_id: int
    project_path: str
    student: str
    token: str | None
    push_time: datetime  # GitLab's push time, else the arrival
    dockerfiles: tuple[Dockerfile, ...]


def new_report_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits, 22 URL-safe characters


def _migrate_0_to_1(conn: Connection) -> None:
    """Version 0 → 1: report tokens for existing submissions (their old links stop working)."""
    conn.execute(text("ALTER TABLE submissions ADD COLUMN token VARCHAR(32)"))
    for (id,) in conn.execute(text("SELECT id FROM submissions")).all():
        conn.execute(text("UPDATE submissions SET token = :token WHERE id = :id"),
                     {"token": new_report_token(), "id": id})
    table = Base.metadata.tables[Submission.__tablename__]  # a Table, where `__table__` is typed a FromClause
    next(i for i in table.indexes if i.name == "ix_submissions_token").create(conn)


_V2_COLUMNS = ("pushed_at", "pushed_at_source", "before_sha", "origin", "merge_request_iid")


def _migrate_1_to_2(conn: Connection) -> None:
    """Version 1 → 2: push time and its source, the push's `before`, where a submission came from
    and its merge request (new columns), the state `skipped` (the state's CHECK constraint), and
    the table `extensions` (made by create_all). Submissions graded before keep the arrival time as
    their push time, said so (`received`); queued and running ones are resolved by their worker.

    PostgreSQL alters the table in place. SQLite cannot change a CHECK constraint, so the table is
    rebuilt the way SQLite documents (lang_altertable.html, "other kinds of table schema changes"):
    a new table, the rows copied, the old one dropped, the new one renamed, the indexes made again;
    the caller has turned foreign keys off for this transaction, so dropping the old table does not
    cascade to the outbox, whose rows keep pointing at `submissions`.
    """
    table = Base.metadata.tables[Submission.__tablename__]
    columns = {c["name"] for c in inspect(conn).get_columns(table.name)}
    if conn.dialect.name == "sqlite":
        kept = [c.name for c in table.columns if c.name in columns]
        ddl = str(CreateTable(table).compile(dialect=conn.dialect))
        assert ddl.lstrip().startswith(f"CREATE TABLE {table.name} ("), ddl[:80]
        conn.exec_driver_sql(ddl.replace(f"CREATE TABLE {table.name} (", f"CREATE TABLE {table.name}_v2 (", 1))
        names = ", ".join(kept)
        conn.exec_driver_sql(f"INSERT INTO {table.name}_v2 ({names}) SELECT {names} FROM {table.name}")
        conn.exec_driver_sql(f"DROP TABLE {table.name}")
        conn.exec_driver_sql(f"ALTER TABLE {table.name}_v2 RENAME TO {table.name}")
        for index in table.indexes:
            index.create(conn)
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
        if broken:
            raise GraderError(f"migrating the database to schema version 2 broke foreign keys: {broken[:3]}")
    else:
        for name in _V2_COLUMNS:
            if name not in columns:
                kind = table.c[name].type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {name} {kind}")
        check = next(c for c in table.constraints
                     if isinstance(c, CheckConstraint) and c.name == "ck_submissions_state")
        conn.exec_driver_sql(f"ALTER TABLE {table.name} DROP CONSTRAINT IF EXISTS ck_submissions_state")
        conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD CONSTRAINT ck_submissions_state CHECK ({check.sqltext})")
    conn.execute(update(Submission)
                 .where(Submission.pushed_at.is_(None), Submission.state.not_in((State.QUEUED, State.RUNNING)))
                 .values(pushed_at=Submission.received_at, pushed_at_source="received"))


def _migrate_2_to_3(conn: Connection) -> None:
    """Version 2 → 3: the table `submission_dockerfiles` (create_all made it, this makes sure).
    Submissions graded before have none stored (their files were never kept): similarity leaves
    them out until they are regraded (`grader regrade`), which stores them."""
    table = Base.metadata.tables[SubmissionDockerfile.__tablename__]
    table.create(conn, checkfirst=True)


class SchemaInfo(Base):
    """One row: the schema version of the tables in this database."""

    __tablename__ = "grader_schema"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int]


@dataclass(frozen=True)
class GradedSummary:
    """A graded submission without its report (the scoreboard reads many of these)."""

    id: int
    project_id: int
    project_path: str
    student: str
    sha: str
    received_at: datetime
    finished_at: datetime | None
    late: bool
    score: float
    max_score: float
    token: str | None = None
    pushed_at: datetime | None = None  # None: not resolved (judged by received_at)
    pushed_at_source: str | None = None
    ref: str = "refs/heads/main"
    merge_request_iid: int | None = None

    @property
    def push_time(self) -> datetime:
        """When it was pushed, as well as is known: GitLab's push time, else the arrival."""
        return self.pushed_at or self.received_at


class Store:
    def __init__(self, url: str = DEFAULT_URL) -> None:
        parsed = _parse_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        try:
            self._engine = _create_engine(parsed)
        except (ArgumentError, NoSuchModuleError, ImportError, TypeError, OSError) as e:
            raise ConfigError(f"cannot use database URL {self.url}: {_first_line(e)}; "
                              "check GRADER_DATABASE_URL") from None
        self._pid = os.getpid()
        self._write = sessionmaker(self._engine, expire_on_commit=False)
        # SQLite: reads begin with a plain BEGIN and do not take the write lock.
        self._read = sessionmaker(self._engine.execution_options(grader_read_only=True), expire_on_commit=False)
        try:
            with self._engine.connect() as conn, _foreign_keys_off(conn):
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
                    Base.metadata.create_all(conn)
                    found = self._check_schema(conn)
        except (OperationalError, InterfaceError) as e:
            self._engine.dispose()
            hint = "is PostgreSQL running and the database created?" if self.dialect == "postgresql" \
                else "is the directory writable?"
            raise ConfigError(f"cannot open the database at {self.url}: {_first_line(e.orig or e)} "
                              f"({hint} check GRADER_DATABASE_URL)") from None
        except SQLAlchemyError as e:
            self._engine.dispose()
            raise ConfigError(f"cannot set up the database at {self.url}: {_first_line(e)}") from None
        if found > SCHEMA_VERSION:
            self._engine.dispose()
            raise ConfigError(f"the database at {self.url} has schema version {found}, newer than this grader's "
                              f"({SCHEMA_VERSION}): run the newer grader, or restore the backup taken before "
                              "upgrading") from None

    @staticmethod
    def _check_schema(conn: Connection) -> int:
        """The database's schema version, after migrating an older one (in this transaction).
        A new database (create_all just made its tables) is stamped with ours."""
        found = conn.execute(select(SchemaInfo.version).where(SchemaInfo.id == 1)).scalar()
        if found is None:
            # No stamp: new (create_all just made every table as it is now), or made by the first
            # release (version 0), which had no report tokens.
            columns = {c["name"] for c in inspect(conn).get_columns("submissions")}
            if "token" in columns and set(_V2_COLUMNS) <= columns:
                conn.execute(insert(SchemaInfo).values(id=1, version=SCHEMA_VERSION))
                return SCHEMA_VERSION
            if "token" not in columns:
                _migrate_0_to_1(conn)
            conn.execute(insert(SchemaInfo).values(id=1, version=1))
            found = 1
        if found == 1:
            _migrate_1_to_2(conn)
            conn.execute(update(SchemaInfo).where(SchemaInfo.id == 1).values(version=2))
            found = 2
        if found == 2:
            _migrate_2_to_3(conn)
            conn.execute(update(SchemaInfo).where(SchemaInfo.id == 1).values(version=3))
            found = 3
        return found

    def close(self) -> None:
        self._engine.dispose()

    # -- sessions -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _session(self, *, write: bool = True) -> Iterator[Session]:
        if os.getpid() != self._pid:  # forked (Celery prefork): never reuse the parent's sockets
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        factory = self._write if write else self._read
        try:
            with factory() as session, session.begin():
                yield session
        except (OperationalError, InterfaceError) as e:
            raise StoreUnavailable(f"database {self.url} unavailable: {_first_line(e.orig or e)}") from e

    # -- submissions ----------------------------------------------------------------------------

    def record_push(self, *, project_id: int, project_path: str, student: str, sha: str, ref: str,
                    event_uuid: str | None, received_at: datetime, late: bool, pushed_at: datetime | None = None,
                    pushed_at_source: str | None = None, before_sha: str | None = None, origin: str = "push",
                    merge_request_iid: int | None = None, skipped: str | None = None, token: str | None = None,
                    status: dict | None = None) -> tuple[Submission, bool]:
        """Records a push, or finds the one it repeats: (submission, created).

        A repeat is the same `event_uuid` (GitLab redelivering), or the same project and SHA
        while that commit is queued, running or graded. created=False means: enqueue nothing.

        `pushed_at`/`pushed_at_source`: the push time when already known (grade-group reads it from
        GitLab's push events); else the worker resolves it. `before_sha`: the branch's previous
        head (the push event's `before`; None or zeros for a new branch). `skipped`: why this push
        is not graded — it is recorded `skipped`, only for its commit to be told so. `token`: the
        report page's token (made here when None); `status`: a commit status for the outbox, recorded
        in the same transaction when the push is new (the webhook's `pending`).

        A new push costs one transaction of one INSERT … ON CONFLICT DO NOTHING (two with `status`):
        the unique index on `event_uuid` and the one-live-row-per-commit index decide whether it
        repeats one, in the database, so no read comes before the write and two processes recording
        the same push race there. Only a repeat reads, to return the row it repeats.
        """
        sha = sha.lower()
        if not _SHA.fullmatch(sha):
            raise ValueError(f"not a 40-hex commit SHA: {sha!r}")
        if received_at.tzinfo is None or (pushed_at is not None and pushed_at.tzinfo is None):
            raise ValueError("received_at and pushed_at must be aware datetimes")
        if (pushed_at is None) != (pushed_at_source is None) or (pushed_at_source not in (None, *PUSH_TIME_SOURCES)):
            raise ValueError(f"pushed_at and pushed_at_source ({PUSH_TIME_SOURCES}) go together")
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
        before = before_sha.lower() if before_sha else None
        if before is not None and (not _SHA.fullmatch(before) or before == "0" * 40):
            before = None
        values = dict(project_id=project_id, project_path=project_path, student=student, sha=sha, ref=ref,
                      event_uuid=event_uuid, state=(State.SKIPPED if skipped is not None else State.QUEUED).value,
                      error=skipped, received_at=received_at, late=late, token=token or new_report_token(),
                      pushed_at=pushed_at, pushed_at_source=pushed_at_source, before_sha=before, origin=origin,
                      merge_request_iid=merge_request_iid)
        last: BaseException | None = None
        for _ in range(5):
            try:
                id = self._write_push(values, status)
                if id is not None:
                    return Submission(id=id, **values), True
                with self._session(write=False) as s:
                    # a skipped push repeats only its own delivery
                    existing = self._find_duplicate(s, project_id, sha, event_uuid) if skipped is None \
                        else self._find_event(s, event_uuid)
                if existing is not None:
                    return existing, False
                # The row it collided with went meanwhile (forgotten after a failed publish, or out of
                # the live states): try the insert again.
            except IntegrityError as e:
                last = e
        raise StoreUnavailable(f"could not record push {sha} of project {project_id}: {_first_line(last)}")

    def _write_push(self, values: dict[str, Any], status: dict | None) -> int | None:
        """The new submission's id (with its status in the outbox), or None: the push repeats one.
        Through the process's push writer, which commits the pushes waiting together."""
        writer = self.__dict__.get("_push_writer")
        if writer is None or writer.pid != os.getpid():
            with _PUSH_WRITER_LOCK:  # one writer per Store and process (a forked child starts its own)
                writer = self.__dict__.get("_push_writer")
                if writer is None or writer.pid != os.getpid():
                    writer = self.__dict__["_push_writer"] = _PushWriter(self)
        return writer.submit(values, status)

    def _insert_one(self, conn: Connection, values: dict[str, Any], status: dict | None) -> int | None:
        insert_push, insert_post, insert_both = _push_statements(self.dialect, tuple(values))
        if status is not None and insert_both is not None:
            return conn.execute(insert_both, {**values, "payload": status, "now": utcnow()}).scalar()
        id = conn.execute(insert_push, values).scalar()
        if id is not None and status is not None:
            now = utcnow()
            conn.execute(insert_post, {"submission_id": id, "kind": "status", "payload": status, "attempts": 0,
                                       "next_attempt_at": now, "created_at": now})
        return id

    @contextlib.contextmanager
    def _push_transaction(self) -> Iterator[Connection]:
        """A write transaction for recording a push (SQLAlchemy Core, no ORM session).

        SQLite has one writer at a time; a writer that finds the lock taken sleeps in its busy
        handler (1, 2, 5, 10, … 100 ms), which at hundreds of pushes a second is the whole latency.
        So pushes queue for the write lock here instead — a thread lock, then an flock on a file
        next to the database for the other `grader serve` workers — and are handed it the moment
        it is free. PostgreSQL needs none of this."""
        if os.getpid() != self._pid:  # forked (Celery prefork): never reuse the parent's sockets
            self._engine.dispose(close=False)
            self._pid = os.getpid()
        try:
            with _sqlite_push_lock(self._engine.url.database if self.dialect == "sqlite" else None):
                with self._engine.begin() as conn:
                    yield conn
        except (OperationalError, InterfaceError) as e:
            raise StoreUnavailable(f"database {self.url} unavailable: {_first_line(e.orig or e)}") from e

    def _find_duplicate(self, s: Session, project_id: int, sha: str, event_uuid: str | None) -> Submission | None:
        found = self._find_event(s, event_uuid)
        if found is not None:
            return found
        return s.scalars(select(Submission).where(Submission.project_id == project_id, Submission.sha == sha,
                                                  Submission.state.in_(ACTIVE))).first()

    @staticmethod
    def _find_event(s: Session, event_uuid: str | None) -> Submission | None:
        if event_uuid is None:
            return None
        return s.scalars(select(Submission).where(Submission.event_uuid == event_uuid)).first()

    def forget(self, id: int) -> None:
        """Removes a submission that was just recorded and could not be queued (with its posts), so
        that GitLab's retry of the same delivery records it afresh instead of finding a duplicate."""
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
            return _rowcount(result) == 1

    def finish(self, id: int, report: dict, grader_version: str, image_digests: list[str] | None = None,
               dockerfiles: Sequence[Dockerfile] | None = None) -> bool:
        """running → graded, with the score from the report. False when it was not running.
        `dockerfiles`: the files this grading took, replacing those stored before, in the same
        transaction as the verdict (None: keep what is stored)."""
        try:
            score, max_score = float(report["score"]), float(report["max_score"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"report has no numeric score/max_score: {e}") from None
        with self._session() as s:
            result = s.execute(update(Submission).where(Submission.id == id, Submission.state == State.RUNNING)
                               .values(state=State.GRADED, finished_at=utcnow(), score=score, max_score=max_score,
                                       report=report, grader_version=grader_version, image_digests=image_digests,
                                       error=None))
            if _rowcount(result) != 1:
                return False
            if dockerfiles is not None:
                s.execute(delete(SubmissionDockerfile).where(SubmissionDockerfile.submission_id == id))
                s.add_all(SubmissionDockerfile(submission_id=id, variant=d.variant, path=d.path, text=d.text,
                                               digest=hashlib.sha256(d.text.encode()).hexdigest(),
                                               fingerprint=d.fingerprint) for d in dockerfiles)
            return True

    def mark_ungradable(self, id: int, error: str) -> bool:
        """queued/running → ungradable (our failure, not the student's). False otherwise.
        A regrade that fails keeps the grade it had: back to graded, with the error recorded."""
        active = (Submission.id == id, Submission.state.in_((State.QUEUED, State.RUNNING)))
        with self._session() as s:
            kept = s.execute(update(Submission).where(*active, Submission.score.is_not(None))
                             .values(state=State.GRADED, error=f"regrade failed, previous grade kept: {error}"))
            if _rowcount(kept) == 1:
                return True
            result = s.execute(update(Submission).where(*active)
                               .values(state=State.UNGRADABLE, finished_at=utcnow(), error=error))
            return _rowcount(result) == 1

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
            return _rowcount(result) == 1

    def revive(self, id: int) -> bool:
        """superseded → queued: it was superseded by a push that turned out older (delivered late).
        False when it is not superseded, or its commit is live in another row."""
        try:
            with self._session() as s:
                result = s.execute(update(Submission).where(Submission.id == id, Submission.state == State.SUPERSEDED)
                                   .values(state=State.QUEUED, started_at=None, finished_at=None))
                return _rowcount(result) == 1
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

    # -- extensions -----------------------------------------------------------------------------

    def set_extension(self, key: str, until: datetime, reason: str | None = None) -> None:
        """Grants (or changes) an extension for a student or a project path."""
        if until.tzinfo is None:
            raise ValueError("until must be an aware datetime")
        key = key.strip().strip("/").lower() if "/" in key else key.strip()
        with self._session() as s:
            found = s.scalars(select(Extension).where(Extension.key == key)).first()
            if found is None:
                s.add(Extension(key=key, until=until, reason=reason, created_at=utcnow()))
            else:
                found.until, found.reason = until, reason

    def remove_extension(self, key: str) -> bool:
        key = key.strip().strip("/").lower() if "/" in key else key.strip()
        with self._session() as s:
            return _rowcount(s.execute(delete(Extension).where(Extension.key == key))) == 1

    def extensions(self) -> dict[str, tuple[datetime, str | None]]:
        """Every extension granted with `grader extend`: key → (until, reason)."""
        with self._session(write=False) as s:
            return {e.key: (e.until, e.reason) for e in s.scalars(select(Extension).order_by(Extension.key))}

    def requeue(self, ids: Iterable[int]) -> list[int]:
        """graded/ungradable → queued (regrade); the ids requeued. The previous grade (score and
        report) stays until the new one replaces it, so the student never vanishes from the
        scoreboard, and a regrade that fails loses nothing.

        Skipped: ids that are queued, running or superseded, and an ungradable one whose commit
        is already queued, running or graded in another row.
        """
        done = []
        for id in ids:
            try:
                with self._session() as s:
                    result = s.execute(
                        update(Submission)
                        .where(Submission.id == id, Submission.state.in_((State.GRADED, State.UNGRADABLE)))
                        .values(state=State.QUEUED, started_at=None, error=None))
                    if _rowcount(result) == 1:
                        done.append(id)
            except IntegrityError:
                continue
        return done

    def select_stuck(self, stale_after: timedelta, queued_before: datetime | None = None) -> list[int]:
        """Ids whose job may be missing from the queue: queued ones (recorded before `queued_before`,
        when given: a push just recorded is being published right now), and running ones started
        longer ago than `stale_after` (their worker died). After Redis lost its data, or a restore."""
        queued = Submission.state == State.QUEUED
        if queued_before is not None:
            queued = and_(queued, Submission.received_at < queued_before)
        stuck = or_(queued,
                    and_(Submission.state == State.RUNNING, Submission.started_at < utcnow() - stale_after))
        with self._session(write=False) as s:
            return list(s.scalars(select(Submission.id).where(stuck).order_by(Submission.id)))

    def running_since(self) -> list[tuple[int, datetime]]:
        """(id, started_at) of every submission being graded now, for the heartbeat takeover."""
        with self._session(write=False) as s:
            rows = s.execute(select(Submission.id, Submission.started_at)
                             .where(Submission.state == State.RUNNING, Submission.started_at.is_not(None)))
            return [(i, started) for i, started in rows if started is not None]

    def requeue_running(self, id: int) -> bool:
        """running → queued, for a retry after an infrastructure failure."""
        with self._session() as s:
            result = s.execute(update(Submission).where(Submission.id == id, Submission.state == State.RUNNING)
                               .values(state=State.QUEUED, started_at=None))
            return _rowcount(result) == 1

    def select_for_regrade(self, project_path: str | None = None, group_prefix: str | None = None, *,
                           latest_only: bool = False) -> list[int]:
        """Ids to `requeue` after a rubric change: each graded commit, or (never graded) the last
        ungradable attempt at it; none of a commit that is queued or running now.

        `project_path` picks one project, `group_prefix` every project under a group (subgroups
        too); neither: all. `latest_only`: only the latest push of each project.
        """
        q = select(Submission.id, Submission.project_id, Submission.sha, Submission.state, Submission.received_at)
        q = q.where(Submission.state.not_in((State.SUPERSEDED, State.SKIPPED)))
        if project_path is not None:
            q = q.where(Submission.project_path == project_path.strip("/"))
        if group_prefix is not None:
            q = q.where(Submission.project_path.startswith(group_prefix.strip("/") + "/", autoescape=True))
        with self._session(write=False) as s:
            rows = s.execute(q.order_by(Submission.received_at, Submission.id)).all()
        busy = {(r.project_id, r.sha) for r in rows if r.state in (State.QUEUED, State.RUNNING)}
        pick: dict[tuple[int, str], Any] = {}
        for r in rows:  # in push order: a later row for the same commit wins, a graded one always
            key = (r.project_id, r.sha)
            if key in busy:
                continue
            if r.state == State.GRADED or key not in pick or pick[key].state != State.GRADED:
                pick[key] = r
        chosen = list(pick.values())
        if latest_only:
            latest: dict[int, Any] = {}
            for r in rows:
                latest[r.project_id] = r  # rows are in push order
            chosen = [r for r in chosen if (r.project_id, r.sha) == (latest[r.project_id].project_id,
                                                                     latest[r.project_id].sha)]
        return sorted(r.id for r in chosen)

    def graded_summaries(self) -> list[GradedSummary]:
        with self._session(write=False) as s:
            rows = s.execute(select(Submission.id, Submission.project_id, Submission.project_path,
                                    Submission.student, Submission.sha, Submission.received_at,
                                    Submission.finished_at, Submission.late, Submission.score, Submission.max_score,
                                    Submission.token, Submission.pushed_at, Submission.pushed_at_source,
                                    Submission.ref, Submission.merge_request_iid)
                             # graded, or being regraded with its previous grade kept
                             .where(or_(Submission.state == State.GRADED,
                                        and_(Submission.state.in_((State.QUEUED, State.RUNNING)),
                                             Submission.score.is_not(None))))
                             .order_by(Submission.received_at, Submission.id)).all()
        summaries: list[GradedSummary] = []
        for (id, project_id, project_path, student, sha, received_at, finished_at, late, score, max_score, token,
             pushed_at, pushed_at_source, ref, mr_iid) in rows:
            # finish() sets both scores as it makes a submission graded; nothing clears them
            assert score is not None and max_score is not None, f"graded submission {id} has no score"
            summaries.append(GradedSummary(id, project_id, project_path, student, sha, received_at, finished_at, late,
                                           score, max_score, token, pushed_at, pushed_at_source, ref, mr_iid))
        return summaries

    def reports(self, ids: Iterable[int]) -> dict[int, dict]:
        ids = list(ids)
        out: dict[int, dict] = {}
        with self._session(write=False) as s:
            for i in range(0, len(ids), 500):
                rows = s.execute(select(Submission.id, Submission.report).where(Submission.id.in_(ids[i:i + 500])))
                out.update({id: report for id, report in rows})
        return out

    def status_counts(self) -> dict[str, int]:
        """Submissions per state, every state present."""
        with self._session(write=False) as s:
            rows = s.execute(select(Submission.state, func.count()).group_by(Submission.state)).all()
        counts = {str(st): 0 for st in State}
        counts.update({state: n for state, n in rows})
        return counts

    def oldest_queued_at(self) -> datetime | None:
        """When the submission that has waited longest was received (None: nothing queued)."""
        with self._session(write=False) as s:
            return s.scalar(select(func.min(Submission.received_at)).where(Submission.state == State.QUEUED))

    def recent_failures(self, limit: int = 10) -> list[Submission]:
        """The latest ungradable submissions, newest first."""
        with self._session(write=False) as s:
            return list(s.scalars(select(Submission).where(Submission.state == State.UNGRADABLE)
                                  .order_by(Submission.finished_at.desc().nulls_last(), Submission.id.desc())
                                  .limit(limit)))

    # -- Dockerfiles kept for similarity --------------------------------------------------------

    def dockerfiles(self, submission_id: int) -> list[Dockerfile]:
        with self._session(write=False) as s:
            rows = s.scalars(select(SubmissionDockerfile).where(SubmissionDockerfile.submission_id == submission_id)
                             .order_by(SubmissionDockerfile.variant))
            return [Dockerfile(r.variant, r.path, r.text, r.fingerprint, r.id) for r in rows]

    def compared_submissions(self, group_prefixes: Sequence[str] = ()) -> list[ComparedSubmission]:
        """Per project (under one of `group_prefixes`, subgroups too; none given: every project),
        its latest graded submission with Dockerfiles stored (a regrade in progress keeps its
        previous files until it finishes), in push order."""
        has_files = exists().where(SubmissionDockerfile.submission_id == Submission.id)
        q = (select(Submission.id, Submission.project_id, Submission.project_path, Submission.student,
                    Submission.token, Submission.pushed_at, Submission.received_at)
             .where(has_files, or_(Submission.state == State.GRADED,
                                   and_(Submission.state.in_((State.QUEUED, State.RUNNING)),
                                        Submission.score.is_not(None)))))
        if group_prefixes:
            q = q.where(or_(*(Submission.project_path.startswith(g.strip("/") + "/", autoescape=True)
                              for g in group_prefixes)))
        with self._session(write=False) as s:
            latest: dict[int, Any] = {}
            for row in s.execute(q.order_by(func.coalesce(Submission.pushed_at, Submission.received_at),
                                            Submission.id)):
                latest[row.project_id] = row  # in push order: the last one wins
            ids = [r.id for r in latest.values()]
            project_of = {r.id: r.project_id for r in latest.values()}
            first = self._first_pushes(s, list(latest))
            files: dict[int, list[Dockerfile]] = {}
            for i in range(0, len(ids), 500):
                for d in s.scalars(select(SubmissionDockerfile)
                                   .where(SubmissionDockerfile.submission_id.in_(ids[i:i + 500]))
                                   .order_by(SubmissionDockerfile.variant)):
                    when = first.get((project_of[d.submission_id], d.variant, d.digest))
                    files.setdefault(d.submission_id, []).append(Dockerfile(d.variant, d.path, d.text,
                                                                            d.fingerprint, d.id, when))
        found = [ComparedSubmission(r.id, r.project_id, r.project_path, r.student, r.token,
                                    r.pushed_at or r.received_at, tuple(files.get(r.id, ()))) for r in latest.values()]
        return sorted(found, key=lambda c: (c.push_time, c.id))

    @staticmethod
    def _first_pushes(s: Session, project_ids: list[int]) -> dict[tuple[int, str, str], datetime]:
        """(project, variant, text digest) → the earliest push that held that text: who pushed a
        text first, when both students pushed again since (a README fix keeps the Dockerfile)."""
        pushed = func.min(func.coalesce(Submission.pushed_at, Submission.received_at), type_=UTCDateTime())
        found: dict[tuple[int, str, str], datetime] = {}
        for i in range(0, len(project_ids), 500):
            rows = s.execute(select(Submission.project_id, SubmissionDockerfile.variant, SubmissionDockerfile.digest,
                                    pushed)
                             .join(Submission, Submission.id == SubmissionDockerfile.submission_id)
                             .where(Submission.project_id.in_(project_ids[i:i + 500]))
                             .group_by(Submission.project_id, SubmissionDockerfile.variant,
                                       SubmissionDockerfile.digest))
            found.update({(project, variant, digest): when for project, variant, digest, when in rows})
        return found

    def set_fingerprints(self, fingerprints: dict[int, dict]) -> None:
        """Stored Dockerfiles' fingerprints worked out again (the course's files changed): by row id."""
        with self._session() as s:
            for id, fingerprint in fingerprints.items():
                s.execute(update(SubmissionDockerfile).where(SubmissionDockerfile.id == id)
                          .values(fingerprint=fingerprint))

    # -- outbox of GitLab posts -----------------------------------------------------------------

    def add_post(self, submission_id: int, kind: str, payload: dict) -> PendingPost:
        if kind not in POST_KINDS:
            raise ValueError(f"kind must be one of {POST_KINDS}, not {kind!r}")
        now = utcnow()
        with self._session() as s:
            post = PendingPost(submission_id=submission_id, kind=kind, payload=payload, attempts=0,
                               next_attempt_at=now, created_at=now)
            s.add(post)
            s.flush()
        return post

    def due_posts(self, now: datetime, limit: int = 50, *, lease: timedelta | None = None) -> list[PendingPost]:
        """Undelivered posts whose time has come, earliest first.

        Posts of one submission and kind go out in the order they were added: a post is not due
        while an earlier one of the same submission and kind is undelivered (a retried `pending`
        status can never land after `success`).

        `lease`: claim the returned posts — their next attempt moves to now + lease in the same
        transaction, so a concurrent caller does not get them; `post_delivered`/`post_failed`
        settle them, and a caller that dies leaves them due again after the lease.
        """
        earlier = aliased(PendingPost)
        blocked = exists().where(earlier.submission_id == PendingPost.submission_id, earlier.kind == PendingPost.kind,
                                 earlier.id < PendingPost.id, earlier.delivered_at.is_(None),
                                 earlier.abandoned_at.is_(None))
        q = (select(PendingPost)
             .where(PendingPost.delivered_at.is_(None), PendingPost.abandoned_at.is_(None),
                    PendingPost.next_attempt_at <= now, ~blocked)
             .order_by(PendingPost.next_attempt_at, PendingPost.id).limit(limit))
        if lease is None:
            with self._session(write=False) as s:
                return list(s.scalars(q))
        if self.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True, of=PendingPost)
        with self._session() as s:
            posts = list(s.scalars(q))
            if posts:
                s.execute(update(PendingPost).where(PendingPost.id.in_([p.id for p in posts]))
                          .values(next_attempt_at=now + lease))
        return posts

    def post_delivered(self, id: int) -> bool:
        with self._session() as s:
            result = s.execute(update(PendingPost).where(PendingPost.id == id, PendingPost.delivered_at.is_(None))
                               .values(delivered_at=utcnow(), last_error=None))
            return _rowcount(result) == 1

    def post_failed(self, id: int, error: str, next_attempt_at: datetime) -> None:
        with self._session() as s:
            s.execute(update(PendingPost).where(PendingPost.id == id, PendingPost.delivered_at.is_(None))
                      .values(attempts=PendingPost.attempts + 1, last_error=error, next_attempt_at=next_attempt_at))

    def post_abandoned(self, id: int, error: str) -> None:
        """Gives a post up for good (GitLab refused it for a reason retrying cannot fix)."""
        with self._session() as s:
            s.execute(update(PendingPost).where(PendingPost.id == id, PendingPost.delivered_at.is_(None))
                      .values(attempts=PendingPost.attempts + 1, last_error=error, abandoned_at=utcnow()))

    def get_post(self, id: int) -> PendingPost | None:
        with self._session(write=False) as s:
            return s.get(PendingPost, id)

    def abandoned_posts(self, limit: int = 10) -> list[PendingPost]:
        """Posts GitLab refused for good, newest first, with why (for `grader status`)."""
        with self._session(write=False) as s:
            return list(s.scalars(select(PendingPost).where(PendingPost.abandoned_at.is_not(None))
                                  .order_by(PendingPost.abandoned_at.desc()).limit(limit)))

    def undelivered_count(self) -> int:
        with self._session(write=False) as s:
            return s.scalar(select(func.count()).select_from(PendingPost)
                            .where(PendingPost.delivered_at.is_(None), PendingPost.abandoned_at.is_(None))) or 0


@contextlib.contextmanager
def _foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite: foreign keys off on this connection until the block ends (a table rebuild must not
    cascade). The pragma is a no-op inside a transaction, so it goes to the driver's connection
    before the block begins one. Nothing to do on PostgreSQL."""
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE matched: Session.execute is typed to return a Result, but for an UPDATE
    or DELETE it is a CursorResult, which has `rowcount`."""
    return cast(CursorResult[Any], result).rowcount


_PUSH_STATEMENTS: dict[tuple[str, tuple[str, ...]], tuple[Any, Any, Any]] = {}


def _push_statements(dialect: str, columns: tuple[str, ...]) -> tuple[Any, Any, Any]:
    """The INSERTs of a push, built once (the values go in as parameters: building a statement per
    push, with its cache key, cost more than running it): INSERT … ON CONFLICT DO NOTHING RETURNING
    id — no row back means the push repeats one; without a conflict target it covers every unique
    index, the partial one per live commit too —, the outbox's INSERT, and on PostgreSQL both in
    one statement (a data-modifying WITH: one round trip instead of two; None on SQLite, where
    a statement costs no round trip)."""
    found = _PUSH_STATEMENTS.get((dialect, columns))
    if found is None:
        from sqlalchemy import bindparam, literal
        from sqlalchemy.dialects import postgresql, sqlite  # the two dialects' INSERT … ON CONFLICT

        table = Base.metadata.tables[Submission.__tablename__]
        posts = Base.metadata.tables[PendingPost.__tablename__]
        upsert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
        both = None
        if dialect == "postgresql":
            new = (postgresql.insert(table).values({c: bindparam(c) for c in columns}).on_conflict_do_nothing()
                   .returning(table.c.id).cte("new_submission"))
            now = bindparam("now", type_=posts.c.created_at.type)
            post = insert(posts).from_select(
                ["submission_id", "kind", "payload", "attempts", "next_attempt_at", "created_at"],
                select(new.c.id, literal("status"), bindparam("payload", type_=posts.c.payload.type), literal(0),
                       now, now)).cte("new_post")
            both = select(new.c.id).add_cte(post)
        found = _PUSH_STATEMENTS[(dialect, columns)] = (upsert.on_conflict_do_nothing().returning(table.c.id),
                                                         insert(posts), both)
    return found


@dataclass
class _PendingPush:
    values: dict[str, Any]
    status: dict | None
    done: threading.Event
    id: int | None = None
    error: BaseException | None = None
    lead: bool = False  # woken to write the next batch, not with a result


class _PushWriter:
    """Group commit for pushes. A commit costs an fsync (about 1.5 ms on this kind of disk, more
    when it is busy) and, on PostgreSQL, round trips and a server process's work; SQLite commits
    one writer at a time. One transaction per push capped intake at a few hundred a second however
    many threads waited. Here the pushes that arrive while a batch is being written wait together;
    the first of them then writes them all (up to BATCH) in one transaction and answers each after
    the commit: as durable as a commit per push (nobody hears "recorded" before the fsync), one
    commit per batch. The caller's own thread writes (leader and followers, no writer thread): a
    push arriving when nothing is being written costs no hand-over between threads, each of which
    can wait for a core on a busy machine. A batch that fails on one push is written again one
    push per transaction, so one bad push fails alone."""

    BATCH = 128

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._waiting: list[_PendingPush] = []
        self._writing = False

    def submit(self, values: dict[str, Any], status: dict | None) -> int | None:
        item = _PendingPush(values, status, threading.Event())
        with self._lock:
            self._waiting.append(item)
            lead, self._writing = not self._writing, True
        if not lead:
            item.done.wait()
        if lead or item.lead:
            self._write_next()
        if item.error is not None:
            raise item.error
        return item.id

    def _write_next(self) -> None:
        """Writes the pushes waiting (this thread's first among them), then hands the writing to
        the first push that arrived meanwhile, or ends it."""
        with self._lock:
            batch, self._waiting = self._waiting[:self.BATCH], self._waiting[self.BATCH:]
        try:
            self._write(batch)
        except IntegrityError:
            for item in batch:
                try:
                    self._write([item])
                except Exception as e:  # noqa: BLE001 - handed to the waiting caller, raised there
                    item.error = e
        except Exception as e:  # noqa: BLE001 - the database is down: every waiting caller hears so
            for item in batch:
                item.error = e
        finally:
            with self._lock:
                if self._waiting:
                    self._waiting[0].lead = True
                    self._waiting[0].done.set()
                else:
                    self._writing = False
            for item in batch:
                item.lead = False
                item.done.set()

    def _write(self, batch: list[_PendingPush]) -> None:
        with self.store._push_transaction() as conn:
            ids = [self.store._insert_one(conn, item.values, item.status) for item in batch]
        for item, id in zip(batch, ids, strict=True):
            item.id = id


_PUSH_WRITER_LOCK = threading.Lock()
_PUSH_LOCK = threading.Lock()  # one SQLite writer of pushes per process at a time (see _push_transaction)
_PUSH_LOCK_FILES: dict[tuple[int, str], int] = {}  # (pid, lock file) → fd; a forked child opens its own


@contextlib.contextmanager
def _sqlite_push_lock(database: str | None) -> Iterator[None]:
    """Held while a push is written to SQLite: this process's threads in turn, and the processes
    sharing the file in turn (flock on `<database>.push-lock`; the kernel wakes the next waiter at
    once, where SQLite's busy handler would sleep). None (PostgreSQL): nothing to hold."""
    if database is None:
        yield
        return
    with _PUSH_LOCK:
        if database in ("", ":memory:"):
            yield
            return
        key = (os.getpid(), database)
        fd = _PUSH_LOCK_FILES.get(key)
        if fd is None:
            fd = _PUSH_LOCK_FILES[key] = os.open(f"{database}.push-lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


# -- engine -------------------------------------------------------------------------------------


def _first_line(e: BaseException | None) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"database URL {url.split('@')[-1]!r} is not a URL; set GRADER_DATABASE_URL to e.g. "
                          "sqlite:///grader.db or postgresql://user@host/db") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"database URL {parsed.render_as_string(hide_password=True)}: only sqlite:// and "
                          "postgresql:// are supported; check GRADER_DATABASE_URL")
    return parsed


def _create_engine(url: URL) -> Engine:
    if url.get_backend_name() == "postgresql":
        connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
        return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
    memory = url.database in (None, "", ":memory:")
    if memory:
        engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
    else:
        assert url.database is not None  # not memory
        if not url.query.get("uri"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own BEGIN handling off: ours below
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get("grader_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine
