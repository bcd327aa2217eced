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
          "late": false,                             # the latest graded push came after the deadline
          "report_url": "https://…/reports/…" | null,  # its report page (null without a base URL)
          "variants": {"multistage": 1.5, "nonroot": 1.5, "single": 1.5},  # latest push, per variant
          "attempts": 3,                             # graded pushes
          "name": "Иванов Иван" | null,              # from the roster (GRADER_ROSTER_FILE), when listed
          "email": "ivanov@example.edu" | null,
          "student_id": "2026-0042" | null
        }
      ]
    }

Only graded submissions count (not queued, running, ungradable or superseded ones); "latest"
means the last pushed (received), so a regrade does not reorder pushes.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from grader.intake import Roster
from grader.store import GradedSummary, Store

SCHEMA = "grader.scoreboard/1"
CSV_FIELDS = ["project", "student", "latest_score", "best_score", "max_score", "on_time_score", "late", "sha",
              "graded_at", "report_url", "attempts", "name", "email", "student_id"]


def scoreboard(store: Store, deadline: datetime | None = None, report_base_url: str | None = None,
               roster: Roster | None = None) -> dict:
    """`deadline`: judge lateness by it (e.g. an extended deadline) instead of each push's `late` flag.
    `report_base_url`: where the report pages are served (GRADER_REPORT_BASE_URL).
    `roster`: adds each student's name, e-mail and student id (null when the project is not in it)."""
    if deadline is not None and deadline.tzinfo is None:
        raise ValueError("deadline must be an aware datetime")
    # One row per project (a project is one student's): whoever pushed, and whatever the student
    # rule said when older pushes were recorded, the latest push names the student.
    groups: dict[int, list[GradedSummary]] = {}
    for row in store.graded_summaries():  # in push order
        groups.setdefault(row.project_id, []).append(row)
    latest = {key: rows[-1] for key, rows in groups.items()}
    reports = store.reports(r.id for r in latest.values())

    def is_late(r: GradedSummary) -> bool:
        return r.received_at > deadline if deadline is not None else r.late

    entries = []
    for key, rows in groups.items():
        last = latest[key]
        on_time = [r.score for r in rows if not is_late(r)]
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
