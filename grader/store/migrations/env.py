"""Alembic's environment for the store's revisions.

The grader runs them itself as it opens a database (grader/store/migrate.py), on its own
connection and inside its transaction, handed over in `config.attributes["connection"]`. The
`alembic` command (a developer writing a revision: `alembic -c grader/store/migrations/alembic.ini
revision -m "..."`) connects to GRADER_DATABASE_URL instead, the way the grader does.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from grader.store.schema import Base


def _run(connection: Connection) -> None:
    # render_as_batch: `--autogenerate` writes SQLite-safe table rebuilds (SQLite alters little in place).
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():  # joins the caller's transaction when there is one
        context.run_migrations()


def _from_the_command_line() -> None:
    from grader.config import Settings
    from grader.store.database import engine_for, foreign_keys_off, parse_url

    engine = engine_for(parse_url(Settings().database_url))
    try:
        with engine.connect() as connection, foreign_keys_off(connection):
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: the revisions inspect the database they upgrade")
given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    _from_the_command_line()
