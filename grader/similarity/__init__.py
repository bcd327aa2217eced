"""Similarity between students' Dockerfiles, the course's skeleton discounted (issue 17).

    records -> normalise (units, shingles) -> Index (evidence, LSH candidates, exact scores) -> Pair

`compare(records, config)` is the pure function others call; `Index.add` takes one submission
at a time against everything added before. `Index.fingerprint` is what a grading stores with the
submission, and `grader.similarity.stored` compares a course from the store with it.
"""

from grader.similarity.config import Config, load_config
from grader.similarity.index import ALL, Fingerprint, Index, Pair, Record, Region, compare
from grader.similarity.normalise import Normalised, Unit, normalise

__all__ = ["ALL", "Config", "Fingerprint", "Index", "Normalised", "Pair", "Record", "Region", "Unit", "compare",
           "load_config", "normalise"]
