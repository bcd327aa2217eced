"""Was the variant's Dockerfile found, parsed and built?"""

from __future__ import annotations

import shlex

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from checks.hints import build_hint, failed_step
from grader.assignment import Assignment
from grader.facts import VariantFacts


@variant_check("found", reads=("found",), reasons=("by_content", "by_name", "by_near_name", "missing", "link_outside"))
def found(v: VariantFacts, a: Assignment) -> Outcome:
    filename = a.variant(v.name).filename
    if v.dockerfile_path is None:
        if v.rejected:
            return failed("link_outside", path=v.rejected, filename=filename)
        return failed("missing", filename=filename)
    if v.found_by == "content":
        return passed("by_content", path=v.dockerfile_path)
    if v.found_by == "near_name":
        return passed("by_near_name", path=v.dockerfile_path, filename=filename)
    return passed("by_name", path=v.dockerfile_path)


PARSE_REASONS = ("too_large", "not_utf8", "unreadable", "invalid", "unknown_instruction", "before_from", "no_from",
                 "from_without_image")


@variant_check("parsed", reads=("found", "parsed"), reasons=("error", "no_dockerfile", "ok", *PARSE_REASONS))
def parsed(v: VariantFacts, a: Assignment) -> Outcome:
    if v.dockerfile_path is None:
        return skipped("no_dockerfile")
    if v.parsed is None:
        if v.parse_reason in PARSE_REASONS:
            return failed(v.parse_reason, (), **v.parse_params)
        return failed("error", error=v.parse_error or "?")
    return passed("ok", stages=len(v.parsed.stages))


@variant_check("built", reads=("build", "context", "image", "parsed"),
               reasons=("context_too_big", "error", "no_context", "not_attempted", "ok", "timeout", "too_big"))
def built(v: VariantFacts, a: Assignment) -> Outcome:
    b = v.build
    if b is None:
        return skipped("not_attempted")
    if b.succeeded:
        return passed("ok", seconds=round(b.seconds, 1))
    if b.no_context:
        return failed("no_context", path=v.dockerfile_path)
    if b.context_refused and v.context is not None:
        see = Evidence("command", f"cd {shlex.quote(v.context_rel or '.')} && du -sh * .[!.]*")
        return failed("context_too_big", (see,), size_mib=round(v.context.size_bytes / 2**20),
                      files=v.context.file_count)
    if b.oversize_limit:
        size = v.image.size_bytes if v.image else 0
        return failed("too_big", (Evidence("command", "docker history IMAGE"),),
                      size_mib=round(size / 2**20), limit_mib=round(b.oversize_limit / 2**20))
    evidence = [Evidence("log", failed_step(b.log_tail))] if b.log_tail else []
    hint = build_hint(b.log_tail, b.timed_out, v.parsed, a, v.context.excluded if v.context else None)
    if hint and hint.line:
        evidence.insert(0, Evidence("dockerfile", _line_text(v, hint.line), hint.line))
    evidence.append(Evidence("command", reproduce(v, a)))
    reason = "timeout" if b.timed_out else "error"
    return failed(reason, tuple(evidence), seconds=round(b.seconds), code=b.exit_code,
                  hint=hint.key if hint else "", line=hint.line if hint else None,
                  name=hint.name if hint else "")


def reproduce(v, a) -> str:
    """The command that builds what the grader built, run from the repository's root (built with
    the course's reference source, the context is wherever the student keeps the assignment's project)."""
    context = shlex.quote(v.context_rel) if v.context_rel else f"PATH/TO/{a.id}"
    return f"DOCKER_BUILDKIT=1 docker build -f {shlex.quote(v.dockerfile_path or 'Dockerfile')} {context}"


def _line_text(v, line: int) -> str:
    """The sub-command's own physical line of a chained RUN; a one-line instruction as written."""
    ins = v.parsed.instruction_at(line) if v.parsed is not None else None
    if ins is None:
        return ""
    if len(ins.physical) > 1 and 0 <= line - ins.line < len(ins.physical):
        return ins.physical[line - ins.line].strip()
    return ins.source
