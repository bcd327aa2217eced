"""The HTML renderer: Jinja2 templates (grader/templates/) over the same digest as the Markdown and
text reports, and the stylesheet they share (grader/static/grader.css).

Everything a student controls (file names, branch names, Dockerfile lines, probe bodies) reaches a
page only through Jinja's autoescaping; catalogue sentences may hold `code` spans, rendered by
markdown-it-py with every rule off but backticks (no HTML, links, images or emphasis), so a
sentence with a student's `<script>` in it is text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from grader.digest import MARK, Digest
from grader.messages import number, text

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@lru_cache(maxsize=1)
def _inline() -> MarkdownIt:
    return MarkdownIt("zero").enable("backticks")


def inline(sentence: str) -> Markup:
    """A catalogue sentence as HTML: its `code` spans as <code>, everything else escaped."""
    return Markup(_inline().renderInline(sentence))  # noqa: S704 - markdown-it escapes all but code spans


def sentence(s: str) -> str:
    """`s` with a capital first letter. The digest drops a message's "Line N:" once the file link
    carries the line, leaving "финальный этап …", which reads as a fragment where the message
    stands on its own line (the page); the Markdown keeps it after a dash, where lower case is right."""
    return s[0].upper() + s[1:] if s and s[0].islower() else s


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["inline"] = inline
    env.filters["sentence"] = sentence
    env.globals["MARK"] = MARK
    return env


class Words:
    """The pages' words in one language (checks/messages/pages.toml and report.toml): `w('key')`."""

    def __init__(self, lang: str) -> None:
        self.lang = lang

    def __call__(self, key: str, **params: object) -> str:
        return text("pages", key, self.lang, **params)

    def report(self, key: str, **params: object) -> str:
        return text("report", key, self.lang, **params)

    def state(self, state: str) -> str:
        return text("pages", f"state_{state}", self.lang)

    def num(self, x: float | None) -> str:
        return number(x, self.lang) if x is not None else "—"

    def pct(self, share: float) -> str:
        return f"{number(round(100 * share), self.lang)} %"


def render(template: str, *, lang: str, **context: object) -> str:
    return environment().get_template(template).render(w=Words(lang), lang=lang, **context)


def render_report(d: Digest, **context: object) -> str:
    """The report page of one graded submission."""
    from grader.report import REPRODUCE, evidence_lines, provenance_parts, summary_parts, where

    return render("report.html", lang=d.lang, d=d, summary=summary_parts(d), where=lambda item: where(d, item),
                  evidence=lambda item: evidence_lines(d, item), provenance=provenance_parts(d),
                  reproduce=REPRODUCE, **context)


def stylesheet() -> str:
    return (STATIC / "grader.css").read_text(encoding="utf-8")


def script() -> str:
    return (STATIC / "refresh.js").read_text(encoding="utf-8")


def icon() -> bytes:
    return (STATIC / "favicon.svg").read_bytes()
