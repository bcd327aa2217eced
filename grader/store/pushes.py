"""Recording pushes: one INSERT … ON CONFLICT DO NOTHING per push, pushes that arrive together
committed together (group commit), and on SQLite one writer at a time handed the lock in turn.

At most one submission per (project, SHA) is queued, running or graded: a partial unique index
says so, and `event_uuid` is unique, so two processes recording the same push race on the
database, not in Python — the loser gets the winner's row.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import secrets
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from grader.errors import GraderError
from grader.store.database import Database, StoreUnavailable, first_line
from grader.store.schema import ACTIVE, ORIGINS, PUSH_TIME_SOURCES, Base, PendingPost, State, Submission, utcnow

_SHA = re.compile(r"[0-9a-f]{40}")


def new_report_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits, 22 URL-safe characters


class Pushes(Database):
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
        values = _push_values(project_id=project_id, project_path=project_path, student=student, sha=sha, ref=ref,
                              event_uuid=event_uuid, received_at=received_at, late=late, pushed_at=pushed_at,
                              pushed_at_source=pushed_at_source, before_sha=before_sha, origin=origin,
                              merge_request_iid=merge_request_iid, skipped=skipped, token=token)
        last: BaseException | None = None
        for _ in range(5):
            try:
                id = self._write_push(values, status)
                if id is not None:
                    return Submission(id=id, **values), True
                with self._session(write=False) as s:
                    existing = self._repeated(s, values)
                if existing is not None:
                    return existing, False
                # The row it collided with went meanwhile (forgotten after a failed publish, or out of
                # the live states): try the insert again.
            except IntegrityError as e:
                last = e
        raise StoreUnavailable(f"could not record push {sha} of project {project_id}: {first_line(last)}")

    def record_pushes(self, pushes: Sequence[dict[str, Any]]) -> list[tuple[Submission, bool] | Exception]:
        """Several pushes (each `record_push`'s keyword arguments) in one transaction: what each got
        — (submission, created) as `record_push` returns it, or the exception it alone raised.

        The webhook's intake thread hands over the pushes that arrived together: one commit (one
        fsync) and one database round trip per batch. A batch that fails on one push (a constraint
        no ON CONFLICT covers) is recorded again one push at a time, so that push fails alone; a
        repeat whose row went meanwhile is recorded again alone too (`record_push` retries it)."""
        results: list[tuple[Submission, bool] | Exception | None] = [None] * len(pushes)
        todo: list[tuple[int, dict[str, Any], dict | None]] = []
        for i, push in enumerate(pushes):
            try:
                todo.append((i, _push_values(**{k: v for k, v in push.items() if k != "status"}), push.get("status")))
            except ValueError as e:
                results[i] = e
        try:
            with self._push_transaction() as conn:
                ids = self._insert_many(conn, [(values, status) for _, values, status in todo])
        except IntegrityError:
            ids = [None] * len(todo)
            alone = [i for i, _, _ in todo]
        except StoreUnavailable as e:
            for i, _, _ in todo:
                results[i] = e
            return [r for r in results if r is not None]
        else:
            alone = []
            repeats = [(i, values) for (i, values, _), id in zip(todo, ids, strict=True) if id is None]
            for (i, values, _), id in zip(todo, ids, strict=True):
                if id is not None:
                    results[i] = (Submission(id=id, **values), True)
            if repeats:
                found: list[tuple[int, Submission | None | StoreUnavailable]]
                try:
                    with self._session(write=False) as s:
                        found = [(i, self._repeated(s, values)) for i, values in repeats]
                except StoreUnavailable as e:  # the new rows are committed: only the repeats go unanswered
                    found = [(i, e) for i, _ in repeats]
                for i, existing in found:
                    if existing is None:
                        alone.append(i)
                    else:
                        results[i] = existing if isinstance(existing, StoreUnavailable) else (existing, False)
        for i in alone:
            try:
                results[i] = self.record_push(**pushes[i])
            except (GraderError, ValueError) as e:
                results[i] = e
        assert all(r is not None for r in results), "every push got an answer"
        return [r for r in results if r is not None]

    def _repeated(self, s: Session, values: dict[str, Any]) -> Submission | None:
        """The row a push that inserted nothing repeats: a skipped push repeats only its own delivery."""
        if values["state"] == State.SKIPPED.value:
            return self._find_event(s, values["event_uuid"])
        return self._find_duplicate(s, values["project_id"], values["sha"], values["event_uuid"])

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

    def _insert_many(self, conn: Connection, items: list[tuple[dict[str, Any], dict | None]]) -> list[int | None]:
        """Each push's new id, or None where it repeats one. On PostgreSQL a batch is two statements
        (every row in one INSERT … ON CONFLICT DO NOTHING RETURNING, then their statuses in one
        INSERT): a statement per push made the server plan and run one per push, and the batch
        waited a round trip per push. SQLite runs in this process: a statement per push costs no
        round trip there."""
        if self.dialect != "postgresql" or len(items) < 2 or len({tuple(v) for v, _ in items}) != 1:
            return [self._insert_one(conn, values, status) for values, status in items]
        rows = conn.execute(_pg_upsert_many(tuple(items[0][0])), [v for v, _ in items]).all()
        # The rows come back in no promised order: each goes to the first push of its delivery (its
        # event uuid, project and commit) still without one; a push left without is a repeat.
        free: dict[tuple, list[int]] = {}
        for id, event_uuid, project_id, sha in rows:
            free.setdefault((event_uuid, project_id, sha), []).append(id)
        ids: list[int | None] = []
        for values, _ in items:
            taken = free.get((values["event_uuid"], values["project_id"], values["sha"]))
            ids.append(taken.pop(0) if taken else None)
        now = utcnow()
        posts = [{"submission_id": id, "kind": "status", "payload": status, "attempts": 0, "next_attempt_at": now,
                  "created_at": now} for id, (_, status) in zip(ids, items, strict=True)
                 if id is not None and status is not None]
        if posts:
            conn.execute(insert(Base.metadata.tables[PendingPost.__tablename__]), posts)
        return ids

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
        self._forked()
        try:
            with _sqlite_push_lock(self._engine.url.database if self.dialect == "sqlite" else None):
                with self._engine.begin() as conn:
                    yield conn
        except (OperationalError, InterfaceError) as e:
            raise StoreUnavailable(f"database {self.url} unavailable: {first_line(e.orig or e)}") from e

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


def _push_values(*, project_id: int, project_path: str, student: str, sha: str, ref: str, event_uuid: str | None,
                 received_at: datetime, late: bool, pushed_at: datetime | None = None,
                 pushed_at_source: str | None = None, before_sha: str | None = None, origin: str = "push",
                 merge_request_iid: int | None = None, skipped: str | None = None,
                 token: str | None = None) -> dict[str, Any]:
    """A push's row, checked (ValueError names what is wrong)."""
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
    return dict(project_id=project_id, project_path=project_path, student=student, sha=sha, ref=ref,
                event_uuid=event_uuid, state=(State.SKIPPED if skipped is not None else State.QUEUED).value,
                error=skipped, received_at=received_at, late=late, token=token or new_report_token(),
                pushed_at=pushed_at, pushed_at_source=pushed_at_source, before_sha=before, origin=origin,
                merge_request_iid=merge_request_iid)


_PUSH_STATEMENTS: dict[tuple[str, tuple[str, ...]], tuple[Any, Any, Any]] = {}


@functools.lru_cache(maxsize=8)
def _pg_upsert_many(columns: tuple[str, ...]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING what identifies each row's push, run with a list
    of parameter sets: SQLAlchemy sends them as multi-row VALUES ("insertmanyvalues"), the
    statement compiled once."""
    from sqlalchemy.dialects import postgresql

    table = Base.metadata.tables[Submission.__tablename__]
    return (postgresql.insert(table).on_conflict_do_nothing()
            .returning(table.c.id, table.c.event_uuid, table.c.project_id, table.c.sha))


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

    def __init__(self, store: Pushes) -> None:
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
