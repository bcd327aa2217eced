"""Version 2 → 3: the table `submission_dockerfiles`. Submissions graded before have none stored
(their files were never kept): similarity leaves them out until they are regraded
(`grader regrade`), which stores them."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from grader.store.migrations.helpers import has_table, set_legacy_version

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    if not has_table("submission_dockerfiles"):
        op.create_table("submission_dockerfiles",
                        sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id", ondelete="CASCADE"),
                                  nullable=False),
                        sa.Column("variant", sa.String(32), nullable=False),
                        sa.Column("path", sa.String(1024), nullable=False),
                        sa.Column("text", sa.Text, nullable=False),
                        sa.Column("digest", sa.String(64), nullable=False),
                        sa.Column("fingerprint", sa.JSON),
                        sa.UniqueConstraint("submission_id", "variant", name="uq_submission_dockerfiles_variant"))
        op.create_index("ix_submission_dockerfiles_digest", "submission_dockerfiles", ["digest"])
    set_legacy_version(3)


def downgrade() -> None:
    raise NotImplementedError("no way down: restore the backup taken before upgrading")
