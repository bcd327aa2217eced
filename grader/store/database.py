"""Opening a database: the URL, the engine (SQLite's pragmas and write locking), sessions, and
the schema brought to this grader's on opening (grader/store/migrate.py)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from sqlalchemy import create_engine, event, func, select
from sqlalchemy.engine import URL, Connection, CursorResult, Engine, Result, make_url
from sqlalchemy.exc import ArgumentError, InterfaceError, NoSuchModuleError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from grader.errors import ConfigError, GraderError
from grader.store import migrate

DEFAULT_URL = "sqlite:///grader.sqlite3"  # as in grader.config
CONNECT_TIMEOUT_S = 5  # PostgreSQL: an unreachable server is a startup error within seconds
SQLITE_BUSY_TIMEOUT_S = 30.0
_PG_CREATE_LOCK = 0x67726472  # advisory lock: two processes creating or upgrading the tables at once wait in turn


class StoreUnavailable(GraderError):
    """The database stopped answering (server down, SQLite locked past the busy timeout)."""


def first_line(e: BaseException | None) -> str:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE matched: Session.execute is typed to return a Result, but for an UPDATE
    or DELETE it is a CursorResult, which has `rowcount`."""
    return cast(CursorResult[Any], result).rowcount


def parse_url(url: str) -> URL:
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


def engine_for(url: URL) -> Engine:
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
            _write_ahead_log(cursor)
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # SQLite: a write transaction takes the write lock at once, so two processes never both
        # read "no such row" and then both write; reads begin with a plain BEGIN and take no lock.
        read_only = conn.get_execution_options().get("grader_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _write_ahead_log(cursor: Any) -> None:
    """Turns WAL on. Switching a database that is not in WAL yet (one an older release made) needs
    it unlocked, and SQLite answers "locked" at once, without its busy timeout, while another
    process holds a transaction on it (upgrading its schema, say): wait as the busy timeout would."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextlib.contextmanager
def foreign_keys_off(conn: Connection) -> Iterator[None]:
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


class Database:
    """The engine and sessions of one database, whose schema is this grader's once it is open.

    Every method of the store runs in a session and transaction of its own and returns detached
    objects (`expire_on_commit=False`), so one instance can be shared by threads, and each process
    (a forked Celery worker too) gets its own connections.
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        parsed = parse_url(url)
        self.url = parsed.render_as_string(hide_password=True)
        self.dialect = parsed.get_backend_name()
        try:
            self._engine = engine_for(parsed)
        except (ArgumentError, NoSuchModuleError, ImportError, TypeError, OSError) as e:
            raise ConfigError(f"cannot use database URL {self.url}: {first_line(e)}; "
                              "check GRADER_DATABASE_URL") from None
        self._pid = os.getpid()
        self._write = sessionmaker(self._engine, expire_on_commit=False)
        self._read = sessionmaker(self._engine.execution_options(grader_read_only=True), expire_on_commit=False)
        try:
            self._open()
        except BaseException:
            self._engine.dispose()
            raise

    def _open(self) -> None:
        """Makes or upgrades the schema, in one transaction (nothing half-migrated is ever seen)."""
        try:
            with self._engine.connect() as conn, foreign_keys_off(conn):
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(select(func.pg_advisory_xact_lock(_PG_CREATE_LOCK)))
                    migrate.upgrade(conn)
        except migrate.NewerSchema as e:
            raise ConfigError(f"the database at {self.url} has schema version {e.found}, newer than this grader's "
                              f"({migrate.SCHEMA_VERSION}): run the newer grader, or restore the backup taken "
                              "before upgrading") from None
        except (OperationalError, InterfaceError) as e:
            hint = "is PostgreSQL running and the database created?" if self.dialect == "postgresql" \
                else "is the directory writable?"
            raise ConfigError(f"cannot open the database at {self.url}: {first_line(e.orig or e)} "
                              f"({hint} check GRADER_DATABASE_URL)") from None
        except SQLAlchemyError as e:
            raise ConfigError(f"cannot set up the database at {self.url}: {first_line(e)}") from None

    def close(self) -> None:
        self._engine.dispose()

    def _forked(self) -> None:
        if os.getpid() != self._pid:  # forked (Celery prefork): never reuse the parent's sockets
            self._engine.dispose(close=False)
            self._pid = os.getpid()

    @contextlib.contextmanager
    def _session(self, *, write: bool = True) -> Iterator[Session]:
        self._forked()
        factory = self._write if write else self._read
        try:
            with factory() as session, session.begin():
                yield session
        except (OperationalError, InterfaceError) as e:
            raise StoreUnavailable(f"database {self.url} unavailable: {first_line(e.orig or e)}") from e
