"""Deadline extensions granted with `grader extend` (the extensions file's entries are not here)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from grader.store.database import Database, rowcount
from grader.store.schema import Extension, utcnow


def _key(who: str) -> str:
    """A project path is kept in lower case without slashes around it; a student's name as given."""
    return who.strip().strip("/").lower() if "/" in who else who.strip()


class Extensions(Database):
    def set_extension(self, key: str, until: datetime, reason: str | None = None) -> None:
        """Grants (or changes) an extension for a student or a project path."""
        if until.tzinfo is None:
            raise ValueError("until must be an aware datetime")
        key = _key(key)
        with self._session() as s:
            found = s.scalars(select(Extension).where(Extension.key == key)).first()
            if found is None:
                s.add(Extension(key=key, until=until, reason=reason, created_at=utcnow()))
            else:
                found.until, found.reason = until, reason

    def remove_extension(self, key: str) -> bool:
        key = _key(key)
        with self._session() as s:
            return rowcount(s.execute(delete(Extension).where(Extension.key == key))) == 1

    def extensions(self) -> dict[str, tuple[datetime, str | None]]:
        """Every extension granted with `grader extend`: key → (until, reason)."""
        with self._session(write=False) as s:
            return {e.key: (e.until, e.reason) for e in s.scalars(select(Extension).order_by(Extension.key))}
