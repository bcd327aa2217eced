"""A similarity report as JSON (the contract: `{"pairs": [{"a", "b", "variant", "score", "flagged",
"regions"}]}`, extend, don't break), CSV (one row per pair) or text (top pairs, matching lines
side by side)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime

from grader.similarity.index import Pair, Region

WIDTH = 58  # characters per side of a side-by-side excerpt
MAX_REGIONS = 6  # per pair in text; JSON and CSV carry them all
ADVICE = ("A high score is a reason to look, not a verdict: read the matching lines side by side and "
          "the time order (docs/operating.md, 'Reading a similarity report').")


def to_json(pairs: Sequence[Pair], threshold: float, skipped: Sequence[str] = ()) -> str:
    # One line: with `indent` json falls back to its pure-Python encoder, ten times slower on a
    # course's thousands of pairs (`| python -m json.tool` to read it).
    return json.dumps({"threshold": threshold, "pairs": [_pair_dict(p) for p in pairs], "skipped": list(skipped)},
                      ensure_ascii=False) + "\n"


def to_csv(pairs: Sequence[Pair]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["a", "b", "variant", "score", "flagged", "first", "a_time", "b_time", "regions", "a_lines",
                     "b_lines"])
    for p in pairs:
        writer.writerow([p.a, p.b, p.variant, f"{p.score:.3f}", int(p.flagged), p.first or "", _iso(p.a_time),
                         _iso(p.b_time), len(p.regions), " ".join(_where(r.a_path, r.a_lines) for r in p.regions),
                         " ".join(_where(r.b_path, r.b_lines) for r in p.regions)])
    return out.getvalue()


def to_text(pairs: Sequence[Pair], threshold: float, top: int, skipped: Sequence[str] = ()) -> str:
    flagged = sum(p.flagged for p in pairs)
    lines = [f"{flagged} of {len(pairs)} listed pair(s) flagged (score at least {threshold:.2f}; pairs under "
             f"{threshold / 2:.2f} are not listed); showing the top {min(top, len(pairs))}.", ADVICE, ""]
    for p in pairs[:top]:
        lines.extend(_pair_text(p))
    lines.extend(f"skipped: {s}" for s in skipped)
    return "\n".join(lines).rstrip("\n") + "\n"


def _pair_dict(p: Pair) -> dict[str, object]:
    return {"a": p.a, "b": p.b, "variant": p.variant, "score": round(p.score, 4), "flagged": p.flagged,
            "first": p.first, "a_time": _iso(p.a_time) or None, "b_time": _iso(p.b_time) or None,
            "regions": [_region_dict(r) for r in p.regions]}


def _region_dict(r: Region) -> dict[str, object]:
    return {"a_path": r.a_path, "a_lines": list(r.a_lines), "a_text": r.a_text,
            "b_path": r.b_path, "b_lines": list(r.b_lines), "b_text": r.b_text}


def _pair_text(p: Pair) -> list[str]:
    mark = "FLAGGED" if p.flagged else "       "
    order = (f"first: {p.first} ({_human(p.a_time)} vs {_human(p.b_time)})" if p.first
             else f"time order unknown ({_human(p.a_time)} vs {_human(p.b_time)})")
    lines = [f"{p.score:5.2f}  {mark}  {p.variant:<10}  {p.a}  <->  {p.b}", f"       {order}"]
    for region in p.regions[:MAX_REGIONS]:
        lines.extend(_side_by_side(region))
    if len(p.regions) > MAX_REGIONS:
        lines.append(f"       ... and {len(p.regions) - MAX_REGIONS} more matching region(s) (--format json)")
    return [*lines, ""]


def _side_by_side(r: Region) -> list[str]:
    left, right = r.a_text.splitlines(), r.b_text.splitlines()
    rows = [f"       {_where(r.a_path, r.a_lines):<{WIDTH}} | {_where(r.b_path, r.b_lines)}"]
    for i in range(max(len(left), len(right))):
        a = _cut(left[i]) if i < len(left) else ""
        b = _cut(right[i]) if i < len(right) else ""
        rows.append(f"         {a:<{WIDTH - 2}} |   {b}".rstrip())
    return rows


def _where(path: str, lines: tuple[int, int]) -> str:
    return f"{path}:{lines[0]}" if lines[0] == lines[1] else f"{path}:{lines[0]}-{lines[1]}"


def _cut(text: str) -> str:
    text = text.rstrip()
    return text if len(text) <= WIDTH - 2 else text[:WIDTH - 5] + "..."


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _human(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip() if moment else "?"
