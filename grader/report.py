"""Renders a scored grading as JSON (the contract), plain text (terminals, CI job logs) or Markdown
(the GitLab comment). Both texts lead with what to fix (grader/digest.py decides the order); every
word comes from the catalogue (checks/messages/report.toml). The HTML page is grader/html.py's.
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, datetime

import grader
from grader.assignment import Assignment
from grader.digest import MARK, Digest, Item, digest
from grader.facts import SubmissionFacts
from grader.messages import message, note, title
from grader.report_model import SCHEMA, Provenance, validate
from grader.scoring import CheckResult, Scored, VariantScore

REPRODUCE = "grader check ."
INLINE_EVIDENCE_LINES = 8  # longer evidence (build logs) is collapsed in the comment


def to_json(facts: SubmissionFacts, scored: Scored, assignment: Assignment, lang: str) -> dict:
    """The report as JSON data, checked against the contract (grader/report_model.py) before it
    leaves: a report that breaks it is our bug, caught here rather than by a client."""
    report = {
        "schema": SCHEMA,
        "grader_version": grader.__version__,
        "assignment": assignment.id,
        "language": lang,
        "score": scored.score,
        "max_score": scored.max_score,
        "variants": [_variant_json(v, assignment, lang) for v in scored.variants],
        "checks": [_check_json(c, lang) for c in scored.checks],
        "notes": [note(n, lang) for n in facts.discovery_notes],
        "assignment_title": assignment.title.get(lang) or assignment.id,
    }
    validate(report)
    return report


def _variant_json(v: VariantScore, assignment: Assignment, lang: str) -> dict:
    f = v.facts
    return {
        "name": v.name,
        "title": assignment.variant(v.name).title[lang],
        "dockerfile": f.dockerfile_path,
        "found_by": f.found_by,
        "context": "reference" if f.context_is_reference else "submission",
        "built": bool(f.build and f.build.succeeded),
        "build_seconds": round(f.build.seconds, 2) if f.build else None,
        # when it started after the variants were sent to build, and how much of that was waiting
        # for a free build slot (builds run GRADER_PARALLEL_BUILDS at a time; BuildKit shares their steps)
        "build_started_s": f.build.started_s if f.build else None,
        "build_waited_s": f.build.waited_s if f.build and f.build.started_s is not None else None,
        "image_id": f.image.image_id if f.image else None,
        "image_size_bytes": f.image.size_bytes if f.image else None,
        "layer_count": f.image.layer_count if f.image else None,
        "stage_count": len(f.parsed.stages) if f.parsed else None,
        "runtime_uid": f.runtime.uid if f.runtime else None,
        "ready_seconds": _round(f.runtime.ready_seconds) if f.runtime else None,
        "stop_seconds": _round(f.runtime.stop_seconds) if f.runtime else None,
        "probes": [
            {"method": p.method, "path": p.path, "status": p.status, "body": p.body, "passed": p.passed}
            for p in (f.runtime.probes if f.runtime else [])
        ],
        "checks": [_check_json(c, lang) for c in v.checks],
        "score": v.score,
        "max_score": v.max_score,
    }


def _round(x: float | None) -> float | None:
    return round(x, 2) if x is not None else None


def _check_json(c: CheckResult, lang: str) -> dict:
    return {
        "id": c.id,
        "title": title(c.id, lang),
        "status": c.status,
        "reason": c.outcome.reason,
        "points": c.points,
        "max_points": c.max_points,
        "required": c.required,
        "message": message(c.id, c.outcome, lang),
        "evidence": [e.to_json() for e in c.outcome.evidence],
    }


def with_provenance(report: dict, **provenance: object) -> dict:
    """The report with where it comes from (commit, project URL, times, lateness); the provenance is
    checked against the contract (the report was, when it was made)."""
    given = {k: v for k, v in provenance.items() if v is not None}
    Provenance.model_validate(given)
    return dict(report, provenance=given)


def render_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


# -- shared pieces --------------------------------------------------------------------------------
_CODE = re.compile(r"(`[^`]*`)")


def plain(message: str) -> str:
    """A catalogue sentence without its code-span backticks."""
    return message.replace("`", "")


def when(iso: str | None) -> str:
    """An ISO 8601 time as `2026-03-01 12:00 UTC` (the same in every language)."""
    if not iso:
        return "—"
    try:
        at = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return (at.astimezone(UTC) if at.tzinfo else at).strftime("%Y-%m-%d %H:%M UTC")


def summary_parts(d: Digest) -> list[tuple[str, str, str]]:
    """(name, mark, points) per variant and assignment-wide check: the one-line overview."""
    parts = [(v.name, MARK["pass"] if v.counts else MARK["fail"], d.pts(v.score, v.max_score)) for v in d.variants]
    return parts + [(g.title, MARK[g.status], d.pts(g.points, g.max_points)) for g in d.global_checks]


def where(d: Digest, item: Item) -> str:
    if not item.variants:
        return ""
    return d.t("in_variant" if len(item.variants) == 1 else "in_variants", names=", ".join(item.variants))


def evidence_lines(d: Digest, item: Item) -> list[str]:
    several = len({e["path"] for e in item.evidence if e["line"]}) > 1
    lines: list[str] = []
    for e in item.evidence:
        if e["line"] and several:
            prefix = f"{e['path']}:{e['line']}: "
        elif e["line"]:
            prefix = d.t("line", line=e["line"]) + ": "
        else:
            prefix = ""
        lines += (prefix + e["text"]).splitlines() or [prefix]
    return lines


def provenance_parts(d: Digest) -> list[str]:
    p = d.provenance
    parts = []
    if p.get("sha"):
        parts.append(d.t("commit", sha=p["sha"][:8]))
    if p.get("graded_at"):
        parts.append(d.t("graded_at", when=when(p["graded_at"])))
    if p.get("late") is not None:
        parts.append(d.t("late" if p["late"] else "on_time"))
    if p.get("deadline"):
        parts.append(d.t("deadline", when=when(p["deadline"])))
    parts.append(d.t("versions", version=d.grader_version, assignment=d.assignment) if p
                 else d.t("local", version=d.grader_version, assignment=d.assignment))
    return parts


# -- text -------------------------------------------------------------------------------------------


def render_text(report: dict, width: int = 110) -> str:
    d = digest(report)
    out: list[str] = [f"{d.title} — {d.t('total', score=d.pts(d.score, d.max_score))}"]
    if d.error:
        return "\n".join([*out, "", d.t("refused_heading"), _wrap(plain(d.error), width, "  ")]) + "\n"
    out.append(" · ".join(f"{name} {mark} {pts}" for name, mark, pts in summary_parts(d)))
    out += [_wrap(d.t("rule"), width, ""), _wrap(d.t("legend"), width, ""), "", d.t("fix_heading")]
    if not d.fixes:
        out.append("  " + d.t("nothing_to_fix"))
    for n, item in enumerate(d.fixes, 1):
        out += _text_item(d, item, f"{n}.", width)
    if d.advice:
        out += ["", d.t("advice_heading")]
        for item in d.advice:
            out += _text_item(d, item, "", width)
    if d.notes:
        out += ["", d.t("notes_heading")] + [_wrap(plain(n), width, "  · ", "    ") for n in d.notes]
    out += ["", d.t("passed_heading", count=d.passed_count)]
    for v in d.variants:
        if v.passed:
            out.append(_wrap(f"{v.name}: " + ", ".join(v.passed), width, "  ", "    "))
    if d.passed_global:
        out.append(_wrap(", ".join(d.passed_global), width, "  ", "    "))
    out += ["", d.t("sizes_heading")]
    header = [d.t("variant"), d.t("file"), d.t("built"), d.t("size"), d.t("layers"), d.t("score")]
    rows = [[s.name, v.dockerfile or "—", d.build_time(s), d.size(s.size_bytes), d.num(s.layers),
             d.pts(v.score, v.max_score)] for s, v in zip(d.sizes, d.variants, strict=True)]
    out += _columns([header, *rows])
    out += ["", d.t("provenance_heading"), _wrap(" · ".join(provenance_parts(d)), width, "  ", "  "),
            "  " + d.t("reproduce", command=REPRODUCE)]
    return "\n".join(out) + "\n"


def _text_item(d: Digest, item: Item, number: str, width: int) -> list[str]:
    scope = where(d, item)
    head = " ".join(x for x in (MARK[item.status], number, item.title) if x)
    lines = ["  " + head + (f" ({scope})" if scope else "")]
    refs = " · ".join(loc.label for loc in item.locations)
    lines.append(_wrap((refs + " — " if refs else "") + plain(item.message), width, "      ", "      "))
    lines += [f"      │ {line}" for line in evidence_lines(d, item)]
    return lines


def _wrap(s: str, width: int, first: str, rest: str | None = None) -> str:
    return textwrap.fill(s, width=width, initial_indent=first, subsequent_indent=first if rest is None else rest,
                         break_long_words=False, break_on_hyphens=False) or first.rstrip()


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


# -- Markdown (GitLab) ------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!$])")


def md_text(s: str) -> str:
    """Student-controlled text made inert for GitLab: no emphasis, links, HTML, tables or mentions."""
    escaped = _MD_SPECIAL.sub(r"\\\1", s.replace("&", "&amp;").replace("\n", " "))
    return escaped.replace("@", "@\u200b")  # a zero-width space: "@user" names nobody


def md_inline(message: str) -> str:
    """A catalogue sentence for GitLab: its `code` spans kept, everything else escaped."""
    return "".join(part if _CODE.fullmatch(part) else md_text(part) for part in _CODE.split(message))


def md_code(s: str, *, cell: bool = False) -> str:
    """`s` as a code span (in a table cell a `|` would end the cell even there)."""
    body = s.replace("`", "\u02bc").replace("\n", " ")
    return "`" + (body.replace("|", "\\|") if cell else body) + "`"


def md_link(label: str, url: str | None) -> str:
    return f"[{md_text(label)}]({url.replace(')', '%29').replace(' ', '%20')})" if url else md_code(label)


def render_markdown(report: dict) -> str:
    d = digest(report)
    total = d.t("total", score=f"**{d.pts(d.score, d.max_score)}**")
    out = [f"## {md_text(d.title)} — {total}", ""]
    if d.error:
        return "\n".join([*out, f"**{d.t('refused_heading')}**: {md_inline(d.error)}", ""])
    out += [" · ".join(f"**{name}** {mark} {pts}" for name, mark, pts in summary_parts(d)), "",
            md_text(d.t("rule")) + "  ", f"<sub>{md_text(d.t('legend'))}</sub>", "", f"### {d.t('fix_heading')}", ""]
    if not d.fixes:
        out.append(md_text(d.t("nothing_to_fix")))
    for n, item in enumerate(d.fixes, 1):
        out += _md_item(d, item, f"{n}.")
    if d.advice:
        out += ["", f"### {md_text(d.t('advice_heading'))}", ""]
        for item in d.advice:
            out += _md_item(d, item, "-")
    if d.notes:
        out += ["", f"### {d.t('notes_heading')}", ""] + [f"- {md_inline(n)}" for n in d.notes]
    out += ["", f"<details><summary>{MARK['pass']} {d.t('passed_heading', count=d.passed_count)}</summary>", ""]
    for v in d.variants:
        if v.passed:
            out += [f"**{md_text(v.title)} ({v.name})**: " + " · ".join(md_text(t) for t in v.passed), ""]
    if d.passed_global:
        out += [" · ".join(md_text(t) for t in d.passed_global), ""]
    out += ["</details>", "", f"### {d.t('sizes_heading')}", "",
            f"| {d.t('variant')} | {d.t('file')} | {d.t('built')} | {d.t('size')} | {d.t('layers')} | {d.t('score')} |",
            "|---|---|---|---|---|---|"]
    out += [f"| {s.name} | {md_code(v.dockerfile or '—', cell=True)} | {md_text(d.build_time(s))} | "
            f"{d.size(s.size_bytes)} | {d.num(s.layers)} | {d.pts(v.score, v.max_score)} |"
            for s, v in zip(d.sizes, d.variants, strict=True)]
    out += ["", "<sub>" + " · ".join(md_text(p) for p in provenance_parts(d)) + " · "
            + md_text(d.t("reproduce", command="")) + md_code(REPRODUCE) + "</sub>"]
    return "\n".join(out) + "\n"


def _md_item(d: Digest, item: Item, bullet: str) -> list[str]:
    pad = " " * (len(bullet) + 1)
    scope = where(d, item)
    lines = [f"{bullet} {MARK[item.status]} **{md_text(item.title)}**" + (f" — {md_text(scope)}" if scope else "")
             + "  "]
    refs = " · ".join(md_link(loc.label, loc.url) for loc in item.locations)
    lines.append(pad + (refs + " — " if refs else "") + md_inline(item.message))
    ev = [line.replace("```", "ʼʼʼ") for line in evidence_lines(d, item)]
    if not ev:
        return lines
    block = ["", pad + "```", *(pad + line for line in ev), pad + "```"]
    if item.status == "fail" and len(ev) <= INLINE_EVIDENCE_LINES:
        return lines + block
    return lines + ["", f"{pad}<details><summary>{d.t('details')}</summary>", *block, "", f"{pad}</details>"]
