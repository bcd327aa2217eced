"""The scoreboard: one entry per student and project, from the graded submissions in the store.

JSON schema `grader.scoreboard/1` (extend, don't break)::

    {
      "schema": "grader.scoreboard/1",
      "generated_at": "2026-03-01T12:00:00+00:00",   # ISO 8601, UTC
      "deadline": "2026-02-28T21:00:00+00:00" | null, # the deadline `late` was judged by, if given
      "entries": [                                   # sorted by project, then student
        {
          "student": "ivanov-docker",                # by GRADER_STUDENT_RULE, whoever pushed (grader/intake.py)
          "project": "devops-2026/ivanov-docker",
          "latest_score": 4.5,                       # of the latest graded push
          "best_score": 5.0,                         # of all graded pushes
          "max_score": 5.0,                          # of the latest graded push
          "on_time_score": 5.0 | null,               # best of the pushes before the deadline
          "sha": "…40 hex…",                         # of the latest graded push
          "graded_at": "2026-03-01T11:58:02+00:00",  # when that push was graded
          "pushed_at": "2026-03-01T11:40:00+00:00",  # when it was pushed (GitLab's push events) ...
          "pushed_at_source": "push_event",          # ... or "received": when it arrived (GitLab could not say)
          "late": false,                             # the latest graded push came after the student's deadline
          "extension_until": "2026-03-08T21:00:00+00:00" | null,  # the student's extended deadline
          "final_score": 5.0 | null,                 # best graded push after the late policy (grader/deadlines.py)
          "final_reason": "5/5 (1a2b3c4d) on time",  # which push, and what the policy did to it
          "report_url": "https://…/reports/…" | null,  # its report page (null without a base URL)
          "variants": {"multistage": 1.5, "nonroot": 1.5, "single": 1.5},  # latest push, per variant
          "attempts": 3,                             # graded pushes
          "name": "Иванов Иван" | null,              # from the roster (GRADER_ROSTER_FILE), when listed
          "email": "ivanov@example.edu" | null,
          "student_id": "2026-0042" | null
        }
      ]
    }

Only graded submissions count (not queued, running, ungradable, superseded or skipped ones);
"latest" means the last pushed (by push time, else arrival), so neither a regrade nor an older
commit delivered late reorders pushes. Lateness is judged by push time against the student's
deadline: their extension (file or `grader extend`), else the course's.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from grader.assignment import LatePolicy
from grader.deadlines import Attempt, Extensions, deadline_for, final_score
from grader.intake import Roster
from grader.store import GradedSummary, Store

SCHEMA = "grader.scoreboard/1"
CSV_FIELDS = ["project", "student", "latest_score", "best_score", "max_score", "on_time_score", "late", "sha",
              "graded_at", "report_url", "attempts", "name", "email", "student_id",
              "pushed_at", "pushed_at_source", "final_score", "final_reason", "extension_until"]


def scoreboard(store: Store, deadline: datetime | None = None, report_base_url: str | None = None,
               roster: Roster | None = None, extensions: Extensions | None = None,
               late_policy: LatePolicy | None = None) -> dict:
    """`deadline`: judge lateness by it (the course's; an extension replaces it for its student)
    instead of each push's `late` flag. `report_base_url`: where the report pages are served
    (GRADER_REPORT_BASE_URL). `roster`: adds each student's name, e-mail and student id (null when
    the project is not in it). `extensions`: per-student deadlines. `late_policy`: the assignment's,
    for `final_score` (default: none, a late push counts as graded)."""
    if deadline is not None and deadline.tzinfo is None:
        raise ValueError("deadline must be an aware datetime")
    policy = late_policy or LatePolicy()
    # One row per project (a project is one student's): whoever pushed, and whatever the student
    # rule said when older pushes were recorded, the latest push names the student.
    groups: dict[int, list[GradedSummary]] = {}
    for row in store.graded_summaries():
        groups.setdefault(row.project_id, []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda r: (r.push_time, r.id))  # in push order
    latest = {key: rows[-1] for key, rows in groups.items()}
    reports = store.reports(r.id for r in latest.values())

    entries = []
    for key, rows in groups.items():
        last = latest[key]
        extension = extensions.find(last.project_path, last.student) if extensions is not None else None
        due = deadline_for(deadline, extension)

        def is_late(r: GradedSummary, due: datetime | None = due) -> bool:
            return r.push_time > due if due is not None else r.late

        on_time = [r.score for r in rows if not is_late(r)]
        final = final_score((Attempt(r.sha, r.score, r.max_score, r.push_time) for r in rows), due, policy,
                            extension)
        report = reports.get(last.id) or {}
        known = roster.by_project.get(last.project_path.strip("/").lower()) if roster is not None else None
        entries.append({
            "student": last.student,
            "project": last.project_path,
            "latest_score": last.score,
            "best_score": max(r.score for r in rows),
            "max_score": last.max_score,
            "on_time_score": max(on_time) if on_time else None,
            "sha": last.sha,
            "graded_at": last.finished_at.isoformat() if last.finished_at else None,
            "late": is_late(last),
            "report_url": f"{report_base_url.rstrip('/')}/reports/{last.token}"
            if report_base_url and last.token else None,
            "variants": {v["name"]: v.get("score") for v in report.get("variants", [])},
            "attempts": len(rows),
            "name": known.name if known else None,
            "email": known.email if known else None,
            "student_id": known.student_id if known else None,
            "pushed_at": last.push_time.isoformat(),
            "pushed_at_source": last.pushed_at_source or "received",
            "final_score": final.score if final is not None else None,
            "final_reason": final.reason if final is not None else None,
            "extension_until": extension.until.astimezone(UTC).isoformat() if extension is not None else None,
        })
    entries.sort(key=lambda e: (e["project"], e["student"]))
    return {
        "schema": SCHEMA,
        "generated_at": datetime.now(UTC).isoformat(),
        "deadline": deadline.astimezone(UTC).isoformat() if deadline is not None else None,
        "entries": entries,
    }


def to_csv(board: dict) -> str:
    """A header row, then one row per entry in (project, student) order; one column per variant
    (named after it, sorted by name). Empty cells for missing values; scores as `4.5`, `5`."""
    variants = sorted({name for e in board["entries"] for name in e["variants"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS + variants)
    for e in sorted(board["entries"], key=lambda e: (e["project"], e["student"])):
        writer.writerow([_cell(e[f]) for f in CSV_FIELDS] + [_cell(e["variants"].get(v)) for v in variants])
    return out.getvalue()


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return f"{value:g}"
    return str(value)
