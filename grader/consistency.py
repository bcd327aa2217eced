"""Statements in one report that cannot both be true: a contradiction is our bug, never a verdict.

Each check judges one thing, but several of them speak about the same observation (the uid of
the running process, what the final image holds, whether there was an image at all). These rules
hold over every report; the fixture tests assert them, and `grader check --strict` could refuse a
report that breaks them. Reads the JSON report (`grader.report/1`), so any renderer's input is covered.
"""

from __future__ import annotations

from typing import Any

Report = dict[str, Any]


def contradictions(report: Report) -> list[str]:
    """Every pair of statements in `report` that contradict each other, in plain words."""
    found: list[str] = []
    for v in report.get("variants", []):
        checks = {c["id"]: c for c in v["checks"]}
        found += [f"{v['name']}: {text}" for text in _variant(v, checks)]
    return found


def _status(checks: dict[str, dict], check_id: str) -> str | None:
    return checks[check_id]["status"] if check_id in checks else None


def _reason(checks: dict[str, dict], check_id: str) -> str | None:
    return checks[check_id].get("reason") if check_id in checks else None


def _variant(v: Report, checks: dict[str, dict]) -> list[str]:
    return _image_contents(checks) + _uid(v, checks) + _built(v, checks) + _score(v, checks)


def _image_contents(checks: dict[str, dict]) -> list[str]:
    """The structure checks may quote what the running image holds; final_image_clean measures it."""
    out = []
    clean = _status(checks, "final_image_clean")
    isolated_quotes = (_status(checks, "final_stage_isolated") == "fail"
                       and any(e["kind"] == "observed" for e in checks["final_stage_isolated"]["evidence"]))
    if clean == "pass" and isolated_quotes:
        out.append("final_stage_isolated quotes build files in the image, final_image_clean says it is clean")
    if clean == "pass" and _reason(checks, "copies_only_dist") == "too_much_found":
        out.append("copies_only_dist found build files in the image, final_image_clean says it is clean")
    if clean == "fail" and _reason(checks, "final_image_clean") == "leftovers" \
            and _reason(checks, "copies_only_dist") == "ok_clean":
        out.append("copies_only_dist says the image is clean, final_image_clean found leftovers")
    return out


def _uid(v: Report, checks: dict[str, dict]) -> list[str]:
    uid = v.get("runtime_uid")
    out = []
    if _status(checks, "runs_as_root") == "pass" and uid != 0:
        out.append(f"runs_as_root passes, the measured uid is {uid}")
    if _status(checks, "runtime_nonroot") == "pass" and uid in (0, None):
        out.append(f"runtime_nonroot passes, the measured uid is {uid}")
    if _status(checks, "user_checked") == "pass" and uid is None:
        out.append("user_checked passes without a measured uid")
    if _status(checks, "final_user_nonroot") == "pass" and uid == 0:
        out.append("final_user_nonroot says the image switches to a user, the process runs as root")
    return out


def _built(v: Report, checks: dict[str, dict]) -> list[str]:
    out = []
    if not v.get("built"):
        if any(p.get("passed") for p in v.get("probes", [])):
            out.append("not built, yet a probe passed")
        if _status(checks, "http_contract") == "pass":
            out.append("not built, yet http_contract passes")
        if v.get("runtime_uid") is not None:
            out.append("not built, yet a uid was measured")
        if _status(checks, "built") == "pass":
            out.append("built passes, the variant says it was not built")
    if _status(checks, "build_policy") == "fail" and v.get("built"):
        out.append("build_policy refused the file, yet it was built (the gate must keep it from the engine)")
    if _status(checks, "http_contract") == "pass":
        probes = v.get("probes", [])
        if not probes or not all(p.get("passed") for p in probes):
            out.append("http_contract passes, a probe failed or none ran")
    return out


def _score(v: Report, checks: dict[str, dict]) -> list[str]:
    required_failed = [c["id"] for c in checks.values() if c["required"] and c["status"] != "pass"]
    if required_failed and v["score"] >= v["max_score"] > 0:
        return [f"full marks although {', '.join(required_failed)} did not pass"]
    return []
