"""The instructor's similarity pages: `/similarity` lists the flagged pairs of the course (from the
store: each project's latest graded submission, GRADER_GROUPS' groups or every project), and
`/similarity/<a>/<b>` (submission ids) shows both students' Dockerfiles side by side, matched
regions highlighted and numbered alike on both sides, with links to both reports.

Same authentication as the scoreboard (grader/pages.py: bearer GRADER_INSTRUCTOR_TOKEN or the
signed-in session). Server-rendered; no script; the highlighting is `<mark>` and a stylesheet of
this module's own (`/similarity.css`: the CSP allows styles from this site only). Every student's
text reaches the page through Jinja's autoescaping; every word of the page is the catalogue's
(checks/messages/pages.toml, `similarity_*`), scores and dates written as the other pages write them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from grader import assignment as assignment_mod
from grader.errors import ConfigError
from grader.history import when
from grader.html import render
from grader.similarity import stored
from grader.similarity.config import Config, load_config
from grader.similarity.index import ALL, Pair, Region
from grader.store import ComparedSubmission

if TYPE_CHECKING:
    from grader.pages import Pages

CSS = """
table.sim { width: 100%; font-size: .95rem; }
table.sim td, table.sim th { padding: .2rem .5rem; text-align: left; vertical-align: top; }
table.side { width: 100%; table-layout: fixed; }
table.side > tbody > tr > td { width: 50%; vertical-align: top; padding: 0 .4rem; }
table.file { width: 100%; font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: .85em; }
table.file td { padding: 0 .3rem; white-space: pre-wrap; overflow-wrap: anywhere; vertical-align: top; }
table.file td.ln, table.file td.rg { color: #777; text-align: right; width: 2.5em; white-space: nowrap; }
table.file tr.match td.code { background: #fff3b0; }
mark { background: #ffe066; color: inherit; }
.flagged { font-weight: bold; }
"""


@dataclass(frozen=True)
class Row:
    """Two students of the listing: their overall pair, and the variants worth a look."""

    a: ComparedSubmission
    b: ComparedSubmission
    overall: Pair | None
    variants: tuple[Pair, ...]  # flagged ones (every listed one with ?all=1), highest first


@dataclass(frozen=True)
class Line:
    number: int
    text: str
    region: int | None  # the matched region it belongs to (1-based, the same number on both sides)


@dataclass(frozen=True)
class Side:
    sub: ComparedSubmission
    path: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class VariantView:
    variant: str
    score: float | None  # None: the two files share nothing that counts
    flagged: bool
    a: Side | None
    b: Side | None


class SimilarityPages:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages
        r = self.router = APIRouter()
        r.add_api_route("/similarity.css", self.css, methods=["GET"], include_in_schema=False)
        r.add_api_route("/similarity", self.listing, methods=["GET"], include_in_schema=False)
        r.add_api_route("/similarity/{a}/{b}", self.pair, methods=["GET"], include_in_schema=False)

    def _config(self) -> Config:
        return load_config(assignment_mod.load(self.pages.settings.assignment_file))

    def _html(self, template: str, status: int = 200, **context: object) -> HTMLResponse:
        return HTMLResponse(render(template, lang=self.pages.lang, instructor=True, when=when, **context),
                            status_code=status)

    def _problem(self, status: int, message: str) -> HTMLResponse:
        return self._html("similarity.html", status, problem=message, rows=[], threshold=0.0, shown_all=False)

    def css(self) -> Response:
        return Response(CSS, media_type="text/css", headers={"cache-control": "public, max-age=3600"})

    def listing(self, request: Request, all: bool = False) -> Response:
        """The pairs of the course above the threshold, highest first (`?all=1`: every listed one)."""
        if not self.pages.instructor(request):
            return self.pages._refuse(request, html=True)
        try:
            config = self._config()
        except ConfigError as exc:
            return self._problem(500, self.pages.w("similarity_not_configured", error=str(exc)))
        index, subs = stored.load(self.pages.store, config, self.pages.settings.groups)
        pairs = index.pairs(regions=False)  # a listing shows no lines: no file is parsed
        return self._html("similarity.html", rows=_rows(pairs, subs, all), threshold=config.threshold,
                          problem=None, shown_all=all)

    def pair(self, a: str, b: str, request: Request) -> Response:
        """Both students' Dockerfiles, variant by variant, matched regions highlighted."""
        if not self.pages.instructor(request):
            return self.pages._refuse(request, html=True)
        if not all(x.isascii() and x.isdigit() for x in (a, b)):  # "²" is a digit int() refuses
            return self._problem(404, self.pages.w("similarity_bad_ids"))
        try:
            config = self._config()
        except ConfigError as exc:
            return self._problem(500, self.pages.w("similarity_not_configured", error=str(exc)))
        index, subs = stored.load(self.pages.store, config, self.pages.settings.groups)
        by_id = {s.id: s for s in subs.values()}
        sub_a, sub_b = by_id.get(int(a)), by_id.get(int(b))
        if sub_a is None or sub_b is None or sub_a is sub_b:
            return self._problem(404, self.pages.w("similarity_no_pair"))
        pairs = {p.variant: p for p in index.compare_pair(sub_a.project_path, sub_b.project_path)}
        if pairs and pairs[ALL].a != sub_a.project_path:  # the index orders a pair by id: show it as asked
            pairs = {v: _swapped(p) for v, p in pairs.items()}
        variants = sorted({d.variant for d in (*sub_a.dockerfiles, *sub_b.dockerfiles)})
        views = [_view(v, pairs.get(v), sub_a, sub_b) for v in variants]
        overall = pairs.get(ALL)
        return self._html("similarity_pair.html", a=sub_a, b=sub_b, views=views, overall=overall,
                          threshold=config.threshold)


def _rows(pairs: list[Pair], subs: dict[str, ComparedSubmission], everything: bool) -> list[Row]:
    """One row per two students with a flagged score (any listed one with `everything`), highest first."""
    by_two: dict[tuple[str, str], list[Pair]] = {}
    for p in pairs:  # highest first already
        by_two.setdefault((p.a, p.b), []).append(p)
    rows = []
    for (a, b), found in by_two.items():
        shown = tuple(p for p in found if p.variant != ALL and (p.flagged or everything))
        overall = next((p for p in found if p.variant == ALL), None)
        if shown or (overall is not None and (overall.flagged or everything)):
            rows.append(Row(subs[a], subs[b], overall, shown))
    return sorted(rows, key=lambda r: -max([p.score for p in r.variants] + [r.overall.score if r.overall else 0]))


def _swapped(p: Pair) -> Pair:
    regions = tuple(Region(r.b_path, r.b_lines, r.b_text, r.a_path, r.a_lines, r.a_text) for r in p.regions)
    return replace(p, a=p.b, b=p.a, a_time=p.b_time, b_time=p.a_time, regions=regions)


def _view(variant: str, pair: Pair | None, a: ComparedSubmission, b: ComparedSubmission) -> VariantView:
    regions = pair.regions if pair is not None else ()
    return VariantView(variant, pair.score if pair else None, bool(pair and pair.flagged),
                       _side(a, variant, [r.a_lines for r in regions]), _side(b, variant, [r.b_lines for r in regions]))


def _side(sub: ComparedSubmission, variant: str, ranges: list[tuple[int, int]]) -> Side | None:
    """One file's lines, each with the number of the first matched region holding it."""
    file = next((d for d in sub.dockerfiles if d.variant == variant), None)
    if file is None:
        return None
    lines = []
    for n, text in enumerate(file.text.removeprefix("\ufeff").split("\n"), start=1):
        region = next((i for i, (first, last) in enumerate(ranges, start=1) if first <= n <= last), None)
        lines.append(Line(n, text.removesuffix("\r"), region))
    if lines and not lines[-1].text and len(lines) > 1:  # the file's final newline is not a line
        lines.pop()
    return Side(sub, file.path, tuple(lines))
