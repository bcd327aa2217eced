"""The durable outbox of GitLab posts: commit statuses and comments kept until delivered, so
that GitLab being down loses nothing. Delivery (grader/service.py) leases the due posts and
settles each as delivered, failed (tried again later) or abandoned (refused for good)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import aliased

from grader.store.database import Database, rowcount
from grader.store.schema import POST_KINDS, PendingPost, utcnow


class Outbox(Database):
    def add_post(self, submission_id: int, kind: str, payload: dict) -> PendingPost:
        if kind not in POST_KINDS:
            raise ValueError(f"kind must be one of {POST_KINDS}, not {kind!r}")
        now = utcnow()
        with self._session() as s:
            post = PendingPost(submission_id=submission_id, kind=kind, payload=payload, attempts=0,
                               next_attempt_at=now, created_at=now)
            s.add(post)
            s.flush()
        return post

    def due_posts(self, now: datetime, limit: int = 50, *, lease: timedelta | None = None) -> list[PendingPost]:
        """Undelivered posts whose time has come, earliest first.

        Posts of one submission and kind go out in the order they were added: a post is not due
        while an earlier one of the same submission and kind is undelivered (a retried `pending`
        status can never land after `success`).

        `lease`: claim the returned posts — their next attempt moves to now + lease in the same
        transaction, so a concurrent caller does not get them; `post_delivered`/`post_failed`
        settle them, and a caller that dies leaves them due again after the lease. The returned
        posts show their row as it was before this claim: `leased_at` None means never tried.
        """
        earlier = aliased(PendingPost)
        blocked = exists().where(earlier.submission_id == PendingPost.submission_id, earlier.kind == PendingPost.kind,
                                 earlier.id < PendingPost.id, earlier.delivered_at.is_(None),
                                 earlier.abandoned_at.is_(None))
        q = (select(PendingPost)
             .where(PendingPost.delivered_at.is_(None), PendingPost.abandoned_at.is_(None),
                    PendingPost.next_attempt_at <= now, ~blocked)
             .order_by(PendingPost.next_attempt_at, PendingPost.id).limit(limit))
        if lease is None:
            with self._session(write=False) as s:
                return list(s.scalars(q))
        if self.dialect == "postgresql":
            q = q.with_for_update(skip_locked=True, of=PendingPost)
        with self._session() as s:
            posts = list(s.scalars(q))
            if posts:
                s.execute(update(PendingPost).where(PendingPost.id.in_([p.id for p in posts]))
                          .values(next_attempt_at=now + lease, leased_at=now)
                          .execution_options(synchronize_session=False))
        return posts

    def renew_lease(self, id: int, claimed_at: datetime, lease: timedelta) -> bool:
        """Extends the claim made at `claimed_at` (a `due_posts` call's `now`) just before the post
        is sent. False when that claim lapsed meanwhile and another caller claimed the post (or it
        was settled): the caller must then leave it alone, or a slow batch would send again, and
        out of order, what the other caller already delivered."""
        with self._session() as s:
            result = s.execute(update(PendingPost)
                               .where(PendingPost.id == id, PendingPost.leased_at == claimed_at,
                                      PendingPost.delivered_at.is_(None), PendingPost.abandoned_at.is_(None))
                               .values(next_attempt_at=utcnow() + lease)
                               .execution_options(synchronize_session=False))
            return rowcount(result) == 1

    def post_delivered(self, id: int) -> bool:
        with self._session() as s:
            result = s.execute(update(PendingPost).where(PendingPost.id == id, PendingPost.delivered_at.is_(None))
                               .values(delivered_at=utcnow(), last_error=None))
            return rowcount(result) == 1

    def post_failed(self, id: int, error: str, next_attempt_at: datetime) -> None:
        with self._session() as s:
            s.execute(update(PendingPost).where(PendingPost.id == id, PendingPost.delivered_at.is_(None))
                      .values(attempts=PendingPost.attempts + 1, last_error=error, next_attempt_at=next_attempt_at))

    def post_abandoned(self, id: int, error: str) -> None:
        """Gives a post up for good (GitLab refused it for a reason retrying cannot fix)."""
        with self._session() as s:
            s.execute(update(PendingPost).where(PendingPost.id == id, PendingPost.delivered_at.is_(None))
                      .values(attempts=PendingPost.attempts + 1, last_error=error, abandoned_at=utcnow()))

    def get_post(self, id: int) -> PendingPost | None:
        with self._session(write=False) as s:
            return s.get(PendingPost, id)

    def abandoned_posts(self, limit: int = 10) -> list[PendingPost]:
        """Posts GitLab refused for good, newest first, with why (for `grader status`)."""
        with self._session(write=False) as s:
            return list(s.scalars(select(PendingPost).where(PendingPost.abandoned_at.is_not(None))
                                  .order_by(PendingPost.abandoned_at.desc()).limit(limit)))

    def undelivered_count(self) -> int:
        with self._session(write=False) as s:
            return s.scalar(select(func.count()).select_from(PendingPost)
                            .where(PendingPost.delivered_at.is_(None), PendingPost.abandoned_at.is_(None))) or 0
