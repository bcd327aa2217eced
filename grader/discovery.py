"""Finds the student's Dockerfiles, decides which is which variant, and picks each build context.

Everything it says to the student is a `Note` (a catalogue key and its values, rendered in the
report's language): which file was taken for which variant, near-miss names, ignored copies,
links out of the repository, files that are not where they belong.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.assignment import Assignment
from grader.buildfile import directives
from grader.dockerfile import ParsedDockerfile, is_root_user, parse_file
from grader.errors import GraderError, SubmissionError
from grader.facts import Note
from grader.messages import note
from grader.policy import frontend_allowed
from grader.stage_roles import roles

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", ".tox", "dist"}
MAX_FILES_SCANNED = 20_000
PROJECT_FILE = "pyproject.toml"


@dataclass
class Candidate:
    path: Path  # absolute, inside the repository
    rel: str  # repo-relative, as shown to the student
    parsed: ParsedDockerfile | None = None
    parse_error: str | None = None  # in English, for logs
    parse_reason: str | None = None  # for the student: a reason of the `parsed` check, and its values
    parse_params: dict[str, object] = field(default_factory=dict)


@dataclass
class Assigned:
    variant: str
    candidate: Candidate | None
    found_by: str | None  # "name" | "near_name" | "content"
    context: Path | None
    context_is_reference: bool = False
    context_rel: str | None = None  # repo-relative build context ("counter-backend", "."); None: reference
    rejected: str | None = None  # repo-relative path of a file for this variant that was not read (a link out)


@dataclass
class Discovery:
    variants: dict[str, Assigned]
    notes: list[Note] = field(default_factory=list)


@dataclass
class _Scan:
    candidates: list[Candidate]
    links_out: list[str]  # Dockerfile-like names that are symlinks leaving the repository
    projects: list[Path]  # directories holding a pyproject.toml, shallowest first


def discover(repo: Path, assignment: Assignment, reference: Path | None) -> Discovery:
    repo = repo.resolve()
    if reference is not None and not (reference / PROJECT_FILE).is_file():
        # The course's source is configured but unusable: ours to fix, never a student's zero.
        raise GraderError(f"the reference source {reference} has no {PROJECT_FILE}; fix `reference` in the "
                          "assignment file or --reference")
    scan = _scan(repo)
    notes = [Note("symlink_outside", path=rel) for rel in scan.links_out]
    candidates = [_parse(c) for c in scan.candidates]
    if not candidates:
        raise SubmissionError("no Dockerfile found (looked for Dockerfile* and *.dockerfile)",
                              reason="no_dockerfile")
    named = {c.rel: _name_match(c.path.name, assignment) for c in candidates}
    if any(named.values()):
        chosen, found_by = _assign_by_name(candidates, named, assignment, notes)
    else:
        chosen, found_by = _assign_by_content(candidates, assignment, notes), {}
    variants = {}
    for v in assignment.variants:
        cand = chosen.get(v.name)
        rejected = next((r for r in scan.links_out if _name_match(Path(r).name, assignment) == (v.name, "name")), None)
        if cand is None:
            variants[v.name] = Assigned(v.name, None, None, None, rejected=rejected)
            continue
        context, rel = _context(cand, repo, scan.projects, reference, notes, v.filename)
        notes += _directive_notes(cand, assignment)
        variants[v.name] = Assigned(v.name, cand, found_by.get(v.name, "content"), context,
                                    context is not None and rel is None, rel)
    return Discovery(variants, notes)


def _scan(repo: Path) -> _Scan:
    found: list[Candidate] = []
    links_out: list[str] = []
    projects: list[Path] = []
    scanned = 0
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        if PROJECT_FILE in files and _inside(Path(root) / PROJECT_FILE, repo):
            projects.append(Path(root))
        for name in sorted(files):
            scanned += 1
            if scanned > MAX_FILES_SCANNED:
                raise SubmissionError(f"more than {MAX_FILES_SCANNED} files; is this the right repository?",
                                      reason="too_many_files", limit=MAX_FILES_SCANNED)
            if _looks_like_dockerfile(name):
                path = Path(root) / name
                rel = path.relative_to(repo).as_posix()
                if _inside(path, repo):
                    found.append(Candidate(path, rel))
                elif path.is_symlink():  # never read; the report names it
                    links_out.append(rel)
    projects.sort(key=lambda p: (len(p.relative_to(repo).parts), str(p)))
    return _Scan(found, links_out, projects)


def _looks_like_dockerfile(name: str) -> bool:
    lower = name.strip().lower()
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
        c.parse_error, c.parse_reason, c.parse_params = str(exc), exc.reason, exc.params
    return c


def _squash(name: str) -> str:
    return re.sub(r"[\s._-]+", "", name.lower())


def _name_match(name: str, assignment: Assignment) -> tuple[str, str] | None:
    """(variant, "name") for the exact file name, (variant, "near_name") for a near miss such as
    `dockerfile.single`, `Dockerfile.multi-stage`, `Dockerfile_nonroot` or a trailing space."""
    for v in assignment.variants:
        if name == v.filename:
            return v.name, "name"
    for v in assignment.variants:
        if _squash(name) == _squash(v.filename):
            return v.name, "near_name"
    return None


def _assign_by_name(candidates: list[Candidate], named: dict[str, tuple[str, str] | None], assignment: Assignment,
                    notes: list[Note]) -> tuple[dict[str, Candidate], dict[str, str]]:
    chosen: dict[str, Candidate] = {}
    how: dict[str, str] = {}
    # The exact name first, then the copy next to a pyproject.toml, then the shallowest path.
    matched = {rel: match for rel, match in named.items() if match is not None}
    ranked = sorted((c for c in candidates if c.rel in matched), key=lambda c: (
        matched[c.rel][1] != "name", not (c.path.parent / PROJECT_FILE).is_file(), c.rel.count("/"), c.rel))
    for c in ranked:
        variant, kind = matched[c.rel]
        if variant in chosen:
            notes.append(Note("ignored_duplicate", path=c.rel, used=chosen[variant].rel, variant=variant))
            continue
        chosen[variant], how[variant] = c, kind
        if kind == "near_name":
            expected = assignment.variant(variant).filename
            notes.append(Note("near_name", path=c.rel, expected=expected, variant=variant))
    return chosen, how


def classify(parsed: ParsedDockerfile) -> str:
    """Earlier-edition files have free names: one working stage, several, or several with a
    non-root USER. Stages count as the structure checks count them (grader/stage_roles.py): a
    file is single-stage when every stage before the final one is an alias of its base
    (`FROM python:... AS base`, perhaps creating a user) and nothing is copied between stages."""
    return kinds(parsed)[0]


def kinds(parsed: ParsedDockerfile) -> list[str]:
    """The variants a free-named file can stand for, the likeliest first. A file read as
    single-stage that still has several stages (its earlier ones doing work the checks do not
    count, `apt-get` say) may also be the multi-stage attempt, when another file is the single one."""
    found = roles(parsed)
    several = "nonroot" if _runs_as_non_root(parsed) else "multistage"
    if any(r.takes for r in found) or any(r.working for r in found[:-1]):
        return [several]
    return ["single", several] if len(found) > 1 else ["single"]


def _runs_as_non_root(parsed: ParsedDockerfile) -> bool:
    user = parsed.final_user()
    return user is not None and bool(user.args) and not is_root_user(parsed.resolve(user.args[0], parsed.final))


def _assign_by_content(candidates: list[Candidate], assignment: Assignment, notes: list[Note]) -> dict[str, Candidate]:
    readings = {c.rel: kinds(c.parsed) for c in candidates if c.parsed is not None}
    parsed = [c for c in candidates if c.rel in readings]
    chosen: dict[str, Candidate] = {}
    taken: dict[str, str] = {}
    # Files with one possible reading first, so that an ambiguous one does not take their variant.
    for c in sorted(parsed, key=lambda c: len(readings[c.rel])):
        kind = next((k for k in readings[c.rel] if k not in chosen), None)
        if kind is not None:
            chosen[kind] = c
            taken[c.rel] = kind
    for c in candidates:  # the notes in file order
        if c.parsed is None:
            notes.append(Note("ignored_unparsable", path=c.rel, error=c.parse_error or "?"))
        elif c.rel in taken:
            notes.append(_took(c.rel, taken[c.rel], c.parsed))
        else:
            kind = readings[c.rel][0]
            notes.append(Note("ignored_same_kind", path=c.rel, variant=kind, used=chosen[kind].rel))
    if not chosen:
        raise SubmissionError("no Dockerfile could be parsed: " + "; ".join(note(n, "en") for n in notes),
                              reason="none_parsable", notes=list(notes))
    known = {v.name for v in assignment.variants}
    return {k: c for k, c in chosen.items() if k in known}


def _took(rel: str, kind: str, parsed: ParsedDockerfile) -> Note:
    stages = len(parsed.needed())
    if kind == "nonroot":
        user = parsed.final_user()
        return Note("took_nonroot", path=rel, stages=stages, user=user.args[0] if user and user.args else "?")
    return Note(f"took_{kind}", path=rel, stages=stages)


def _directive_notes(c: Candidate, assignment: Assignment) -> list[Note]:
    """A `# syntax=` line the policy allows is left out of the copy that is built (grader/buildfile.py):
    the student is told, since the file is then built by the engine's own frontend. One it does not
    allow is build_policy's verdict, not a note."""
    if c.parsed is None:
        return []
    return [Note("syntax_ignored", path=c.rel, line=d.line, frontend=d.value)
            for d in directives("\n".join(c.parsed.lines))
            if d.key == "syntax" and frontend_allowed(d.value, assignment.policy.allowed_frontends)]


def _context(c: Candidate, repo: Path, projects: list[Path], reference: Path | None,
             notes: list[Note], filename: str) -> tuple[Path | None, str | None]:
    """The build context: the Dockerfile's own directory when the project is there; else a project
    directory of the repository in which the file's COPY sources exist (a file put in the wrong
    place is still graded, and the student told where it belongs); else the course's reference."""
    here = c.path.parent
    if (here / PROJECT_FILE).is_file():
        return here, _rel(here, repo)
    copies = c.parsed is not None and any(not i.flag("from") for s in c.parsed.needed() for i in s.of("COPY", "ADD"))
    options = projects + ([repo] if copies and repo not in projects else [])
    for option in options:
        if c.parsed is not None and _sources_exist(c.parsed, option):
            if option != here:
                notes.append(Note("misplaced", path=c.rel, project=_rel(option, repo), filename=filename))
            return option, _rel(option, repo)
    if reference is not None:
        return reference, None
    if projects:  # the sources it names are missing there too: the build will say which
        notes.append(Note("misplaced", path=c.rel, project=_rel(projects[0], repo), filename=filename))
        return projects[0], _rel(projects[0], repo)
    return None, None


def _rel(path: Path, repo: Path) -> str:
    return path.relative_to(repo).as_posix() or "."


def _sources_exist(parsed: ParsedDockerfile, context: Path) -> bool:
    """Whether every source the file COPYs from the context is there (globs must match something)."""
    for stage in parsed.needed():
        for ins in stage.of("COPY", "ADD"):
            if ins.flag("from") or ins.heredocs:
                continue
            for source in ins.args[:-1]:
                if "://" in source:
                    continue
                target = (context / source.lstrip("/")).as_posix()
                if not glob.glob(target) and not Path(target).exists():
                    return False
    return True
