"""${message}"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from grader.store.migrations.helpers import set_legacy_version

revision = "${up_revision}"
down_revision = "${down_revision}"


def upgrade() -> None:
    ${upgrades if upgrades else "# what this version changes; look before adding (helpers.has_table, columns_of)"}
    set_legacy_version(int(revision))


def downgrade() -> None:
    raise NotImplementedError("no way down: restore the backup taken before upgrading")
