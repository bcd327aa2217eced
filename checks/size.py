"""The size comparison of the three images (the rubric's last half point)."""

from __future__ import annotations

from checks import Evidence, Outcome, failed, global_check, passed
from grader.assignment import Assignment
from grader.facts import SubmissionFacts


@global_check("size_comparison", reads=("variants", "image"), reasons=("missing", "not_smaller", "ok"))
def size_comparison(s: SubmissionFacts, a: Assignment) -> Outcome:
    sizes = {name: v.image.size_bytes for name, v in s.variants.items() if v.image is not None}
    missing = [v.name for v in a.variants if v.name not in sizes]
    if missing:
        return failed("missing", names=", ".join(missing))
    table = Evidence("observed", ", ".join(f"{n}: {_mb(b)} MB" for n, b in sizes.items()))
    # The rubric lists the single-stage baseline first; multi-stage builds must beat it.
    baseline = a.variants[0].name
    bigger = [n for n, b in sizes.items() if n != baseline and b >= sizes[baseline]]
    if bigger:
        return failed("not_smaller", (table,), names=", ".join(bigger), baseline=baseline)
    return passed("ok", (table,))


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f}"
