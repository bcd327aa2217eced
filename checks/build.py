"""Was the variant's Dockerfile found, parsed and built?"""

from checks import Evidence, failed, passed, skipped, variant_check
from checks.hints import build_hint, failed_step


@variant_check("found")
def found(v, a):
    if v.dockerfile_path is None:
        return failed("missing", filename=a.variant(v.name).filename)
    if v.found_by == "content":
        return passed("by_content", path=v.dockerfile_path)
    return passed("by_name", path=v.dockerfile_path)


@variant_check("parsed")
def parsed(v, a):
    if v.dockerfile_path is None:
        return skipped("no_dockerfile")
    if v.parsed is None:
        return failed("error", error=v.parse_error or "?")
    return passed("ok", stages=len(v.parsed.stages))


@variant_check("built")
def built(v, a):
    b = v.build
    if b is None:
        return skipped("not_attempted")
    if b.succeeded:
        return passed("ok", seconds=round(b.seconds, 1))
    if b.context_refused and v.context is not None:
        return failed("context_too_big", (Evidence("command", "du -sh * .[!.]*  # in the build context"),),
                      size_mib=round(v.context.size_bytes / 2**20), files=v.context.file_count)
    if b.oversize_limit:
        size = v.image.size_bytes if v.image else 0
        return failed("too_big", (Evidence("command", "docker history IMAGE  # which layer is big"),),
                      size_mib=round(size / 2**20), limit_mib=round(b.oversize_limit / 2**20))
    evidence = [Evidence("log", failed_step(b.log_tail))] if b.log_tail else []
    hint = build_hint(b.log_tail, b.timed_out, v.parsed)
    if hint and hint.line:
        evidence.insert(0, Evidence("dockerfile", _line_text(v, hint.line), hint.line))
    evidence.append(Evidence("command", f"DOCKER_BUILDKIT=1 docker build -f {v.dockerfile_path} ."))
    reason = "timeout" if b.timed_out else "error"
    return failed(reason, tuple(evidence), seconds=round(b.seconds), code=b.exit_code,
                  hint=hint.key if hint else "", line=hint.line if hint else None,
                  name=hint.name if hint else "")


def _line_text(v, line: int) -> str:
    for stage in v.parsed.stages:
        for ins in stage.instructions:
            if ins.line == line:
                return ins.original
    return ""
