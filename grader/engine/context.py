"""What `docker build` would send: a build context after its .dockerignore, counted with docker's
own pattern matcher and bounded, so a hostile tree stops the count, not the grader."""

from __future__ import annotations

import os
from pathlib import Path

import docker.utils.build

from grader.facts import ContextFacts

# Top-level entries that never belong in a build context: .dockerignore should keep them out.
UNWANTED_IN_CONTEXT = {".git", ".venv", "venv", "dist", "__pycache__", ".pytest_cache", ".mypy_cache", "node_modules"}
CONTEXT_FILE_LIMIT = 100_000  # counting stops here: enough to say "too big"
CONTEXT_BYTES_LIMIT = 8 * 1024**3


def context_facts(context: Path, dockerfile: Path) -> ContextFacts:
    """What `docker build` sends: the context after .dockerignore, as the engine applies it."""
    ignore = context / ".dockerignore"
    patterns = _read_patterns(ignore)
    try:
        rel_dockerfile = dockerfile.resolve().relative_to(context.resolve()).as_posix()
    except ValueError:
        rel_dockerfile = "Dockerfile"
    count = size = 0
    top: set[str] = set()
    # docker's own .dockerignore matcher, walked lazily: a hostile tree stops the count, not the grader.
    matcher = docker.utils.build.PatternMatcher([*patterns, f"!{rel_dockerfile}"])
    for rel in matcher.walk(str(context)):
        path = context / rel
        top.add(rel.split("/", 1)[0])
        if path.is_file() and not path.is_symlink():
            count += 1
            size += path.stat().st_size
            if count > CONTEXT_FILE_LIMIT or size > CONTEXT_BYTES_LIMIT:
                break
    return ContextFacts(ignore.is_file(), count, size, sorted(top & UNWANTED_IN_CONTEXT),
                        _excluded(context, matcher) if patterns else [])


def _excluded(context: Path, matcher: docker.utils.build.PatternMatcher, limit: int = 300) -> list[str]:
    """Files of the context that .dockerignore keeps out: a COPY of one fails with "not found",
    and the build hint says why. Bounded: the first `limit` found, at most CONTEXT_FILE_LIMIT looked at."""
    found: list[str] = []
    seen = 0
    for root, dirs, files in os.walk(context):
        dirs[:] = sorted(d for d in dirs if d != ".git")
        for name in sorted(files):
            seen += 1
            rel = (Path(root) / name).relative_to(context).as_posix()
            if matcher.matches(rel):
                found.append(rel)
            if len(found) >= limit or seen > CONTEXT_FILE_LIMIT:
                return found
    return found


def sent_files(context: Path) -> list[str]:
    """Every path of the context the engine receives (after .dockerignore), sorted, relative."""
    return sorted(docker.utils.build.PatternMatcher(_read_patterns(context / ".dockerignore")).walk(str(context)))


def _read_patterns(ignore: Path) -> list[str]:
    try:
        lines = ignore.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
