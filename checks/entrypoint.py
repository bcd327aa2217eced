"""ENTRYPOINT/CMD in exec (JSON) form, so that the server is PID 1 and gets SIGTERM."""

from __future__ import annotations

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from grader.assignment import Assignment
from grader.facts import VariantFacts


@variant_check("exec_form", reads=("parsed", "runtime"), reasons=("none", "not_parsed", "ok", "shell"))
def exec_form(v: VariantFacts, a: Assignment) -> Outcome:
    if v.parsed is None:
        return skipped("not_parsed")
    ins = v.parsed.entrypoint()
    if ins is None:
        return failed("none")
    evidence = [Evidence.at(ins)]
    if ins.json_form:
        return passed("ok", tuple(evidence), cmd=ins.cmd)
    stop = v.runtime.stop_seconds if v.runtime else None
    if stop is not None:
        evidence.append(Evidence("observed", f"docker stop: {stop:.1f} s"))
    return failed("shell", tuple(evidence), cmd=ins.cmd, line=ins.line,
                  stop=round(stop, 1) if stop is not None else "?")
