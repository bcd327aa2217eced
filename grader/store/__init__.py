"""The results store: submissions, their history and the durable outbox of GitLab posts (SQLAlchemy 2).

SQLite file by default, PostgreSQL via URL (`postgresql://…` is read as psycopg 3). Every `Store`
method runs in a session and transaction of its own and returns detached objects, so one `Store`
can be shared by threads, and each process (a forked Celery worker too) gets its own connections.

One `Store`, one concern per module:

    schema.py       the tables and their vocabulary (State, kinds); records.py: the frozen records handed out
    database.py     URL, engine, sessions; SQLite in WAL mode, write transactions `BEGIN IMMEDIATE`
    migrate.py      the schema's version: new databases made at the head, older ones upgraded on
                    opening (Alembic, migrations/versions/), newer ones refused
    pushes.py       recording pushes (INSERT … ON CONFLICT, group commit)
    submissions.py  a submission's state changes (queued → running → graded, regrades, superseding)
    queries.py      what the scoreboard, regrades, the reconciler and `grader status` read
    outbox.py       GitLab posts kept until delivered
    extensions.py   deadline extensions
    dockerfiles.py  the Dockerfiles kept with each verdict, for similarity
    events.py       each submission's history (who regraded it, why, the score before)
"""

from __future__ import annotations

from grader.store.database import CONNECT_TIMEOUT_S, DEFAULT_URL, SQLITE_BUSY_TIMEOUT_S, StoreUnavailable
from grader.store.dockerfiles import Dockerfiles
from grader.store.events import Events
from grader.store.extensions import Extensions
from grader.store.migrate import SCHEMA_VERSION
from grader.store.outbox import Outbox
from grader.store.pushes import Pushes, new_report_token
from grader.store.queries import Queries
from grader.store.records import ComparedSubmission, Dockerfile, GradedSummary, SubmissionEvent
from grader.store.schema import (
    ACTIVE,
    EVENT_KINDS,
    ORIGINS,
    POST_KINDS,
    PUSH_TIME_SOURCES,
    Base,
    Extension,
    PendingPost,
    SchemaInfo,
    State,
    Submission,
    SubmissionDockerfile,
    SubmissionEventRow,
    UTCDateTime,
    utcnow,
)
from grader.store.submissions import Submissions


class Store(Pushes, Submissions, Queries, Outbox, Extensions, Dockerfiles, Events):
    """One database: `Store(url)` opens it, making or upgrading its schema first."""


__all__ = [
    "ACTIVE", "CONNECT_TIMEOUT_S", "DEFAULT_URL", "EVENT_KINDS", "ORIGINS", "POST_KINDS", "PUSH_TIME_SOURCES",
    "SCHEMA_VERSION", "SQLITE_BUSY_TIMEOUT_S", "Base", "ComparedSubmission", "Dockerfile", "Extension",
    "GradedSummary", "PendingPost", "SchemaInfo", "State", "Store", "StoreUnavailable", "Submission",
    "SubmissionDockerfile", "SubmissionEvent", "SubmissionEventRow", "UTCDateTime", "new_report_token", "utcnow",
]
