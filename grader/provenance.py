"""When a commit was pushed, and whether a newer state of its branch is already recorded: what the
worker asks GitLab before a first grading (the webhook answers at once and never waits on GitLab).

Push time comes from the project's push events (`GET /projects/:id/events?action=pushed`: when
GitLab took each push, `push_data.commit_to` its new head), so grading after the deadline — a long
queue, an outage caught up with `grade-group` — never makes an on-time push late. When GitLab has
no event for the commit (events older than it keeps, or none readable), the arrival time stands,
and the submission says so (`pushed_at_source`: `push_event` | `received`).

Which of two commits of a branch is newer: GitLab's `before` of a push names the head it replaced
(proof, whatever order the deliveries came in); else the push events' times when GitLab recorded
both; else ancestry (`repository/merge_base`: an ancestor is an older state); else nobody knows.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from grader.gitlab import GitLab, PushEvent
from grader.store import Submission


def push_times(events: Iterable[PushEvent], branch: str) -> dict[str, datetime]:
    """Each commit that became `branch`'s head → when it was first pushed there (the earliest event:
    a commit pushed on time, moved away from and pushed back, was on time)."""
    times: dict[str, datetime] = {}
    for e in events:
        if e.ref == branch and e.commit_to and (e.commit_to not in times or e.created_at < times[e.commit_to]):
            times[e.commit_to] = e.created_at
    return times


def branch_of(sub: Submission) -> str:
    return sub.ref.removeprefix("refs/heads/")


def is_newer(gitlab: GitLab, sub: Submission, other: Submission, times: dict[str, datetime]) -> bool | None:
    """Whether `other` holds a newer state of the branch than `sub` (None: cannot tell)."""
    if other.before_sha == sub.sha:  # other was pushed on top of sub
        return True
    if sub.before_sha == other.sha:  # sub was pushed on top of other
        return False
    mine, theirs = times.get(sub.sha), times.get(other.sha)
    if mine is not None and theirs is not None and mine != theirs:
        return theirs > mine
    base = gitlab.merge_base(sub.project_id, sub.sha, other.sha)
    if base == sub.sha:
        return True  # sub is an ancestor of other: an older state of the same work
    if base == other.sha:
        return False
    return None
