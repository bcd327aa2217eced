"""Similarity over the store: the Dockerfiles each grading took, kept with its verdict, and the
course compared from them at any time (`grader similarity --group`, the `/similarity` pages).

What is incremental:
- a file's fingerprint (its evidence shingles and MinHash signature) is worked out once, when its
  submission is graded, and stored with it (`dockerfiles_of`, called by the worker);
- loading a course from the store parses no Dockerfile: the LSH index is built from the stored
  signatures, and only the pairs it proposes are scored (on the stored shingles);
- `pairs_of` compares one submission against everything stored: one LSH query per variant, its
  proposed pairs scored, none of the other pairs;
- a file is parsed again only to show its matched lines, or when its fingerprint was made for other
  course files or skeleton (then worked out again and stored back, once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from grader.assignment import Assignment
from grader.discovery import discover
from grader.errors import ConfigError, GraderError, SubmissionError
from grader.similarity.config import Config, load_config
from grader.similarity.index import Fingerprint, Index, Pair, Record
from grader.store import ComparedSubmission, Dockerfile, Store

log = logging.getLogger(__name__)
MAX_STORED_BYTES = 256 * 1024  # a homework Dockerfile is a few KB; a bigger one is not kept


def dockerfiles_of(repo: Path, assignment: Assignment) -> list[Dockerfile]:
    """The Dockerfiles a grading of `repo` took (discovery's choice per variant), with their
    fingerprints when the assignment has a [similarity] table. Never raises for the student's
    files: keeping them must not change a verdict."""
    try:
        found = discover(repo, assignment, None)  # no build context needed: only which file is which variant
    except (SubmissionError, GraderError):
        return []
    try:
        index: Index | None = Index(load_config(assignment))
    except ConfigError as exc:
        log.info("Dockerfiles kept without similarity fingerprints: %s", exc)
        index = None
    kept: list[Dockerfile] = []
    for variant, assigned in sorted(found.variants.items()):
        candidate = assigned.candidate
        if candidate is None or candidate.parsed is None:
            continue
        try:
            raw = candidate.path.read_bytes()
        except OSError:
            continue
        if len(raw) > MAX_STORED_BYTES:
            continue
        # As shown, never as run: PostgreSQL's text refuses NUL, and a file it refuses would lose the verdict
        text = raw.decode("utf-8", "replace").replace("\x00", "\ufffd")
        fingerprint = index.fingerprint(Record("", variant, text, None, candidate.rel)) if index else None
        kept.append(Dockerfile(variant, candidate.rel, text, fingerprint.to_json() if fingerprint else None))
    return kept


def records_of(sub: ComparedSubmission) -> list[Record]:
    """A stored submission as records: its project is its id (one project per student); each file
    is dated by the earliest push of that project that held its text, which says who was first."""
    return [Record(sub.project_path, d.variant, d.text, d.first_pushed or sub.push_time, d.path)
            for d in sub.dockerfiles]


def load(store: Store, config: Config, groups: Sequence[str] = ()) -> tuple[Index, dict[str, ComparedSubmission]]:
    """An index of every project's latest graded submission under `groups` (none: all), built from
    the stored fingerprints; and the submissions by id. Fingerprints made for other course files
    are worked out again and stored back."""
    index = Index(config)
    subs = {s.project_path: s for s in store.compared_submissions(groups)}
    refreshed: dict[int, dict] = {}
    for sub in subs.values():
        stored = {d.variant: Fingerprint.from_json(d.fingerprint) for d in sub.dockerfiles}
        for d in sub.dockerfiles:
            current = stored[d.variant]
            if (current is None or current.key != index.key) and d.id is not None:
                fresh = index.fingerprint(Record(sub.project_path, d.variant, d.text, None, d.path))
                if fresh is not None:
                    stored[d.variant] = fresh
                    refreshed[d.id] = fresh.to_json()
        index.insert(records_of(sub), stored)
    if refreshed:
        try:
            store.set_fingerprints(refreshed)
        except GraderError as exc:  # a cache: the next run works them out again
            log.warning("could not store %d refreshed fingerprints: %s", len(refreshed), exc)
    return index, subs


def pairs_of(store: Store, config: Config, submission_id: int, groups: Sequence[str] = ()) -> list[Pair]:
    """The listed pairs of one graded submission against the others stored (e.g. a new push):
    the index is built from stored fingerprints and only this submission's proposed pairs scored."""
    index, subs = load(store, config, groups)
    sub = next((s for s in subs.values() if s.id == submission_id), None)
    if sub is None:
        return []
    return index.pairs(involving=sub.project_path)
