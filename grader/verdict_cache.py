"""Verdicts already reached for exactly this input: an unchanged re-push (the student amended only
the README, or pushed the same tree twice) gets the stored report in well under a second.

The key covers everything that decides a verdict: which file was taken for which variant and its
bytes (the copy the engine builds is a function of those and the assignment's policy), each build
context's content after .dockerignore, the assignment file, the grader's version, the base
image's id and the report's language. A verdict touched by an infrastructure problem — a build
that timed out or was killed, a network error during pip, a container that never answered — is
never stored: the next push tries for real. Files live under the work directory (one JSON file per
key), so every worker on a host shares them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import grader
from grader import plugins
from grader.assignment import Assignment
from grader.discovery import Discovery
from grader.engine.context import sent_files
from grader.facts import SubmissionFacts, VariantFacts

# Build failures whose cause is the student's file, not the machine (checks/hints.py keys).
STUDENT_HINTS = frozenset({"poetry_export", "readme_missing", "dist_missing", "empty_variable", "no_requirement",
                           "git_clone", "break_system_packages", "heredoc_unsupported", "dockerignore_excludes",
                           "not_in_context", "server_in_run"})
MAX_HASHED_BYTES = 512 * 1024**2  # a context bigger than this is refused anyway (max_context_bytes)


def key(found: Discovery, assignment: Assignment, base_image_id: str, lang: str) -> str:
    """The digest of everything a verdict depends on (see the module's docstring)."""
    h = hashlib.sha256()
    h.update(f"grader {grader.__version__}\nbase {base_image_id}\nlang {lang}\n".encode())
    h.update(assignment.source.read_bytes())
    for name in sorted(found.variants):
        a = found.variants[name]
        h.update(f"\nvariant {name} {a.found_by} {a.context_rel} {a.rejected}\n".encode())
        if a.candidate is not None:
            h.update(a.candidate.rel.encode() + b"\0" + a.candidate.path.read_bytes())
        if a.context is not None:
            h.update(_context_digest(a.context).encode())
    for n in found.notes:
        h.update(json.dumps([n.key, n.params], sort_keys=True, default=str).encode())
    return h.hexdigest()


def _context_digest(context: Path) -> str:
    """The build context as the engine would receive it: paths, modes and contents after .dockerignore."""
    h = hashlib.sha256()
    hashed = 0
    for rel in sent_files(context):
        path = context / rel
        if path.is_symlink():
            h.update(f"L {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            data = path.read_bytes()
            hashed += len(data)
            if hashed > MAX_HASHED_BYTES:
                return "too-big-" + h.hexdigest()  # graded for real; the limit check refuses it
            h.update(f"F {rel} {path.stat().st_mode & 0o111:o} {len(data)}\n".encode() + data)
    return h.hexdigest()


def cacheable(facts: SubmissionFacts, assignment: Assignment) -> bool:
    """Whether every variant's verdict is the student's doing alone (nothing the machine caused)."""
    return all(_deterministic(v, assignment) for v in facts.variants.values())


def _deterministic(v: VariantFacts, assignment: Assignment) -> bool:
    b = v.build
    if b is None:  # refused before building (no file, unparsable, policy, no source): input only
        return True
    if b.context_refused or b.no_context or b.oversize_limit:
        return True
    if not b.succeeded:
        build_hint = plugins.build_hint()  # judged the way the report judges it

        excluded = v.context.excluded if v.context else None
        hint = build_hint(b.log_tail, b.timed_out, v.parsed, assignment, excluded)
        return not b.timed_out and b.exit_code not in (None, 137) and hint is not None and hint.key in STUDENT_HINTS
    r = v.runtime
    return r is not None and r.started and r.ready and not r.oom_killed and r.error is None


class VerdictCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, digest: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise ValueError(f"not a verdict key: {digest!r}")
        return self.root / digest[:2] / f"{digest}.json"

    def get(self, digest: str) -> dict[str, Any] | None:
        """The stored entry ({"report", "source", "graded_at"}), or None (also when unreadable)."""
        path = self._path(digest)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and isinstance(entry.get("report"), dict) else None

    def put(self, digest: str, report: dict[str, Any], source: str, graded_at: str) -> None:
        """Stores atomically (a reader never sees half a file); a failure to store costs only speed."""
        path = self._path(digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp",
                                             encoding="utf-8") as f:
                json.dump({"report": report, "source": source, "graded_at": graded_at}, f, ensure_ascii=False)
            os.replace(f.name, path)
        except OSError:
            pass
