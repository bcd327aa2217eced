"""Intake: a push becomes a submission, the same way whichever door it came in by (the webhook,
`grader grade`, `grade-group`), with one rule for who the student is and one for lateness.

Lateness is judged against the student's deadline (GRADER_DEADLINE, or their extension: see
grader/deadlines.py) by the push time: GitLab's, when the caller knows it (grade-group reads the
push events), else the arrival time until the worker asks GitLab (grader/provenance.py).

Who the student is never depends on who pushed: a TA's fix pushed to ivanov's project is still
ivanov's submission. The rule is a setting (`GRADER_STUDENT_RULE`):
- `project` (default): the project's own name, the last segment of its path (`ivanov-docker`);
- `namespace`: the namespace it lives in, for personal forks or one subgroup per student
  (`ivanov/docker-hw`, `devops-2026/ivanov/hw` → `ivanov`);
- `roster`: the roster file (`GRADER_ROSTER_FILE`, CSV with the columns project, student, name,
  email, student_id) maps each project path to a student; a project missing from it falls back
  to `project` and is listed by `grader status` — never dropped.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from grader.config import Settings
from grader.deadlines import Extension, Extensions, deadline_for, is_late, load_file
from grader.digest import state_description
from grader.errors import ConfigError
from grader.store import Store, Submission, new_report_token

RULES = ("project", "namespace", "roster")
ROSTER_COLUMNS = ("project", "student", "name", "email", "student_id")


@dataclass(frozen=True)
class Student:
    id: str  # stable: the scoreboard's key and an LMS's join column
    name: str | None = None
    email: str | None = None
    student_id: str | None = None
    in_roster: bool = False


class Roster:
    """Projects → students, from a CSV file an instructor keeps (exported from the LMS)."""

    def __init__(self, by_project: dict[str, Student]) -> None:
        self.by_project = by_project

    @classmethod
    def load(cls, path: Path) -> Roster:
        try:
            with path.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                missing = [c for c in ("project", "student") if c not in (reader.fieldnames or [])]
                if missing:
                    raise ConfigError(f"roster {path}: missing column(s) {', '.join(missing)}; "
                                      f"expected {', '.join(ROSTER_COLUMNS)}")
                rows = list(reader)
        except OSError as exc:
            raise ConfigError(f"roster {path} cannot be read: {exc.strerror}") from exc
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ConfigError(f"roster {path} is not a UTF-8 CSV file: {exc}") from exc
        by_project: dict[str, Student] = {}
        for number, row in enumerate(rows, start=2):
            project, student = _norm_path(row.get("project") or ""), (row.get("student") or "").strip()
            if not project or not student:
                raise ConfigError(f"roster {path}, line {number}: project and student must not be empty")
            if project in by_project:
                raise ConfigError(f"roster {path}, line {number}: project {project} is listed twice")
            by_project[project] = Student(student, _blank(row.get("name")), _blank(row.get("email")),
                                          _blank(row.get("student_id")), in_roster=True)
        return cls(by_project)


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value is not None else None


def _norm_path(path: str) -> str:
    return path.strip().strip("/").lower()


def student_of(project_path: str, rule: str, roster: Roster | None) -> Student:
    """The student a project belongs to, by the configured rule."""
    parts = [p for p in project_path.split("/") if p]
    if rule == "roster" and roster is not None:
        found = roster.by_project.get(_norm_path(project_path))
        if found is not None:
            return found
    if rule == "namespace" and len(parts) >= 2:
        return Student(parts[-2])
    return Student(parts[-1] if parts else project_path)


@dataclass(frozen=True)
class Delivery:
    """What a delivery asks for, whichever door it came in by: a commit of a project to grade, or
    (`skipped` set) only to be told on its commit why it is not graded."""

    project_id: int
    project_path: str
    sha: str
    ref: str
    event_uuid: str | None = None
    before_sha: str | None = None
    origin: str = "push"
    merge_request_iid: int | None = None
    skipped: str | None = None


class Intake:
    """Records pushes as submissions; nothing here waits on Docker or GitLab."""

    def __init__(self, settings: Settings, store: Store, *, extensions_ttl_s: float = 0.0) -> None:
        """`extensions_ttl_s`: reuse the granted extensions read from the store for this long (the
        webhook: the lateness it records is provisional, the worker judges it again by the push time,
        so one read a second instead of one per push); 0 reads them every time."""
        if settings.student_rule not in RULES:
            raise ConfigError(f"GRADER_STUDENT_RULE={settings.student_rule!r}: use one of {', '.join(RULES)}")
        if settings.student_rule == "roster" and settings.roster_file is None:
            raise ConfigError("GRADER_STUDENT_RULE=roster needs GRADER_ROSTER_FILE (CSV: project,student,...)")
        self.settings = settings
        self.store = store
        self.roster = Roster.load(settings.roster_file) if settings.roster_file is not None else None
        # A broken extensions file stops the start (like the roster); granted ones are read per push.
        self.extension_file = load_file(settings.extensions_file, settings.deadline) \
            if settings.extensions_file is not None else {}
        self.extensions_ttl_s = extensions_ttl_s
        self._granted: tuple[float, dict[str, Extension]] | None = None

    def student(self, project_path: str) -> Student:
        return student_of(project_path, self.settings.student_rule, self.roster)

    def extensions(self) -> Extensions:
        """The extensions in force now: the file's, and those granted with `grader extend`."""
        cached = self._granted
        if cached is not None and time.monotonic() - cached[0] < self.extensions_ttl_s:
            granted = cached[1]
        else:
            granted = {key: Extension(until, reason, "cli") for key, (until, reason) in self.store.extensions().items()}
            if self.extensions_ttl_s > 0:
                self._granted = (time.monotonic(), granted)
        return Extensions({**self.extension_file, **granted})

    def deadline(self, project_path: str, student: str) -> tuple[datetime | None, Extension | None]:
        """The deadline this student's pushes are judged by, and their extension if they have one."""
        extension = self.extensions().find(project_path, student)
        return deadline_for(self.settings.deadline, extension), extension

    def record(self, *, project_id: int, project_path: str, sha: str, ref: str, event_uuid: str | None = None,
               received_at: datetime | None = None, pushed_at: datetime | None = None,
               pushed_at_source: str | None = None, before_sha: str | None = None, origin: str = "push",
               merge_request_iid: int | None = None, skipped: str | None = None,
               pending_language: str | None = None) -> tuple[Submission, bool]:
        """The submission for this push (created, or the one it repeats): (submission, created).
        `skipped`: the push is not graded, for this reason (recorded only for its commit to say so).
        `pending_language`: also record, in the same transaction, the commit's `pending` status in
        this language (the webhook: the student sees the push was received, and the worker's
        delivery sends it; one transaction per push instead of one per step)."""
        delivery = Delivery(project_id, project_path, sha, ref, event_uuid, before_sha, origin, merge_request_iid,
                            skipped)
        return self.store.record_push(**self._row(delivery, received_at or datetime.now(UTC), pushed_at,
                                                  pushed_at_source, pending_language))

    def record_many(self, deliveries: Sequence[Delivery], pending_language: str | None = None
                    ) -> list[tuple[Submission, bool] | Exception]:
        """Several deliveries that arrived together (the webhook's intake thread), in one
        transaction: for each, what `record` returns, or the exception it alone raised."""
        received = datetime.now(UTC)
        return self.store.record_pushes([self._row(d, received, None, None, pending_language) for d in deliveries])

    def _row(self, d: Delivery, received: datetime, pushed_at: datetime | None, pushed_at_source: str | None,
             pending_language: str | None) -> dict[str, Any]:
        """`Store.record_push`'s arguments for a delivery: who the student is, whether it is late,
        its report token and (with `pending_language`) its `pending` status."""
        student = self.student(d.project_path).id
        deadline, _ = self.deadline(d.project_path, student)
        late = is_late(pushed_at or received, deadline)
        token = new_report_token()
        status = pending_status(self.settings, token, d.ref, self._queued(pending_language, late)) \
            if pending_language is not None and d.skipped is None else None
        return dict(project_id=d.project_id, project_path=d.project_path, student=student, sha=d.sha, ref=d.ref,
                    event_uuid=d.event_uuid, received_at=received, late=late, pushed_at=pushed_at,
                    pushed_at_source=pushed_at_source, before_sha=d.before_sha, origin=d.origin,
                    merge_request_iid=d.merge_request_iid, skipped=d.skipped, token=token, status=status)

    @staticmethod
    @lru_cache(maxsize=16)
    def _queued(language: str, late: bool) -> str:
        """The `pending` status's words: the same for every push, so worked out once."""
        return state_description("queued", language, late=late)


def pending_status(settings: Settings, token: str, ref: str, description: str) -> dict:
    """A `pending` commit status for the outbox, as Service._status writes every other one."""
    return {"state": "pending", "name": settings.status_name, "description": description,
            "target_url": f"{settings.report_base_url.rstrip('/')}/reports/{token}",
            "ref": ref.removeprefix("refs/heads/"), "coverage": None}
