"""build_policy: nothing in the Dockerfile makes the engine fetch or read what the student has no
business with (grader/policy.py decides before the build; this reports its findings)."""

from __future__ import annotations

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from grader.assignment import Assignment
from grader.facts import VariantFacts
from grader.policy import RULES

CHANGES = ("syntax_removed", "heredoc_rewritten")  # how the copy that was built differs (grader/buildfile.py)


@variant_check("build_policy", reads=("policy",),
               reasons=(*RULES, "ok", "no_dockerfile", "not_parsed", "not_attempted", "base_refused"),
               item_reasons=(*RULES, *CHANGES))
def build_policy(v: VariantFacts, a: Assignment) -> Outcome:
    if v.dockerfile_path is None:
        return skipped("no_dockerfile")
    if v.parsed is None:
        return skipped("not_parsed")
    if v.policy is None:
        return skipped("not_attempted")
    if not v.policy.findings:
        return passed("ok", items=[{**c.params, "reason": c.kind, "line": c.line} for c in v.policy.changes])
    findings = v.policy.findings
    needed_from_lines = {s.line for s in v.parsed.needed()}
    if all(f.rule == "external_base" and f.line in needed_from_lines for f in findings) \
            and _judged_by_base_image(v, a):
        # One mistake, one failure: base_image names the line and the expected image; this check
        # only says why nothing was built.
        return skipped("base_refused", line=findings[0].line)
    first, *rest = findings
    evidence = [Evidence("dockerfile", f.text, f.line) for f in findings]
    # A value made of ARG/ENV (`ADD ${URL} /x`): the lines that made it, so the student sees where
    # the URL the message names came from.
    refused = v.parsed.instruction_at(first.line)
    if refused is not None and "$" in refused.original:
        shown = {e.line for e in evidence}
        evidence += [Evidence.at(d) for d in v.parsed.definitions(refused) if d.line not in shown]
    return failed(first.rule, tuple(evidence), **{**first.params, "line": first.line},
                  items=[{**f.params, "reason": f.rule, "line": f.line} for f in rest])


def _judged_by_base_image(v, a) -> bool:
    rubric = next((r for r in a.variants if r.name == v.name), None)
    return rubric is not None and "base_image" in rubric.required
