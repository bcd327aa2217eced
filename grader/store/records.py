"""What the store hands out besides ORM rows: small frozen records, detached from any session."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Dockerfile:
    """One stored Dockerfile of a submission (`id` None: not stored yet). `first_pushed`: the
    earliest push of this project that held this very text for this variant (compared_submissions)."""

    variant: str
    path: str
    text: str
    fingerprint: dict | None = None
    id: int | None = None
    first_pushed: datetime | None = None


@dataclass(frozen=True)
class ComparedSubmission:
    """A project's latest graded submission that has Dockerfiles stored, for similarity."""

    id: int
    project_id: int
    project_path: str
    student: str
    token: str | None
    push_time: datetime  # GitLab's push time, else the arrival
    dockerfiles: tuple[Dockerfile, ...]


@dataclass(frozen=True)
class GradedSummary:
    """A graded submission without its report (the scoreboard reads many of these)."""

    id: int
    project_id: int
    project_path: str
    student: str
    sha: str
    received_at: datetime
    finished_at: datetime | None
    late: bool
    score: float
    max_score: float
    token: str | None = None
    pushed_at: datetime | None = None  # None: not resolved (judged by received_at)
    pushed_at_source: str | None = None
    ref: str = "refs/heads/main"
    merge_request_iid: int | None = None

    @property
    def push_time(self) -> datetime:
        """When it was pushed, as well as is known: GitLab's push time, else the arrival."""
        return self.pushed_at or self.received_at


@dataclass(frozen=True)
class SubmissionEvent:
    """One entry of a submission's history (schema.SubmissionEventRow). `actor` None: the system."""

    id: int
    submission_id: int
    at: datetime
    kind: str
    actor: str | None = None
    reason: str | None = None
    detail: dict | None = None
