"""The schema's version, and bringing a database to this grader's (Alembic, run from the store's start).

Revisions live in `migrations/versions/`, numbered: revision "000N" makes schema version N. A new
database is made from the ORM tables (`create_all`) and stamped with the head; an older one is
upgraded in place, in the transaction the caller holds (its lock too, so two processes starting at
once upgrade once). Databases made before Alembic numbered their schema in `grader_schema` only:
one at version N is stamped "000N" and upgraded from there; one with no number at all (the first
release) is upgraded from the first revision. A database whose revision this grader does not know,
or whose `grader_schema` says a higher version, was written by a newer grader: `NewerSchema`.

Alembic is imported only when there is something to do: a database at the head is checked with
one SELECT, and most starts find it so.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import insert, inspect, select, text, update
from sqlalchemy.engine import Connection

from grader.store.schema import Base, SchemaInfo

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
SCHEMA_VERSION = 5  # the head revision's number: a new revision raises it (a test holds the two together)


def revision_of(version: int) -> str:
    return f"{version:04d}"


HEAD = revision_of(SCHEMA_VERSION)


class NewerSchema(Exception):
    """The database was written by a newer grader; `found` is its version or unknown revision."""

    def __init__(self, found: int | str) -> None:
        super().__init__(f"schema version {found}")
        self.found = found


def upgrade(conn: Connection) -> None:
    """Brings the database to the head revision, in the caller's transaction."""
    tables = set(inspect(conn).get_table_names())
    legacy = conn.execute(select(SchemaInfo.version).where(SchemaInfo.id == 1)).scalar() \
        if SchemaInfo.__tablename__ in tables else None
    if legacy is not None and legacy > SCHEMA_VERSION:
        raise NewerSchema(legacy)
    heads = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars()) \
        if "alembic_version" in tables else []
    if heads == [HEAD]:
        return
    if not heads and "submissions" not in tables:
        Base.metadata.create_all(conn)
        if legacy is None:
            conn.execute(insert(SchemaInfo).values(id=1, version=SCHEMA_VERSION))
        else:
            conn.execute(update(SchemaInfo).where(SchemaInfo.id == 1).values(version=SCHEMA_VERSION))
        _stamp(conn, HEAD)
        return
    unknown = [h for h in heads if h not in _revisions()]
    if unknown:
        raise NewerSchema(unknown[0])
    if not heads and legacy is not None:
        _stamp(conn, revision_of(legacy))
    _upgrade_to_head(conn)


@functools.cache
def scripts() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


@functools.cache
def _revisions() -> frozenset[str]:
    return frozenset(s.revision for s in scripts().walk_revisions())


def _stamp(conn: Connection, revision: str) -> None:
    from alembic.runtime.migration import MigrationContext

    MigrationContext.configure(conn).stamp(scripts(), revision)


def _upgrade_to_head(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))  # an ini value: % interpolates
    config.attributes["connection"] = conn  # env.py runs the revisions on it, in its transaction
    command.upgrade(config, "head")
