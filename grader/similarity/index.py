"""Who copied whom: pairs of students whose Dockerfiles share what the course did not give them.

A pure computation over records (id, variant, Dockerfile text, timestamp): the CLI builds them
from local directories (grader/similarity/local.py); a store or a web page can build them from
anything else.

Fingerprinting library: datasketch (MinHash and MinHash LSH), chosen over copydetect because
- it is maintained (copydetect's last release is 0.5.0, March 2024) and small itself;
- its hashes are SHA-1 based and seeded, the same in every process, so fingerprints can be stored
  and compared later (copydetect hashes with Python's `hash()`, salted per process);
- its LSH index answers "which stored files could be a copy of this one" without comparing all
  pairs, and takes one more file at a time: a new submission costs one query, not n comparisons;
- copydetect's winnowing works on characters of a whole file and needs matplotlib/jinja2 for its
  HTML report; we compare our own units, and show matches ourselves.
Its cost: numpy and scipy (LSH's parameter search) as dependencies.

Each pair the index proposes is then scored exactly on the shingle sets: an instructor acts on
the score, so it must not carry MinHash's estimation error (about ±0.04 with 128 permutations).
The index proposes every pair whose Jaccard similarity in some variant is at least half the
threshold, with near certainty; pairs it never proposes are not listed (`exhaustive=True`
compares all pairs instead, for tests).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from datasketch import MinHash, MinHashLSH

from grader.errors import SubmissionError
from grader.similarity.config import Config
from grader.similarity.normalise import Normalised, Unit, normalise

NUM_PERM = 128
ALL = "all"  # the variant name of a pair's overall score


@dataclass(frozen=True)
class Record:
    id: str  # the submission (a repository path, a student, a project)
    variant: str
    text: str  # the Dockerfile as written
    timestamp: datetime | None = None  # when this text was pushed (commit time), for "who was first"
    path: str = ""  # the file's path inside the submission, for showing matches


@dataclass(frozen=True)
class Region:
    """Matching lines: units of a's file and b's file that share evidence (lines inclusive)."""

    a_path: str
    a_lines: tuple[int, int]
    a_text: str
    b_path: str
    b_lines: tuple[int, int]
    b_text: str


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    variant: str  # a variant's name, or "all"
    score: float  # in [0, 1]
    flagged: bool
    regions: tuple[Region, ...]
    a_time: datetime | None = None  # the earliest time of a's matching files
    b_time: datetime | None = None

    @property
    def first(self) -> str | None:
        """Whose matching text was pushed first; None when unknown or at the same time."""
        if self.a_time is None or self.b_time is None or self.a_time == self.b_time:
            return None
        return self.a if self.a_time < self.b_time else self.b


@dataclass
class _Doc:
    record: Record
    norm: Normalised
    evidence: tuple[frozenset[str], ...]  # per unit: its shingles that may count (prescribed: none)
    shingles: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.shingles = frozenset().union(*self.evidence)


@dataclass(frozen=True)
class _Weights:
    of: dict[str, float]
    two_files: float  # the weight of a shingle only the two files of a pair hold

    def total(self, shingles: frozenset[str]) -> float:
        return sum(self.of.get(s, 1.0) for s in shingles)


class Index:
    """Fingerprints of every submission added so far, and the pairs worth scoring."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.base = frozenset(s for _, text in config.base for u in normalise(text).units for s in u.shingles)
        self.skipped: list[tuple[Record, str]] = []  # records BuildKit's parser refused, and why
        self._docs: dict[str, dict[str, _Doc]] = {}  # id -> variant -> doc
        self._lsh: dict[str, MinHashLSH] = {}
        self._df: dict[str, Counter[str]] = {}  # variant -> shingle -> files holding it
        self._candidates: set[tuple[str, str]] = set()

    def add(self, records: Sequence[Record]) -> list[Pair]:
        """Add one submission (the records of one id; added again, it replaces the earlier one)
        and return its pairs: one LSH query per variant, each proposed pair scored."""
        ids = {r.id for r in records}
        if len(ids) != 1:
            raise ValueError(f"add() takes the records of one submission, got ids {sorted(ids)}")
        sub_id = ids.pop()
        self._remove(sub_id)
        docs = self._docs.setdefault(sub_id, {})
        for record in records:
            if record.variant == ALL:
                raise ValueError(f"{record.id}: '{ALL}' is not a variant name")
            doc = self._doc(record)
            if doc is None:
                continue
            docs[record.variant] = doc
            self._df.setdefault(record.variant, Counter()).update(doc.shingles)
            if doc.shingles:
                if record.variant not in self._lsh:  # built once per variant: its parameter search takes ~30 ms
                    self._lsh[record.variant] = MinHashLSH(self.config.threshold / 2, NUM_PERM)
                lsh = self._lsh[record.variant]
                signature = _minhash(doc.shingles)
                self._candidates.update(_key(sub_id, other) for other in lsh.query(signature))
                lsh.insert(sub_id, signature)
        return self.pairs(involving=sub_id)

    def pairs(self, involving: str | None = None, exhaustive: bool = False) -> list[Pair]:
        """Scored pairs, highest score first: per variant, and `all` over the variants together."""
        keys = itertools.combinations(sorted(self._docs), 2) if exhaustive else self._candidates
        weights = {v: self._weights(v) for v in self._df}
        found = [p for a, b in keys if involving in (None, a, b) for p in self._score(a, b, weights)]
        return sorted(found, key=lambda p: (-p.score, p.a, p.b, p.variant != ALL, p.variant))

    def _doc(self, record: Record) -> _Doc | None:
        try:
            norm = normalise(record.text, record.path or record.variant)
        except SubmissionError as exc:
            self.skipped.append((record, str(exc)))
            return None
        return _Doc(record, norm, tuple(self._evidence(u) for u in norm.units))

    def _evidence(self, unit: Unit) -> frozenset[str]:
        if unit.abstract_only or self.config.prescribed(unit.text):
            return frozenset()
        return unit.shingles - self.base

    def _remove(self, sub_id: str) -> None:
        for variant, doc in self._docs.pop(sub_id, {}).items():
            self._df[variant].subtract(doc.shingles)
            if sub_id in self._lsh.get(variant, ()):
                self._lsh[variant].remove(sub_id)
        self._candidates = {k for k in self._candidates if sub_id not in k}

    def _weights(self, variant: str) -> _Weights:
        """A shingle's weight is its smoothed inverse document frequency among this variant's files:
        a line written by two students weighs about ln(n/3)+1, one that half the course wrote about
        1.7, one everyone wrote 1. Unlike a hard cut-off (MOSS's -m), a copy made of popular lines
        still scores high, while two honest files sharing only popular lines score low."""
        files = sum(1 for docs in self._docs.values() if variant in docs)
        return _Weights({s: math.log((1 + files) / (1 + n)) + 1 for s, n in self._df[variant].items() if n > 0},
                        math.log((1 + files) / 3) + 1)

    def _score(self, a: str, b: str, weights: dict[str, _Weights]) -> list[Pair]:
        """Per variant: the weight of the shingles the two files share over the weight of all their
        shingles (weighted Jaccard), the denominator at least `min_evidence` shingles found in these
        two files only. Overall (`all`): the mean over the variants either submitted (one missing
        counts 0), so a copy of one variant of three scores at most a third overall."""
        pairs: list[Pair] = []
        variants = sorted(set(self._docs[a]) | set(self._docs[b]))
        for variant in variants:
            da, db = self._docs[a].get(variant), self._docs[b].get(variant)
            if da is None or db is None:
                continue
            shared, w = da.shingles & db.shingles, weights[variant]
            if shared:
                floor = self.config.min_evidence * w.two_files
                score = w.total(shared) / max(w.total(da.shingles | db.shingles), floor, 1e-9)
                pairs.append(Pair(a, b, variant, min(score, 1.0), score >= self.config.threshold, _regions(da, db, shared),
                                  da.record.timestamp, db.record.timestamp))
        if pairs:
            score = sum(p.score for p in pairs) / len(variants)
            times_a = [t for p in pairs if (t := p.a_time) is not None]
            times_b = [t for p in pairs if (t := p.b_time) is not None]
            pairs.append(Pair(a, b, ALL, score, score >= self.config.threshold,
                              tuple(r for p in pairs for r in p.regions), min(times_a, default=None),
                              min(times_b, default=None)))
        return pairs


def compare(records: Iterable[Record], config: Config, *, exhaustive: bool = False) -> tuple[list[Pair], Index]:
    """Every submission's records added to a fresh index; its pairs, and the index (for `skipped`)."""
    index = Index(config)
    by_id: dict[str, list[Record]] = {}
    for record in records:
        by_id.setdefault(record.id, []).append(record)
    for group in by_id.values():
        index.add(group)
    return index.pairs(exhaustive=exhaustive), index


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _minhash(shingles: frozenset[str]) -> MinHash:
    signature = MinHash(num_perm=NUM_PERM, seed=1)
    signature.update_batch(s.encode() for s in sorted(shingles))
    return signature


def _regions(da: _Doc, db: _Doc, shared: frozenset[str]) -> tuple[Region, ...]:
    """Each unit of a holding shared evidence, with the unit of b that holds most of it; runs of
    units consecutive on both sides become one region."""
    b_units = [(u, ev & shared) for u, ev in zip(db.norm.units, db.evidence, strict=True) if ev & shared]
    matched: list[tuple[Unit, Unit]] = []
    for unit, ev in zip(da.norm.units, da.evidence, strict=True):
        mine = ev & shared
        if mine:
            best = max(b_units, key=lambda item: len(item[1] & mine))
            if best[1] & mine:
                matched.append((unit, best[0]))
    spans: list[list[int]] = []  # [a_first, a_last, b_first, b_last]
    for ua, ub in matched:
        last = spans[-1] if spans else None
        if last and last[0] <= ua.line <= last[1] + 1 and last[2] <= ub.line <= last[3] + 1:
            last[1], last[3] = max(last[1], ua.end_line), max(last[3], ub.end_line)
        else:
            spans.append([ua.line, ua.end_line, ub.line, ub.end_line])
    pa, pb = da.record.path or da.norm.path, db.record.path or db.norm.path
    return tuple(Region(pa, (s[0], s[1]), da.norm.excerpt(s[0], s[1]), pb, (s[2], s[3]), db.norm.excerpt(s[2], s[3]))
                 for s in spans)
