"""What the pages read besides one report: a project's or a student's attempts in push order, and
the scoreboard with its charts (score distribution, share of students failing each check).

`attempts` reads the submissions table directly (a page's own projection of it); `changes` reads
the submissions' history (grader/store/events.py): regrades and extensions, who and why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from grader.config import Settings
from grader.messages import number, text, title
from grader.store import Store, Submission

# Scoreboard columns the page can sort by; numbers sort highest first on the first click.
COLUMNS = ("student", "project", "latest_score", "best_score", "on_time_score", "late", "attempts", "graded_at")
NUMERIC = {"latest_score", "best_score", "on_time_score", "attempts"}


@dataclass(frozen=True)
class Attempt:
    id: int
    project_id: int
    project_path: str
    student: str
    sha: str
    ref: str
    state: str
    token: str | None
    score: float | None
    max_score: float | None
    late: bool
    received_at: datetime
    finished_at: datetime | None
    error: str | None


_FIELDS = (Submission.id, Submission.project_id, Submission.project_path, Submission.student, Submission.sha,
           Submission.ref, Submission.state, Submission.token, Submission.score, Submission.max_score,
           Submission.late, Submission.received_at, Submission.finished_at, Submission.error)


def attempts(store: Store, *, project_id: int | None = None, student: str | None = None) -> list[Attempt]:
    """Every submission of a project or of a student, in push order (reports not loaded)."""
    q = select(*_FIELDS).order_by(Submission.received_at, Submission.id)
    if project_id is not None:
        q = q.where(Submission.project_id == project_id)
    if student is not None:
        q = q.where(Submission.student == student)
    with store._session(write=False) as s:  # see the module's docstring
        return [Attempt(**row._asdict()) for row in s.execute(q).all()]  # the labels are Attempt's fields


CHANGES = ("regrade_requested", "regraded", "extension")  # what changed a grade after it was given


def changes(store: Store, rows: Sequence[Attempt]) -> list[dict[str, Any]]:
    """Every change made to the student's grades after they were given — regrades (who asked, why,
    old -> new score, whether the assignment file had changed) and extensions — newest first."""
    by_id = {a.id: a for a in rows}
    found = [(e, by_id[e.submission_id]) for a in rows for e in store.events(a.id) if e.kind in CHANGES]
    found.sort(key=lambda pair: pair[0].id, reverse=True)
    return [{"at": when(e.at), "kind": e.kind, "sha": a.sha, "token": a.token, "actor": e.actor or "",
             "reason": e.reason or "", "old": (e.detail or {}).get("old_score"),
             "new": (e.detail or {}).get("new_score"), "until": (e.detail or {}).get("until"),
             "assignment_changed": "assignment_before" in (e.detail or {})} for e, a in found]


def when(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at is not None else "—"


def row_view(a: Attempt | Submission) -> dict[str, Any]:
    return {"received": when(a.received_at), "finished": when(a.finished_at), "project_path": a.project_path,
            "branch": a.ref.removeprefix("refs/heads/"), "sha": a.sha, "token": a.token, "state": a.state,
            "score": a.score, "max_score": a.max_score, "late": a.late, "error": a.error or ""}


def board(settings: Settings, store: Store) -> dict:
    """The scoreboard as `grader scoreboard` prints it and the page shows it (grader/scoreboard.py):
    with the roster, every extension in force (the file's and `grader extend`'s) and the
    assignment's late policy, so `final_score` is the one the course's rules give."""
    from grader import assignment as assignment_mod
    from grader.intake import Intake
    from grader.scoreboard import scoreboard

    intake = Intake(settings, store)
    policy = assignment_mod.load(settings.assignment_file).late_policy
    return scoreboard(store, settings.deadline, settings.report_base_url, intake.roster, intake.extensions(), policy)


def scoreboard_view(settings: Settings, store: Store, lang: str, sort: str, order: str) -> dict[str, Any]:
    b = board(settings, store)
    latest: dict[int, Any] = {}
    for summary in store.graded_summaries():  # push order: the last one per project is the latest
        latest[summary.project_id] = summary
    tokens = {s.project_path: s.token for s in latest.values()}
    reports = store.reports(s.id for s in latest.values())
    sort = sort if sort in COLUMNS else "project"
    order = order if order in ("asc", "desc") else default_order(sort)
    rows = [dict(e, token=tokens.get(e["project"]), graded=_when_iso(e["graded_at"])) for e in b["entries"]]
    present = [r for r in rows if r.get(sort) is not None]
    present.sort(key=lambda r: r[sort], reverse=order == "desc")
    rows = present + [r for r in rows if r.get(sort) is None]  # blanks last, whichever the order
    columns = [(key, text("pages", f"col_{key.removesuffix('_score').removesuffix('_at')}", lang)) for key in COLUMNS]
    return {"rows": rows, "columns": columns, "sort": sort, "order": order, "default_order": default_order,
            "deadline": _when_iso(b["deadline"]), "distribution": distribution(rows, lang),
            "failing": failing_shares(list(reports.values()), lang)}


def default_order(column: str) -> str:
    return "desc" if column in NUMERIC else "asc"


def distribution(rows: list[dict], lang: str) -> list[tuple[str, int, int]]:
    """(score, students, percent of the tallest bar) for each half point from 0 to the maximum."""
    top = max((r["max_score"] or 0 for r in rows), default=5.0) or 5.0
    steps = [i / 2 for i in range(int(top * 2) + 1)]
    counts = {s: 0 for s in steps}
    for r in rows:
        counts[min(steps, key=lambda s: abs(s - r["latest_score"]))] += 1
    tallest = max(counts.values(), default=0)
    return [(number(s, lang), n, round(100 * n / tallest) if tallest else 0) for s, n in counts.items()]


def failing_shares(reports: list[dict], lang: str) -> list[tuple[str, float, int]]:
    """(check title, share of the students whose latest report fails it, percent) for each check
    someone fails, most failed first. A check counts once per student, whichever variants fail it."""
    seen: dict[str, int] = {}
    failing: dict[str, int] = {}
    for report in reports:
        checks = [c for v in report.get("variants", []) for c in v.get("checks", [])] + report.get("checks", [])
        for check_id in {c["id"] for c in checks}:
            seen[check_id] = seen.get(check_id, 0) + 1
        for check_id in {c["id"] for c in checks if c["status"] == "fail"}:
            failing[check_id] = failing.get(check_id, 0) + 1
    shares = sorted(((failing[c] / seen[c], c) for c in failing), key=lambda x: (-x[0], x[1]))
    return [(title(c, lang), share, round(100 * share)) for share, c in shares]


def _when_iso(iso: str | None) -> str:
    return when(datetime.fromisoformat(iso)) if iso else ""
