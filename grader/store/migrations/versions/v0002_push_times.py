"""Version 1 → 2: push time and its source, the push's `before`, where a submission came from and
its merge request (new columns), the state `skipped` (the state's CHECK constraint), and the table
`extensions`. Submissions graded before keep the arrival time as their push time, said so
(`received`); queued and running ones are resolved by their worker.

PostgreSQL alters the table in place. SQLite cannot change a CHECK constraint, so the table is
rebuilt the way SQLite documents (lang_altertable.html, "other kinds of table schema changes"): a
new table, the rows copied, the old one dropped, the new one renamed, the indexes made again. The
store turns foreign keys off for the upgrade's transaction, so dropping the old table does not
cascade to the outbox, whose rows keep pointing at `submissions`.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from grader.errors import GraderError
from grader.store.migrations.helpers import columns_of, has_table, set_legacy_version

revision = "0002"
down_revision = "0001"

_STATES = "state IN ('queued', 'running', 'graded', 'ungradable', 'superseded', 'skipped')"
_ACTIVE = "state IN ('queued', 'running', 'graded')"
_NEW_COLUMNS = (("pushed_at", sa.DateTime(timezone=True)), ("pushed_at_source", sa.String(16)),
                ("before_sha", sa.String(40)), ("origin", sa.String(16)), ("merge_request_iid", sa.Integer()))


def _submissions(name: str) -> sa.Table:
    """`submissions` as version 2 has it, frozen here: the ORM's table may have changed since."""
    return sa.Table(
        name, sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("project_path", sa.String(512), nullable=False),
        sa.Column("student", sa.String(255), nullable=False),
        sa.Column("sha", sa.String(40), nullable=False),
        sa.Column("ref", sa.String(255), nullable=False),
        sa.Column("event_uuid", sa.String(64), unique=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("late", sa.Boolean, nullable=False),
        sa.Column("score", sa.Double),
        sa.Column("max_score", sa.Double),
        sa.Column("report", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("grader_version", sa.String(64)),
        sa.Column("image_digests", sa.JSON),
        sa.Column("token", sa.String(32)),
        *(sa.Column(column, kind) for column, kind in _NEW_COLUMNS),
        sa.CheckConstraint(_STATES, name="ck_submissions_state"),
    )


def _indexes() -> None:
    op.create_index("ix_submissions_project_received", "submissions", ["project_id", "received_at"])
    op.create_index("ix_submissions_project_sha", "submissions", ["project_id", "sha"])
    op.create_index("ix_submissions_state", "submissions", ["state"])
    op.create_index("ix_submissions_token", "submissions", ["token"], unique=True)
    op.create_index("uq_submissions_active_sha", "submissions", ["project_id", "sha"], unique=True,
                    sqlite_where=sa.text(_ACTIVE))


def _rebuild_on_sqlite(existing: set[str]) -> None:
    conn = op.get_bind()
    new = _submissions("submissions_v2")
    new.create(conn)
    kept = ", ".join(c.name for c in new.columns if c.name in existing)
    conn.exec_driver_sql(f"INSERT INTO submissions_v2 ({kept}) SELECT {kept} FROM submissions")
    op.drop_table("submissions")
    op.rename_table("submissions_v2", "submissions")
    _indexes()
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        raise GraderError(f"migrating the database to schema version 2 broke foreign keys: {broken[:3]}")


def upgrade() -> None:
    existing = columns_of("submissions")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_on_sqlite(existing)
    else:
        for column, kind in _NEW_COLUMNS:
            if column not in existing:
                op.add_column("submissions", sa.Column(column, kind))
        op.execute("ALTER TABLE submissions DROP CONSTRAINT IF EXISTS ck_submissions_state")
        op.create_check_constraint("ck_submissions_state", "submissions", sa.text(_STATES))
    op.execute("UPDATE submissions SET pushed_at = received_at, pushed_at_source = 'received' "
               "WHERE pushed_at IS NULL AND state NOT IN ('queued', 'running')")
    if not has_table("extensions"):
        op.create_table("extensions",
                        sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("key", sa.String(512), nullable=False, unique=True),
                        sa.Column("until", sa.DateTime(timezone=True), nullable=False),
                        sa.Column("reason", sa.Text),
                        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False))
    set_legacy_version(2)


def downgrade() -> None:
    raise NotImplementedError("no way down: restore the backup taken before upgrading")
