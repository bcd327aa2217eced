"""Finds the student's Dockerfiles, decides which is which variant, and picks each build context."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from grader.assignment import Assignment
from grader.dockerfile import ParsedDockerfile, is_root_user, parse_file
from grader.errors import SubmissionError

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "dist"}
MAX_FILES_SCANNED = 20_000


@dataclass
class Candidate:
    path: Path  # absolute, inside the repository
    rel: str  # repo-relative, as shown to the student
    parsed: ParsedDockerfile | None = None
    parse_error: str | None = None


@dataclass
class Assigned:
    variant: str
    candidate: Candidate | None
    found_by: str | None  # "name" | "content"
    context: Path | None
    context_is_reference: bool = False


@dataclass
class Discovery:
    variants: dict[str, Assigned]
    notes: list[str] = field(default_factory=list)


def discover(repo: Path, assignment: Assignment, reference: Path | None) -> Discovery:
    repo = repo.resolve()
    if not repo.is_dir():
        raise SubmissionError(f"{repo}: not a directory")
    candidates = [_parse(c) for c in _find_dockerfiles(repo)]
    if not candidates:
        raise SubmissionError(f"{repo}: no Dockerfile found (looked for Dockerfile* and *.dockerfile)")
    by_name = {v.filename: v.name for v in assignment.variants}
    named = [c for c in candidates if c.path.name in by_name]
    notes: list[str] = []
    if named:
        chosen = _assign_by_name(named, by_name, notes)
        found_by = "name"
    else:
        chosen = _assign_by_content(candidates, assignment, notes)
        found_by = "content"
    variants = {}
    for v in assignment.variants:
        cand = chosen.get(v.name)
        context, is_ref = _context(cand, repo, reference) if cand else (None, False)
        variants[v.name] = Assigned(v.name, cand, found_by if cand else None, context, is_ref)
    return Discovery(variants, notes)


def _find_dockerfiles(repo: Path) -> list[Candidate]:
    found: list[Candidate] = []
    scanned = 0
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            scanned += 1
            if scanned > MAX_FILES_SCANNED:
                raise SubmissionError(f"{repo}: more than {MAX_FILES_SCANNED} files; is this the right repository?")
            if _looks_like_dockerfile(name):
                path = Path(root) / name
                if _inside(path, repo):  # a symlink out of the repository is never read
                    found.append(Candidate(path, path.relative_to(repo).as_posix()))
    return found


def _looks_like_dockerfile(name: str) -> bool:
    lower = name.lower()
    return lower.startswith("dockerfile") or lower.endswith(".dockerfile")


def _inside(path: Path, repo: Path) -> bool:
    try:
        return path.resolve().is_relative_to(repo) and path.resolve().is_file()
    except OSError:
        return False


def _parse(c: Candidate) -> Candidate:
    try:
        c.parsed = parse_file(c.path, c.rel)
    except SubmissionError as exc:
        c.parse_error = str(exc)
    return c


def _assign_by_name(named: list[Candidate], by_name: dict[str, str], notes: list[str]) -> dict[str, Candidate]:
    chosen: dict[str, Candidate] = {}
    # Prefer the copy next to a pyproject.toml, then the shallowest path.
    ranked = sorted(named, key=lambda c: (not (c.path.parent / "pyproject.toml").is_file(), c.rel.count("/"), c.rel))
    for c in ranked:
        variant = by_name[c.path.name]
        if variant in chosen:
            notes.append(f"ignored {c.rel}: {chosen[variant].rel} is used for {variant}")
        else:
            chosen[variant] = c
    return chosen


def classify(parsed: ParsedDockerfile) -> str:
    """Earlier-edition files have free names: one stage, several, or several with a non-root USER."""
    if len(parsed.stages) == 1:
        return "single"
    user = parsed.final_user()
    if user is not None and user.args and not is_root_user(user.args[0]):
        return "nonroot"
    return "multistage"


def _assign_by_content(candidates: list[Candidate], assignment: Assignment, notes: list[str]) -> dict[str, Candidate]:
    chosen: dict[str, Candidate] = {}
    for c in candidates:
        if c.parsed is None:
            notes.append(f"ignored {c.rel}: {c.parse_error}")
            continue
        kind = classify(c.parsed)
        if kind in chosen:
            notes.append(f"ignored {c.rel}: also looks like {kind}; {chosen[kind].rel} is used")
        else:
            chosen[kind] = c
            notes.append(f"took {c.rel} as {kind} ({_why(kind, c.parsed)})")
    if not chosen:
        raise SubmissionError("no Dockerfile could be parsed: " + "; ".join(notes))
    known = {v.name for v in assignment.variants}
    return {k: c for k, c in chosen.items() if k in known}


def _why(kind: str, parsed: ParsedDockerfile) -> str:
    n = len(parsed.stages)
    if kind == "single":
        return "one stage"
    if kind == "nonroot":
        return f"{n} stages, USER {parsed.final_user().args[0]}"
    return f"{n} stages, no non-root USER"


def _context(c: Candidate, repo: Path, reference: Path | None) -> tuple[Path | None, bool]:
    if (c.path.parent / "pyproject.toml").is_file():
        return c.path.parent, False
    if reference is not None:
        return reference, True
    return None, False
