"""The import graph: the checks are a plug-in of the grader, never imported by it statically
(grader/plugins.py finds them by name), so there is no grader ↔ checks cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_grader_module_imports_the_checks_package():
    offenders = {str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m == "checks" or m.startswith("checks."))
                 for p in (ROOT / "grader").rglob("*.py")}
    assert {p: m for p, m in offenders.items() if m} == {}


def test_the_checks_import_only_the_grader_and_themselves():
    """A check is a pure function of facts: no engine, no GitLab, no store, no web."""
    forbidden = {"grader.engine", "grader.gitlab", "grader.store", "grader.web", "grader.tasks", "grader.service",
                 "docker", "gitlab", "requests", "sqlalchemy", "celery", "redis"}
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & forbidden) for p in (ROOT / "checks").glob("*.py")}
    assert {p: m for p, m in offenders.items() if m} == {}


def test_the_layering_test_sees_an_import_when_there_is_one(tmp_path):
    """Control: the parser finds both spellings."""
    probe = tmp_path / "probe.py"
    probe.write_text("import checks.hints\nfrom checks import build\n", encoding="utf-8")
    assert {"checks.hints", "checks"} <= _imports(probe)
