"""Deadlines a grade is judged by: the course's (GRADER_DEADLINE), each student's extension, and
the assignment's late policy, which turns graded pushes into the scoreboard's `final_score`.

Lateness is judged by when GitLab says the commit was pushed (`pushed_at`, grader/provenance.py),
never by when the grader got round to it.

Extensions come from two places:
- the extensions file (`GRADER_EXTENSIONS_FILE`): CSV with the columns `until` and `project` and/or
  `student` (each row fills one of them) and optionally `reason`, e.g.::

      project,student,until,reason
      devops-2026/ivanov-docker,,2026-12-08T23:59:00+03:00,medical certificate
      ,petrov-docker,2026-12-05T23:59:00+03:00,

- `grader extend STUDENT --until ISO` (kept in the database; STUDENT as the scoreboard names
  them, or a project path), which wins over the file for that student or project.

A project's extension wins over its student's. An extension is the student's deadline: it must be
later than the course's, and needs an offset (`+03:00`, `Z`), like GRADER_DEADLINE.

The late policy (`[late_policy]` in the assignment file): `none` (a late push counts as graded,
marked late), `cap` (a late push counts at most `cap` points), `penalty_per_day` (`per_day`
points off for each started day after the deadline, never below 0). The final score is the best
of the student's graded pushes after the policy; `final_reason` says which push and why.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grader.assignment import LatePolicy
from grader.errors import ConfigError

COLUMNS = ("project", "student", "until", "reason")


@dataclass(frozen=True)
class Extension:
    until: datetime
    reason: str | None = None
    source: str = "file"  # "file" (GRADER_EXTENSIONS_FILE) | "cli" (grader extend)


def parse_until(value: str, what: str) -> datetime:
    """An ISO 8601 time with an offset, as an aware UTC datetime; ConfigError saying what is wrong."""
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what}: {value.strip()!r} is not an ISO 8601 time, e.g. 2026-12-08T23:59:00+03:00") \
            from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ConfigError(f"{what}: {value.strip()!r} needs a UTC offset, e.g. 2026-12-08T23:59:00+03:00")
    return parsed.astimezone(UTC)


def _key(who: str) -> str:
    """Project paths compare as GitLab's (case-insensitive, no slashes around); students as written."""
    return who.strip().strip("/").lower() if "/" in who else who.strip()


def load_file(path: Path, deadline: datetime | None = None) -> dict[str, Extension]:
    """The extensions file's entries: key (project path or student) → Extension."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            if "until" not in header or not ({"project", "student"} & set(header)):
                raise ConfigError(f"extensions file {path}: needs the columns until and project and/or student "
                                  f"(optional: reason); found {', '.join(header) or 'none'}")
            rows = list(reader)
    except OSError as exc:
        raise ConfigError(f"extensions file {path} cannot be read: {exc.strerror}") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"extensions file {path} is not a UTF-8 CSV file: {exc}") from exc
    found: dict[str, Extension] = {}
    for number, row in enumerate(rows, start=2):
        where = f"extensions file {path}, line {number}"
        project, student = (row.get("project") or "").strip(), (row.get("student") or "").strip()
        if bool(project) == bool(student):
            raise ConfigError(f"{where}: fill exactly one of project and student")
        key = _key(project or student)
        if key in found:
            raise ConfigError(f"{where}: {project or student} is listed twice")
        until = parse_until(row.get("until") or "", f"{where}, until")
        check_later(until, deadline, where)
        found[key] = Extension(until, (row.get("reason") or "").strip() or None, "file")
    return found


def check_later(until: datetime, deadline: datetime | None, where: str) -> None:
    if deadline is not None and until <= deadline:
        raise ConfigError(f"{where}: {until.isoformat()} is not after the course deadline "
                          f"{deadline.astimezone(UTC).isoformat()} (GRADER_DEADLINE): an extension must be later")


class Extensions:
    """Every extension in force: the file's, overridden per key by those granted with `grader extend`."""

    def __init__(self, by_key: dict[str, Extension] | None = None) -> None:
        self.by_key = dict(by_key or {})

    @classmethod
    def current(cls, file: Path | None, granted: dict[str, tuple[datetime, str | None]],
                deadline: datetime | None = None) -> Extensions:
        """`granted`: Store.extensions() (the database's)."""
        by_key = load_file(file, deadline) if file is not None else {}
        by_key.update({key: Extension(until, reason, "cli") for key, (until, reason) in granted.items()})
        return cls(by_key)

    def find(self, project_path: str, student: str) -> Extension | None:
        """The project's extension, else its student's."""
        return self.by_key.get(_key(project_path)) or self.by_key.get(_key(student))


def deadline_for(deadline: datetime | None, extension: Extension | None) -> datetime | None:
    """The deadline a student's push is judged by."""
    return extension.until if extension is not None else deadline


def is_late(pushed: datetime, deadline: datetime | None) -> bool:
    return deadline is not None and pushed > deadline


def days_late(pushed: datetime, deadline: datetime) -> int:
    """Started days after the deadline: a minute late is one day."""
    return max(1, math.ceil((pushed - deadline) / timedelta(days=1))) if pushed > deadline else 0


@dataclass(frozen=True)
class Attempt:
    """A graded push, as the final score sees it."""

    sha: str
    score: float
    max_score: float
    pushed: datetime


@dataclass(frozen=True)
class Final:
    score: float
    reason: str
    sha: str | None


def counted(attempt: Attempt, deadline: datetime | None, policy: LatePolicy) -> tuple[float, str]:
    """What one graded push counts for under the policy, and why (short, for a CSV cell)."""
    graded = f"{attempt.score:g}/{attempt.max_score:g} ({attempt.sha[:8]})"
    if deadline is None:
        return attempt.score, f"{graded}, no deadline"
    days = days_late(attempt.pushed, deadline)
    if days == 0:
        return attempt.score, f"{graded} on time"
    late = f"{graded} pushed {days} day{'s' if days != 1 else ''} late"
    if policy.kind == "cap" and policy.cap is not None:
        final = min(attempt.score, policy.cap)
        return final, f"{late}, capped at {policy.cap:g}" if final < attempt.score else f"{late}, under the cap"
    if policy.kind == "penalty_per_day" and policy.per_day is not None:
        penalty = policy.per_day * days
        final = max(0.0, attempt.score - penalty)
        return final, f"{late}: -{penalty:g} ({policy.per_day:g} per day) = {final:g}"
    return attempt.score, f"{late}, no late policy"


def final_score(attempts: Iterable[Attempt], deadline: datetime | None, policy: LatePolicy,
                extension: Extension | None = None) -> Final | None:
    """The best of the graded pushes after the late policy (ties: on time first, then the latest push);
    None without a graded push. `deadline` is the student's (extension included)."""
    best: tuple[tuple[float, bool, datetime], str, str] | None = None
    for a in attempts:
        value, why = counted(a, deadline, policy)
        rank = (value, not is_late(a.pushed, deadline), a.pushed)
        if best is None or rank > best[0]:
            best = (rank, why, a.sha)
    if best is None:
        return None
    reason = best[1]
    if extension is not None:
        reason += f"; deadline extended to {extension.until.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        if extension.reason:
            reason += f" ({extension.reason})"
    return Final(round(best[0][0], 4), reason, best[2])
