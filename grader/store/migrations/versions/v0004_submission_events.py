"""Version 3 → 4: the table `submission_events`, each submission's history (who regraded it and
why, what its score was before). Submissions from before start with an empty history."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from grader.store.migrations.helpers import has_table, set_legacy_version

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    if not has_table("submission_events"):
        op.create_table("submission_events",
                        sa.Column("id", sa.Integer, primary_key=True),
                        sa.Column("submission_id", sa.Integer, sa.ForeignKey("submissions.id", ondelete="CASCADE"),
                                  nullable=False),
                        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
                        sa.Column("kind", sa.String(32), nullable=False),
                        sa.Column("actor", sa.String(255)),
                        sa.Column("reason", sa.Text),
                        sa.Column("detail", sa.JSON))
        op.create_index("ix_submission_events_submission", "submission_events", ["submission_id", "id"])
    set_legacy_version(4)


def downgrade() -> None:
    raise NotImplementedError("no way down: restore the backup taken before upgrading")
