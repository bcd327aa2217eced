"""Records from local repositories: each directory's Dockerfiles found and classified as for
grading (grader/discovery.py), each with the time its text was written."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from grader.assignment import Assignment
from grader.discovery import discover
from grader.errors import SubmissionError
from grader.similarity.index import Record

GIT_TIMEOUT_S = 10


def records_from_dirs(dirs: Sequence[Path], assignment: Assignment) -> tuple[list[Record], list[str]]:
    """The records of every directory (id: the directory as given), and what could not be read."""
    records: list[Record] = []
    problems: list[str] = []
    for directory in dirs:
        if not directory.is_dir():
            problems.append(f"{directory}: not a directory")
            continue
        try:
            found = discover(directory, assignment, None)
        except SubmissionError as exc:
            problems.append(f"{directory}: {exc}")
            continue
        repo = directory.resolve()
        in_git = any((d / ".git").exists() for d in (repo, *repo.parents))  # no git process for plain directories
        for variant, assigned in found.variants.items():
            candidate = assigned.candidate
            if candidate is None:
                continue
            if candidate.parsed is None:
                problems.append(f"{directory}: {candidate.parse_error}")
                continue
            text = candidate.path.read_text(encoding="utf-8")
            records.append(Record(str(directory), variant, text, file_time(repo, candidate.rel, in_git), candidate.rel))
    return records, problems


def file_time(repo: Path, rel: str, in_git: bool = True) -> datetime:
    """When the file's text was written: the commit time of its last change when `repo` is (in) a
    git checkout and the file is committed unchanged; else its modification time."""
    committed = _commit_time(repo, rel) if in_git else None
    if committed is not None:
        return committed
    # whole seconds, as commit times are: files written in the same second are not "first" and "second"
    return datetime.fromtimestamp(int((repo / rel).stat().st_mtime), UTC)


def _commit_time(repo: Path, rel: str) -> datetime | None:
    status = _git(repo, "status", "--porcelain", "--", rel)
    if status is None or status.strip():  # not a repository, untracked, or changed since the commit
        return None
    stamp = _git(repo, "log", "-1", "--format=%ct", "--", rel)
    return datetime.fromtimestamp(int(stamp), UTC) if stamp and stamp.strip().isdigit() else None


def _git(repo: Path, *args: str) -> str | None:
    # A student's repository is not trusted: its .git/config must not make `git status` run a
    # program (core.fsmonitor); no other configuration is read, and git must not page or prompt.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    command = ["git", "-c", "core.fsmonitor=false", "-c", f"safe.directory={repo}", "--no-optional-locks",
               "-C", str(repo), *args]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None
