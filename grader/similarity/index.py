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

Each pair the index proposes is then scored exactly on the shingle sets, each shingle weighted by
how rare it is in the course (`Index._weights`): an instructor acts on the score, so it must not
carry MinHash's estimation error (about ±0.04 with 128 permutations). The index proposes a pair
whose (unweighted) Jaccard similarity in some variant is 0.4 or more with probability 0.998; pairs
it never proposes are not scored. Only pairs scoring at least half the threshold are listed.
`exhaustive=True` scores every pair instead (tests; in the benchmark's cohort it lists 0.3 % more
pairs than the index, none of them flagged).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

from grader.errors import SubmissionError
from grader.similarity.config import Config
from grader.similarity.normalise import K, Normalised, Unit, normalise

NUM_PERM = 128
SEED = 1
SCHEME = "affine32"  # datasketch's default hashing scheme; stored signatures are only comparable within one
# Raise it with any change of what normalise() or Index._evidence make of a file: stored
# fingerprints of an older version are then recomputed from the stored text.
FINGERPRINT_VERSION = 1
# A missed copy costs more than scoring a few more pairs: datasketch then bands the signature so
# that a pair with Jaccard 0.4 in a variant is proposed with probability 0.998 (0.94 with equal weights).
LSH_WEIGHTS = (0.2, 0.8)  # (false positives, false negatives)
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


@dataclass(frozen=True)
class Fingerprint:
    """What one file brings to every comparison, worked out once (when it is graded) and stored:
    its evidence shingles and their MinHash signature. Valid only for the configuration whose
    `key` it carries (the course's files and skeleton decide what is evidence)."""

    key: str
    shingles: tuple[str, ...]
    signature: tuple[int, ...]

    def to_json(self) -> dict[str, object]:
        return {"key": self.key, "shingles": list(self.shingles), "signature": list(self.signature)}

    @classmethod
    def from_json(cls, data: object) -> Fingerprint | None:
        """None for anything that is not a fingerprint (null, or written by another version)."""
        if not isinstance(data, dict):
            return None
        try:
            signature = tuple(int(v) for v in data["signature"])
            if len(signature) != NUM_PERM:
                return None
            return cls(str(data["key"]), tuple(str(s) for s in data["shingles"]), signature)
        except (KeyError, TypeError, ValueError):
            return None


def config_key(config: Config) -> str:
    """What a stored fingerprint depends on: the normaliser's version, the MinHash parameters, the
    course's files and the skeleton (not the threshold: it only decides what is flagged)."""
    material = json.dumps([FINGERPRINT_VERSION, NUM_PERM, SEED, SCHEME, K, sorted(text for _, text in config.base),
                           [p.pattern for p in config.skeleton]])
    return hashlib.sha256(material.encode()).hexdigest()[:32]


@dataclass
class _Doc:
    record: Record
    shingles: frozenset[str]  # the evidence: what may count
    signature: MinHash
    evidence_of: Callable[[Unit], frozenset[str]]
    _parts: tuple[Normalised, tuple[frozenset[str], ...]] | None = None

    @classmethod
    def parsed(cls, record: Record, norm: Normalised, evidence_of: Callable[[Unit], frozenset[str]]) -> _Doc:
        evidence = tuple(evidence_of(u) for u in norm.units)
        shingles: frozenset[str] = frozenset().union(*evidence)
        return cls(record, shingles, _minhash(shingles), evidence_of, (norm, evidence))

    def parts(self) -> tuple[Normalised, tuple[frozenset[str], ...]]:
        """The units and their evidence: a stored fingerprint has none until a pair of it is shown,
        so loading a course from the store parses nothing."""
        if self._parts is None:
            norm = normalise(self.record.text, self.record.path or self.record.variant)
            self._parts = (norm, tuple(self.evidence_of(u) for u in norm.units))
        return self._parts

    @property
    def norm(self) -> Normalised:
        return self.parts()[0]

    @property
    def evidence(self) -> tuple[frozenset[str], ...]:  # per unit: its shingles that may count
        return self.parts()[1]


@dataclass(frozen=True)
class _Weights:
    of: dict[str, float]
    two_files: float  # the weight of a shingle only the two files of a pair hold
    _files: dict[frozenset[str], float] = field(default_factory=dict)  # a file's total, worked out once

    def total(self, shingles: frozenset[str]) -> float:
        return sum(self.of.get(s, 1.0) for s in shingles)

    def file_total(self, shingles: frozenset[str]) -> float:
        if shingles not in self._files:
            self._files[shingles] = self.total(shingles)
        return self._files[shingles]


class Index:
    """Fingerprints of every submission added so far, and the pairs worth scoring."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.base = frozenset(s for _, text in config.base for u in normalise(text).units for s in u.shingles)
        self.skipped: list[tuple[Record, str]] = []  # records BuildKit's parser refused, and why
        self._docs: dict[str, dict[str, _Doc]] = {}  # id -> variant -> doc
        self._lsh: dict[str, MinHashLSH] = {}
        self._df: dict[str, Counter[str]] = {}  # variant -> shingle -> files holding it
        self._files: Counter[str] = Counter()  # variant -> files
        self._proposed: dict[str, set[str]] = {}  # id -> the ids LSH proposed to compare it with
        self._key: str | None = None

    def add(self, records: Sequence[Record]) -> list[Pair]:
        """Add one submission (the records of one id; added again, it replaces the earlier one)
        and return its listed pairs: one LSH query per variant, then only the proposed pairs scored."""
        return self.pairs(involving=self.insert(records))

    def insert(self, records: Sequence[Record], fingerprints: Mapping[str, Fingerprint | None] | None = None) -> str:
        """`add` without scoring (for a batch, scored once at the end); the submission's id.
        `fingerprints` (by variant): stored ones; each of this configuration's `key` is used as it
        is, the others are worked out from the text."""
        ids = {r.id for r in records}
        if len(ids) != 1:
            raise ValueError(f"a submission is the records of one id, got ids {sorted(ids)}")
        sub_id = ids.pop()
        self._remove(sub_id)
        docs = self._docs.setdefault(sub_id, {})
        for record in records:
            if record.variant == ALL:
                raise ValueError(f"{record.id}: '{ALL}' is not a variant name")
            doc = self._doc(record, (fingerprints or {}).get(record.variant))
            if doc is None:
                continue
            docs[record.variant] = doc
            self._files[record.variant] += 1
            self._df.setdefault(record.variant, Counter()).update(doc.shingles)
            if doc.shingles:
                if record.variant not in self._lsh:  # built once per variant: its parameter search takes ~30 ms
                    self._lsh[record.variant] = MinHashLSH(self.config.threshold / 2, NUM_PERM, weights=LSH_WEIGHTS)
                lsh = self._lsh[record.variant]
                for other in lsh.query(doc.signature):
                    self._proposed.setdefault(sub_id, set()).add(other)
                    self._proposed.setdefault(other, set()).add(sub_id)
                lsh.insert(sub_id, doc.signature)
        return sub_id

    def pairs(self, involving: str | None = None, exhaustive: bool = False, regions: bool = True) -> list[Pair]:
        """The pairs worth a look (a score of at least half the threshold), highest first: per
        variant, and `all` over the variants together. The others are not listed. `regions=False`:
        without their matched lines, which parse the files of stored fingerprints (a listing)."""
        if exhaustive:
            keys = [k for k in itertools.combinations(sorted(self._docs), 2) if involving in (None, *k)]
        elif involving is not None:  # a new submission: its proposed pairs only, at most n - 1
            keys = sorted(_key(involving, other) for other in self._proposed.get(involving, ()))
        else:
            keys = sorted({_key(a, b) for a, others in self._proposed.items() for b in others})
        weights = {v: self._weights(v) for v in self._df}
        listed = self.config.threshold / 2
        found = [p for a, b in keys for p in self._score(a, b, weights, regions) if p.score >= listed]
        return sorted(found, key=lambda p: (-p.score, p.a, p.b, p.variant != ALL, p.variant))

    @property
    def proposed(self) -> int:
        """Pairs of submissions the LSH index proposed for scoring (the rest are never compared)."""
        return sum(len(others) for others in self._proposed.values()) // 2

    def compare_pair(self, a: str, b: str) -> list[Pair]:
        """Every score of two submissions already added, listed or not (e.g. to show one pair)."""
        return self._score(*_key(a, b), {v: self._weights(v) for v in self._df})

    @property
    def key(self) -> str:
        """The configuration key fingerprints made by this index carry."""
        if self._key is None:
            self._key = config_key(self.config)
        return self._key

    def fingerprint(self, record: Record) -> Fingerprint | None:
        """The file's fingerprint, to store (None: BuildKit's parser refuses the file)."""
        doc = self._doc(record, None, note=False)
        if doc is None:
            return None
        return Fingerprint(self.key, tuple(sorted(doc.shingles)), tuple(int(v) for v in doc.signature.hashvalues))

    def _doc(self, record: Record, stored: Fingerprint | None, note: bool = True) -> _Doc | None:
        if stored is not None and stored.key == self.key:
            # Lean: no permutations to generate, which is most of a MinHash's construction
            signature = LeanMinHash(seed=SEED, hashvalues=np.array(stored.signature, dtype=np.uint32), scheme=SCHEME)
            return _Doc(record, frozenset(stored.shingles), signature, self._evidence)
        try:
            norm = normalise(record.text, record.path or record.variant)
        except SubmissionError as exc:
            if note:
                self.skipped.append((record, str(exc)))
            return None
        return _Doc.parsed(record, norm, self._evidence)

    def _evidence(self, unit: Unit) -> frozenset[str]:
        if unit.abstract_only or self.config.prescribed(unit.text):
            return frozenset()
        return unit.shingles - self.base

    def _remove(self, sub_id: str) -> None:
        for variant, doc in self._docs.pop(sub_id, {}).items():
            self._df[variant].subtract(doc.shingles)
            self._files[variant] -= 1
            if sub_id in self._lsh.get(variant, ()):
                self._lsh[variant].remove(sub_id)
        for other in self._proposed.pop(sub_id, set()):
            self._proposed[other].discard(sub_id)
        self.skipped = [(r, why) for r, why in self.skipped if r.id != sub_id]

    def _weights(self, variant: str) -> _Weights:
        """A shingle's weight is its smoothed inverse document frequency among this variant's files:
        a line written by two students weighs about ln(n/3)+1, one that half the course wrote about
        1.7, one everyone wrote 1. Unlike a hard cut-off (MOSS's -m), a copy made of popular lines
        still scores high, while two honest files sharing only popular lines score low."""
        files = self._files[variant]
        return _Weights({s: math.log((1 + files) / (1 + n)) + 1 for s, n in self._df[variant].items() if n > 0},
                        math.log((1 + files) / 3) + 1)

    def _score(self, a: str, b: str, weights: dict[str, _Weights], regions: bool = True) -> list[Pair]:
        """Per variant: the weight of the shingles the two files share over the weight of all their
        shingles (weighted Jaccard), the denominator at least `min_evidence` shingles found in these
        two files only. Overall (`all`): the mean over the variants either submitted (one missing
        counts 0), so a copy of one variant of three scores at most a third overall."""
        scored: list[tuple[str, float, _Doc, _Doc, frozenset[str]]] = []
        variants = sorted(set(self._docs[a]) | set(self._docs[b]))
        for variant in variants:
            da, db = self._docs[a].get(variant), self._docs[b].get(variant)
            if da is None or db is None or not da.shingles & db.shingles:
                continue
            shared, w = da.shingles & db.shingles, weights[variant]
            common = w.total(shared)
            union = w.file_total(da.shingles) + w.file_total(db.shingles) - common
            score = min(1.0, common / max(union, self.config.min_evidence * w.two_files))
            scored.append((variant, score, da, db, shared))
        if not scored:
            return []
        overall = sum(score for _, score, *_ in scored) / len(variants)
        listed = self.config.threshold / 2  # regions are worked out only for pairs that will be shown
        pairs = [Pair(a, b, v, score, score >= self.config.threshold,
                      _regions(da, db, shared) if regions and max(score, overall) >= listed else (),
                      da.record.timestamp, db.record.timestamp) for v, score, da, db, shared in scored]
        times_a = [t for p in pairs if (t := p.a_time) is not None]
        times_b = [t for p in pairs if (t := p.b_time) is not None]
        return [*pairs, Pair(a, b, ALL, overall, overall >= self.config.threshold,
                             tuple(r for p in pairs for r in p.regions), min(times_a, default=None),
                             min(times_b, default=None))]


def compare(records: Iterable[Record], config: Config, *, exhaustive: bool = False) -> tuple[list[Pair], Index]:
    """Every submission's records added to a fresh index; its pairs, and the index (for `skipped`)."""
    index = Index(config)
    by_id: dict[str, list[Record]] = {}
    for record in records:
        by_id.setdefault(record.id, []).append(record)
    for group in by_id.values():
        index.insert(group)
    return index.pairs(exhaustive=exhaustive), index


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


def _minhash(shingles: frozenset[str]) -> MinHash:
    signature = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)
    signature.update_batch(s.encode() for s in sorted(shingles))
    return signature


def _regions(da: _Doc, db: _Doc, shared: frozenset[str]) -> tuple[Region, ...]:
    """Matching lines: each unit of a holding shared evidence, with the unit of b holding most of it
    (ties: one not taken yet, then the one at the nearest relative position); matches that follow
    each other on both sides (skeleton in between does not break a run) become one region."""
    a_units = [(u, ev & shared) for u, ev in zip(da.norm.units, da.evidence, strict=True) if ev & shared]
    b_units = [(u, ev & shared) for u, ev in zip(db.norm.units, db.evidence, strict=True) if ev & shared]
    holding: dict[str, list[int]] = {}  # shingle -> the b units holding it
    for j, (_, theirs) in enumerate(b_units):
        for shingle in theirs:
            holding.setdefault(shingle, []).append(j)
    taken: set[int] = set()
    runs: list[list[tuple[Unit, Unit, int]]] = []  # each: matched (a unit, b unit, b rank), consecutive
    for rank, (unit, mine) in enumerate(a_units):
        def fit(j: int, mine: frozenset[str] = mine, rank: int = rank) -> tuple[int, bool, float]:
            return len(b_units[j][1] & mine), j not in taken, -abs(j / len(b_units) - rank / len(a_units))
        j = max({j for shingle in mine for j in holding[shingle]}, key=fit)
        taken.add(j)
        last = runs[-1][-1] if runs else None
        if last is not None and last[0] is a_units[rank - 1][0] and j in (last[2], last[2] + 1):
            runs[-1].append((unit, b_units[j][0], j))
        else:
            runs.append([(unit, b_units[j][0], j)])
    return tuple(_region(da, db, run) for run in runs)


def _region(da: _Doc, db: _Doc, run: list[tuple[Unit, Unit, int]]) -> Region:
    a_first, a_last = min(u.line for u, _, _ in run), max(u.end_line for u, _, _ in run)
    b_first, b_last = min(u.line for _, u, _ in run), max(u.end_line for _, u, _ in run)
    return Region(da.record.path or da.norm.path, (a_first, a_last), da.norm.excerpt(a_first, a_last),
                  db.record.path or db.norm.path, (b_first, b_last), db.norm.excerpt(b_first, b_last))
