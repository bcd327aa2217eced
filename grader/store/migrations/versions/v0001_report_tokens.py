"""Version 0 → 1: report tokens for existing submissions (their old links stop working).

The first release's database has `submissions` and `pending_posts`, no `grader_schema` and no
report tokens; every revision starts from one, or from a later version stamped as such."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

from grader.store.migrations.helpers import columns_of, set_legacy_version

revision = "0001"
down_revision = None


def upgrade() -> None:
    if "token" not in columns_of("submissions"):
        op.add_column("submissions", sa.Column("token", sa.String(32)))
        conn = op.get_bind()
        for id in conn.execute(sa.text("SELECT id FROM submissions")).scalars().all():
            conn.execute(sa.text("UPDATE submissions SET token = :token WHERE id = :id"),
                         {"token": secrets.token_urlsafe(16), "id": id})
        op.create_index("ix_submissions_token", "submissions", ["token"], unique=True)
    set_legacy_version(1)


def downgrade() -> None:
    raise NotImplementedError("no way down: restore the backup taken before upgrading")
