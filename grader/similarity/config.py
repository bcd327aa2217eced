"""The `[similarity]` table of the assignment file: what is never evidence, and when to flag.

Read here, from the assignment file itself (`Assignment.source`), so the rubric's loader needs no
change for an instructor tool that grading never uses.
"""

from __future__ import annotations

import glob
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from grader.assignment import Assignment
from grader.errors import ConfigError, SubmissionError
from grader.similarity.normalise import normalise

KEYS = {"threshold", "min_evidence", "skeleton", "base_files", "lecture"}


@dataclass(frozen=True)
class Config:
    threshold: float = 0.5  # a pair scoring at least this is flagged
    min_evidence: int = 12  # shingles; two files with less evidence than this are scored as if they had it
    skeleton: tuple[re.Pattern[str], ...] = ()  # units matching one of these are prescribed, never evidence
    base: tuple[tuple[str, str], ...] = ()  # (name, Dockerfile text): the course's own files (MOSS's -b)

    def prescribed(self, unit_text: str) -> bool:
        return any(p.search(unit_text) for p in self.skeleton)


def load_config(assignment: Assignment, extra_base: Iterable[Path] = ()) -> Config:
    """The assignment's `[similarity]` table, its base files read; ConfigError says what to fix."""
    try:
        data = tomllib.loads(assignment.source.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"assignment file {assignment.source}: {exc}") from exc
    table = data.get("similarity")
    if not isinstance(table, dict):
        raise ConfigError(f"assignment file {assignment.source}: no [similarity] table (see "
                          "checks/assignments/counter_backend.toml)")
    unknown = set(table) - KEYS
    if unknown:
        raise ConfigError(f"[similarity]: unknown keys {sorted(unknown)}")
    try:
        return _config(table, assignment, list(extra_base))
    except (TypeError, ValueError, re.error) as exc:
        raise ConfigError(f"[similarity]: {exc}") from exc


def _config(table: dict, assignment: Assignment, extra_base: list[Path]) -> Config:
    default = Config()
    threshold = float(table.get("threshold", default.threshold))
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold {threshold}: must be in (0, 1]")
    lecture = [(f"[similarity] lecture {i + 1}", str(t)) for i, t in enumerate(table.get("lecture", []))]
    base = _base_files(table.get("base_files", []), assignment, extra_base) + lecture
    for name, text in base:  # a base file the parser refuses would silently discount nothing
        try:
            normalise(text, name)
        except SubmissionError as exc:
            raise ValueError(f"base file {name}: {exc}") from exc
    return Config(
        threshold=threshold,
        min_evidence=int(table.get("min_evidence", default.min_evidence)),
        skeleton=tuple(re.compile(str(p)) for p in table.get("skeleton", [])),
        base=tuple(base),
    )


def _base_files(patterns: list[str], assignment: Assignment, extra: list[Path]) -> list[tuple[str, str]]:
    """The course's Dockerfiles: `base_files` globs (relative to the assignment file), the
    assignment's `reference`, and `--base` paths. A pattern that matches nothing is an error:
    without the course's files every honest pair would look alike."""
    paths: list[Path] = []
    for pattern in patterns:
        found = sorted(Path(p) for p in glob.glob(str(assignment.source.parent / pattern)))  # absolute ones too
        if not found:
            raise ValueError(f"base_files {pattern!r} matches no file next to {assignment.source}")
        paths.extend(found)
    for place in ([assignment.reference] if assignment.reference else []) + extra:
        if place.is_dir():
            paths.extend(sorted(p for p in place.rglob("Dockerfile*") if p.is_file()))
        elif place.is_file():
            paths.append(place)
        else:
            raise ValueError(f"base {place}: no such file or directory")
    return [(str(p), p.read_text(encoding="utf-8")) for p in dict.fromkeys(p.resolve() for p in paths)]
