"""Renders a scored grading as JSON (the contract), plain text, or Markdown (for GitLab)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import grader
from grader.assignment import Assignment
from grader.facts import SubmissionFacts
from grader.messages import message, note, title
from grader.report_model import SCHEMA, validate
from grader.scoring import CheckResult, Scored, VariantScore

if TYPE_CHECKING:  # rich is imported only when a text report is rendered: JSON runs start faster
    from rich.console import Console
    from rich.table import Table

MARK = {"pass": "✓", "fail": "✗", "warn": "!", "skip": "–"}
LABELS = {
    "ru": {"variant": "Вариант", "file": "Файл", "built": "Сборка", "size": "Размер", "layers": "Слоёв",
           "uid": "uid", "stop": "Остановка", "score": "Баллы", "total": "Итого", "sizes": "Размеры образов",
           "check": "Проверка", "result": "Результат", "evidence": "Подробности", "yes": "да", "no": "нет",
           "line": "строка"},
    "en": {"variant": "Variant", "file": "File", "built": "Built", "size": "Size", "layers": "Layers",
           "uid": "uid", "stop": "Stop", "score": "Score", "total": "Total", "sizes": "Image sizes",
           "check": "Check", "result": "Result", "evidence": "Details", "yes": "yes", "no": "no",
           "line": "line"},
}


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


def render_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2)


def _mb(size: int | None) -> str:
    return f"{size / 1e6:.0f} MB" if size is not None else "—"


def _secs(x: float | None) -> str:
    return f"{x:.1f} s" if x is not None else "—"


def render_text(report: dict, width: int = 110) -> str:
    from rich.console import Console
    from rich.table import Table

    lang = report["language"]
    t = LABELS[lang]
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None)
    console.print(f"{report['assignment']}: {t['total']} {_pts(report['score'])}/{_pts(report['max_score'])}")
    for line in report["notes"]:
        console.print(f"  · {line}")
    table = Table(t["variant"], t["file"], t["built"], t["size"], "uid", t["stop"], t["score"])
    for v in report["variants"]:
        table.add_row(v["name"], v["dockerfile"] or "—", _secs(v["build_seconds"]) if v["built"] else t["no"],
                      _mb(v["image_size_bytes"]), str(v["runtime_uid"]) if v["runtime_uid"] is not None else "—",
                      _secs(v["stop_seconds"]), f"{_pts(v['score'])}/{_pts(v['max_score'])}")
    console.print(table)
    for v in report["variants"]:
        console.print(f"\n{v['name']} — {v['title']}: {_pts(v['score'])}/{_pts(v['max_score'])}")
        for c in v["checks"]:
            _text_check(console, c, t)
    console.print(f"\n{t['sizes']}")
    console.print(_size_table(report, t))
    for c in report["checks"]:
        _text_check(console, c, t)
    return out.getvalue()


def _text_check(console: Console, c: dict, t: dict) -> None:
    console.print(f"  {MARK[c['status']]} {c['title']}: {c['message']}", highlight=False, markup=False)
    if c["status"] in ("fail", "warn"):
        for e in c["evidence"]:
            prefix = f"{t['line']} {e['line']}: " if e["line"] else ""
            for line in (prefix + e["text"]).splitlines():
                console.print(f"      │ {line}", highlight=False, markup=False)


def _size_table(report: dict, t: dict) -> Table:
    from rich.table import Table

    table = Table(t["variant"], t["size"], t["layers"])
    for v in report["variants"]:
        table.add_row(v["name"], _mb(v["image_size_bytes"]), str(v["layer_count"] or "—"))
    return table


def _pts(x: float) -> str:
    return f"{x:g}"


def render_markdown(report: dict) -> str:
    t = LABELS[report["language"]]
    lines = [f"## {report['assignment']}: **{_pts(report['score'])}/{_pts(report['max_score'])}**", ""]
    lines += [f"- {n}" for n in report["notes"]] + ([""] if report["notes"] else [])
    lines += [f"| {t['variant']} | {t['file']} | {t['built']} | {t['size']} | uid | {t['score']} |",
              "|---|---|---|---|---|---|"]
    for v in report["variants"]:
        lines.append(f"| {v['name']} | `{v['dockerfile'] or '—'}` | {t['yes'] if v['built'] else t['no']} | "
                     f"{_mb(v['image_size_bytes'])} | {v['runtime_uid'] if v['runtime_uid'] is not None else '—'} | "
                     f"{_pts(v['score'])}/{_pts(v['max_score'])} |")
    for v in report["variants"]:
        lines += ["", f"### {v['title']} ({v['name']}): {_pts(v['score'])}/{_pts(v['max_score'])}", ""]
        lines += _md_checks(v["checks"], t)
    lines += ["", f"### {t['sizes']}", "", f"| {t['variant']} | {t['size']} | {t['layers']} |", "|---|---|---|"]
    lines += [f"| {v['name']} | {_mb(v['image_size_bytes'])} | {v['layer_count'] or '—'} |" for v in report["variants"]]
    lines += [""] + _md_checks(report["checks"], t)
    return "\n".join(lines) + "\n"


def _md_checks(checks: list[dict], t: dict) -> list[str]:
    lines = [f"| | {t['check']} | {t['result']} |", "|---|---|---|"]
    details = []
    for c in checks:
        lines.append(f"| {MARK[c['status']]} | {c['title']} | {_md_cell(c['message'])} |")
        if c["status"] in ("fail", "warn") and c["evidence"]:
            body = "\n".join((f"{t['line']} {e['line']}: " if e["line"] else "") + e["text"] for e in c["evidence"])
            details += ["", f"<details><summary>{MARK[c['status']]} {c['title']}: {t['evidence']}</summary>",
                        "", "```", body.replace("```", "ʼʼʼ"), "```", "</details>"]
    return lines + details


def _md_cell(text: str) -> str:
    # Student-controlled text (probe bodies, paths) must not open HTML in the GitLab comment.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|").replace("\n", " ")
