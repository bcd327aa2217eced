"""Fixtures for the results store: every store test runs on a SQLite file and on PostgreSQL.

PostgreSQL: one database `grader_test_<random>` per test run (created through the `test`
database, dropped at the end), one schema per test inside it. Nothing else on the server is
touched. Without a reachable server the PostgreSQL cases fail: PostgreSQL is part of this
project's test environment (.ci/run starts it), and a skip would hide untested code.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from grader.store import Store, Submission


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/grader.db"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    yield s
    s.close()


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
_counter = itertools.count(1)


def new_sha() -> str:
    return secrets.token_hex(20)


@pytest.fixture
def push(store: Store) -> Callable[..., Submission]:
    """Records a push (a new one unless told otherwise); the submission."""

    def _push(*, project_id: int = 1, project_path: str | None = None, student: str = "ivanov",
              sha: str | None = None, ref: str = "refs/heads/main", event_uuid: str | None = None,
              received_at: datetime | None = None, late: bool = False) -> Submission:
        n = next(_counter)
        sub, _created = store.record_push(
            project_id=project_id, project_path=project_path or f"devops-2026/project-{project_id}",
            student=student, sha=sha or new_sha(), ref=ref, event_uuid=event_uuid,
            received_at=received_at or T0 + timedelta(minutes=n), late=late)
        return sub

    return _push


def make_report(score: float, max_score: float = 5.0, variants: dict[str, float] | None = None) -> dict:
    variants = {"single": score / 3, "multistage": score / 3, "nonroot": score / 3} if variants is None else variants
    return {"schema": "grader.report/1", "score": score, "max_score": max_score,
            "variants": [{"name": name, "score": s, "max_score": 1.5} for name, s in variants.items()],
            "checks": [], "notes": []}


@pytest.fixture
def graded(store: Store, push) -> Callable[..., Submission]:
    """Records a push and grades it with `score` (and per-variant scores)."""

    def _graded(score: float, *, variants: dict[str, float] | None = None, max_score: float = 5.0,
                **push_args) -> Submission:
        sub = push(**push_args)
        assert store.start(sub.id)
        assert store.finish(sub.id, make_report(score, max_score, variants), "0.1.0")
        return store.get(sub.id)

    return _graded
