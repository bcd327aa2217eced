"""What the grader's GitLab door (grader/gitlab.py) hands back: plain values, no python-gitlab
objects, so that callers and tests need no GitLab session to hold one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PushEvent:
    """One push to a branch, as GitLab's Events API records it (`push_data`): when GitLab took it,
    whatever clock the student's commits carry."""

    created_at: datetime
    ref: str  # the branch name, e.g. "main"
    commit_from: str | None  # the branch's previous head (None: the branch was created)
    commit_to: str | None  # its new head (None: the branch was removed)
    action: str  # "pushed" | "created" | "removed"


@dataclass(frozen=True)
class TokenInfo:
    """Who the grader's token acts as, and its scopes (None: GitLab would not say)."""

    user_id: int
    username: str
    scopes: tuple[str, ...] | None


ROLES = {10: "Guest", 15: "Planner", 20: "Reporter", 30: "Developer", 40: "Maintainer", 50: "Owner"}


@dataclass(frozen=True)
class ProjectRef:
    id: int
    path_with_namespace: str
    default_branch: str | None  # None for a project with an empty repository
    web_url: str | None = None
