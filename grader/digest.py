"""What a report says first, for people: one model that the Markdown (GitLab), text (terminal) and
HTML (report page) renderers share, and the commit-status line.

A report (grader.report/1) lists every check of every variant in rubric order. A student wants the
opposite order: what costs points, once per cause — a base image wrong in all three files is one
fix with three file links, not three rows in three tables — then advice, then what passed. Merging
is by check, status and message (the message without its leading "Line N:", which differs between
files): the same sentence means the same cause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import quote

from grader.messages import number, text

STATUS_LIMIT = 255  # GitLab refuses a longer commit-status description
MARK = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "–"}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-ZА-ЯЁ])")


@dataclass(frozen=True)
class Location:
    """A file reference: `path:line`, linked to the commit's blob when the report knows the project."""

    variant: str | None
    path: str
    line: int | None
    url: str | None

    @property
    def label(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass
class Item:
    """One fix (a failed check) or one piece of advice (a warning), merged across variants."""

    check_id: str
    title: str
    status: str  # fail | warn
    message: str  # without the leading "Line N:" once it stands for several files
    variants: list[str] = field(default_factory=list)
    locations: list[Location] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)  # {kind, text, line, path}


@dataclass(frozen=True)
class VariantLine:
    name: str
    title: str
    score: float
    max_score: float
    counts: bool
    failed: int
    dockerfile: str | None
    passed: tuple[str, ...]  # titles of the checks that passed
    skipped: tuple[str, ...]


WAIT_SHOWN_S = 0.5


@dataclass(frozen=True)
class SizeRow:
    name: str
    size_bytes: int | None
    layers: int | None
    percent: int  # of the largest image, for the bars of the page
    build_seconds: float | None = None
    waited_s: float | None = None  # for a free build slot before it started


@dataclass(frozen=True)
class GlobalLine:
    title: str
    status: str
    points: float
    max_points: float


@dataclass
class Digest:
    lang: str
    title: str
    score: float
    max_score: float
    variants: list[VariantLine]
    fixes: list[Item]
    advice: list[Item]
    notes: list[str]
    passed_global: list[str]
    global_checks: list[GlobalLine]
    sizes: list[SizeRow]
    provenance: dict
    grader_version: str
    assignment: str
    error: str | None

    @property
    def full(self) -> bool:
        return self.error is None and self.score >= self.max_score

    @property
    def passed_count(self) -> int:
        return sum(len(v.passed) for v in self.variants) + len(self.passed_global)

    @property
    def skipped_count(self) -> int:
        return sum(len(v.skipped) for v in self.variants)

    def t(self, key: str, **params: object) -> str:
        return text("report", key, self.lang, **params)

    def num(self, x: float | None) -> str:
        return number(x, self.lang) if x is not None else "—"

    def pts(self, score: float, max_score: float) -> str:
        return f"{number(score, self.lang)}/{number(max_score, self.lang)}"

    def size(self, size: int | None) -> str:
        # Decimal megabytes, as `docker images` shows them.
        return self.t("megabytes", value=round(size / 1e6)) if size is not None else "—"

    def build_time(self, s: SizeRow) -> str:
        """How long the variant built, and that it first waited for a free build slot (half a second
        or more: less is the thread pool starting up)."""
        if s.build_seconds is None:
            return "—"
        if s.waited_s is not None and s.waited_s >= WAIT_SHOWN_S:
            return self.t("build_waited", seconds=self.seconds(s.build_seconds), wait=self.seconds(s.waited_s))
        return self.seconds(s.build_seconds)

    def seconds(self, x: float | None) -> str:
        return self.t("seconds", value=round(x, 1)) if x is not None else "—"


def digest(report: dict) -> Digest:
    lang = report.get("language") or "ru"
    prov = report.get("provenance") or {}
    fixes: dict[tuple, Item] = {}
    advice: dict[tuple, Item] = {}
    variants = []
    for v in report.get("variants", []):
        for c in v["checks"]:
            if c["status"] in ("fail", "warn"):
                _merge(fixes if c["status"] == "fail" else advice, c, v, prov, lang)
        variants.append(VariantLine(
            v["name"], v.get("title") or v["name"], v["score"], v["max_score"], v["score"] >= v["max_score"],
            sum(c["status"] == "fail" for c in v["checks"]), v.get("dockerfile"),
            tuple(c["title"] for c in v["checks"] if c["status"] == "pass"),
            tuple(c["title"] for c in v["checks"] if c["status"] == "skip")))
    for c in report.get("checks", []):
        if c["status"] in ("fail", "warn"):
            _merge(fixes if c["status"] == "fail" else advice, c, None, prov, lang)
    largest = max((v.get("image_size_bytes") or 0 for v in report.get("variants", [])), default=0)
    sizes = [SizeRow(v["name"], v.get("image_size_bytes"), v.get("layer_count"),
                     round(100 * (v.get("image_size_bytes") or 0) / largest) if largest else 0,
                     v.get("build_seconds"), v.get("build_waited_s"))
             for v in report.get("variants", [])]
    return Digest(lang=lang, title=report.get("assignment_title") or report.get("assignment") or "",
                  score=report.get("score", 0.0), max_score=report.get("max_score", 0.0), variants=variants,
                  fixes=list(fixes.values()), advice=list(advice.values()), notes=list(report.get("notes", [])),
                  passed_global=[c["title"] for c in report.get("checks", []) if c["status"] == "pass"],
                  global_checks=[GlobalLine(c["title"], c["status"], c["points"], c["max_points"])
                                 for c in report.get("checks", []) if c.get("max_points")],
                  sizes=sizes, provenance=prov, grader_version=report.get("grader_version", ""),
                  assignment=report.get("assignment", ""), error=report.get("error"))


def _line_prefix(lang: str) -> re.Pattern[str]:
    # The catalogue opens a sentence about one line with "Line N: " ("Строка N: ").
    return re.compile(rf"^{re.escape(text('report', 'line_word', lang))} (\d+): ")


def _merge(into: dict[tuple, Item], c: dict, v: dict | None, prov: dict, lang: str) -> None:
    prefix = _line_prefix(lang)
    found = prefix.match(c["message"])
    bare = prefix.sub("", c["message"])
    key = (c["id"], c["status"], c.get("reason"), bare)
    path = v.get("dockerfile") if v else None
    item = into.get(key)
    if item is None:
        # The file reference carries the line, so the sentence drops its "Line N:".
        item = into[key] = Item(c["id"], c["title"], c["status"], bare if found and path else c["message"])
    if v is not None and v["name"] not in item.variants:
        item.variants.append(v["name"])
    line = next((e["line"] for e in c["evidence"] if e.get("kind") == "dockerfile" and e.get("line")), None)
    if line is None and found:
        line = int(found.group(1))
    if path:
        loc = Location(v["name"] if v else None, path, line, blob_url(prov, path, line))
        if loc not in item.locations:
            item.locations.append(loc)
    for e in c["evidence"]:
        entry = {"kind": e["kind"], "text": e["text"], "line": e.get("line"), "path": path}
        if not any((x["kind"], x["text"], x["line"]) == (e["kind"], e["text"], e.get("line")) for x in item.evidence):
            item.evidence.append(entry)


def blob_url(prov: dict, path: str, line: int | None) -> str | None:
    """The commit's blob of `path` at `line` on GitLab, when the report knows the project and commit."""
    base, sha = prov.get("project_url"), prov.get("sha")
    if not base or not sha:
        return None
    return f"{base.rstrip('/')}/-/blob/{sha}/{quote(path)}" + (f"#L{line}" if line else "")


# -- the commit status --------------------------------------------------------------------------


def status_description(report: dict, *, late: bool = False) -> str:
    """What the commit says beside its status: the score and what failed, in the report's language,
    within GitLab's 255 characters: `2/5 · не засчитано: multistage, nonroot — <the first cause>`."""
    d = digest(report)
    parts = [d.pts(d.score, d.max_score)]
    if late or d.provenance.get("late"):
        parts.append(text("status", "late", d.lang))
    if d.error:
        parts.append(text("status", "refused", d.lang, error=d.error))
    elif d.full:
        parts.append(text("status", "full", d.lang))
    else:
        names = [v.name for v in d.variants if not v.counts] + [_sentence_start(i.title) for i in d.fixes
                                                                 if not i.variants]
        head = text("status", "not_counted", d.lang, names=", ".join(names))
        if d.fixes:
            # The first sentence says what is wrong; the rest (how to fix it) is on the page.
            first = _SENTENCE_END.split(_line_prefix(d.lang).sub("", d.fixes[0].message), maxsplit=1)[0]
            cause = _sentence_start(first).replace("`", "")
            key = "one_cause" if len(d.fixes) == 1 else "first_cause"
            head += text("status", key, d.lang, count=len(d.fixes), cause=cause)
        parts.append(head)
    return clip(" · ".join(parts))


def state_description(state: str, lang: str, *, late: bool = False, sha: str | None = None) -> str:
    """The status line of a submission that has no grade yet: queued, running, superseded, ungradable."""
    line = text("status", state, lang, sha=(sha or "")[:8])
    return clip(line + (" · " + text("status", "late", lang) if late else ""))


def clip(line: str, limit: int = STATUS_LIMIT) -> str:
    return line if len(line) <= limit else line[:limit - 1].rstrip() + "…"


def _sentence_start(s: str) -> str:
    # "Финальный этап …" reads as a clause after a dash in lower case; "HTTP …" keeps its capitals.
    return s[0].lower() + s[1:] if len(s) > 1 and s[0].isupper() and s[1].islower() else s
