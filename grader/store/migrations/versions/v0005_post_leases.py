"""Version 4 → 5: `pending_posts.leased_at`, when a delivery last claimed the post. A post claimed
before may have reached GitLab although its delivery was never recorded (the worker died, or the
database went away between GitLab's answer and the update): its retry asks GitLab first what the
commit shows. Posts from before start unclaimed."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from grader.store.migrations.helpers import columns_of, set_legacy_version

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    if "leased_at" not in columns_of("pending_posts"):
        op.add_column("pending_posts", sa.Column("leased_at", sa.DateTime(timezone=True)))
    set_legacy_version(5)


def downgrade() -> None:
    raise NotImplementedError("no way down: restore the backup taken before upgrading")
