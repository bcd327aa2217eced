"""The verdict a fixture submission states in its expected.toml, checked against a JSON report."""

from __future__ import annotations

import tomllib
from pathlib import Path

from grader.consistency import contradictions
from grader.messages import catalogue
from grader.report_model import validate


def fixture_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if (p / "expected.toml").is_file())


def load_expected(fixture: Path) -> dict:
    return tomllib.loads((fixture / "expected.toml").read_text())


def assert_verdict(report: dict, expected: dict) -> None:
    """Exactly the failed and warned checks stated, the score, and the message word or hint.

    Optional: a total `score`, `notes_contain` (substrings each found in some discovery note), and
    per variant the `dockerfile` taken for it (repo-relative) and `says` (substrings each found in
    the message of some check of that variant, whatever its status). Every report must also be free of
    contradictions (grader/consistency.py), whatever its fixture states."""
    assert contradictions(report) == []
    validate(report)  # the contract (docs/report.schema.json)
    if "score" in expected:
        assert report["score"] == expected["score"], (report["score"], report["checks"])
    for part in expected.get("notes_contain", []):
        assert any(part in note for note in report["notes"]), (part, report["notes"])
    by_name = {v["name"]: v for v in report["variants"]}
    for variant, verdict in expected["variants"].items():
        got = by_name[variant]
        failed = sorted(c["id"] for c in got["checks"] if c["status"] == "fail")
        warned = sorted(c["id"] for c in got["checks"] if c["status"] == "warn")
        assert failed == sorted(verdict["failed"]), got["checks"]
        assert warned == sorted(verdict.get("warned", [])), got["checks"]
        assert got["score"] == verdict["score"]
        if "dockerfile" in verdict:
            assert got["dockerfile"] == verdict["dockerfile"], (got["dockerfile"], report["notes"])
        for part in verdict.get("says", []):
            assert any(part in c["message"] for c in got["checks"]), (part, got["checks"])
        if "message" in verdict:  # a word the failing check's message must contain
            assert any(verdict["message"] in c["message"] for c in got["checks"] if c["status"] == "fail"), got
        if "hint" in verdict:
            built = next(c for c in got["checks"] if c["id"] == "built")
            assert built["message"].count("Hint:") == 1, built["message"]
            assert _hint_text(verdict["hint"]) in built["message"]


def _hint_text(key: str) -> str:
    return catalogue()["hints"][key]["en"].split("{")[0][:30]
