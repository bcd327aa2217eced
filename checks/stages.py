"""Stage structure, from the parse: how many stages, what the final one is built from and copies."""

import re
from pathlib import PurePosixPath

from checks import Evidence, failed, passed, skipped, variant_check
from grader.dockerfile import ParsedDockerfile, Stage


def _stage_line(stage: Stage, original: str) -> Evidence:
    return Evidence("dockerfile", original, stage.line)


def _needs_parse(check):
    """Structure checks are skipped, not failed, when there is nothing parsed to look at."""

    def wrapper(v, a):
        if v.parsed is None:
            return skipped("not_parsed")
        return check(v.parsed, a)

    wrapper.__name__ = check.__name__
    return wrapper


def normalise_image(ref: str) -> str:
    ref = ref.lower()
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


@variant_check("base_image")
@_needs_parse
def base_image(p: ParsedDockerfile, a):
    expected = normalise_image(a.base_image)
    for stage in p.stages:
        if stage.parent is None and normalise_image(stage.base_resolved) != expected:
            return failed("wrong", (_stage_line(stage, f"FROM {stage.base}"),),
                          found=stage.base_resolved, expected=a.base_image, line=stage.line)
    return passed("ok", expected=a.base_image)


@variant_check("source_from_context")
@_needs_parse
def source_from_context(p: ParsedDockerfile, a):
    for stage in p.stages:
        for ins in stage.of("RUN", "ADD"):
            text = " ".join(ins.args)
            if re.search(r"\bgit\s+clone\b|git\+https?://|\.git(\s|$)", text):
                return failed("fetched", (Evidence.at(ins),), line=ins.line)
    return passed("ok")


@variant_check("single_stage")
@_needs_parse
def single_stage(p: ParsedDockerfile, a):
    if len(p.stages) == 1:
        return passed("ok")
    return failed("several", tuple(_stage_line(s, f"FROM {s.base}") for s in p.stages),
                  count=len(p.stages))


@variant_check("multi_stage")
@_needs_parse
def multi_stage(p: ParsedDockerfile, a):
    if len(p.stages) >= 2:
        return passed("ok", count=len(p.stages))
    return failed("one", (_stage_line(p.final, f"FROM {p.final.base}"),))


@variant_check("final_stage_isolated")
@_needs_parse
def final_stage_isolated(p: ParsedDockerfile, a):
    final = p.final
    if len(p.stages) < 2:
        return skipped("one_stage")
    if final.parent is not None:
        return failed("from_stage", (_stage_line(final, f"FROM {final.base}"),),
                      stage=final.parent.label, line=final.line)
    return passed("ok", base=final.base_resolved)


def _is_dist(source: str) -> bool:
    return "dist" in PurePosixPath(source).parts


@variant_check("copies_only_dist")
@_needs_parse
def copies_only_dist(p: ParsedDockerfile, a):
    final = p.final
    if len(p.stages) < 2:
        return skipped("one_stage")
    copies = final.of("COPY", "ADD")
    from_stages = [c for c in copies if c.flag("from") and p.stage(c.flag("from")) is not None]
    for ins in copies:
        sources = ins.args[:-1]
        if ins in from_stages and not all(_is_dist(s) for s in sources):
            return failed("too_much", (Evidence.at(ins),), sources=" ".join(sources), line=ins.line)
        if ins not in from_stages and not ins.flag("from"):
            return failed("from_context", (Evidence.at(ins),), sources=" ".join(sources), line=ins.line)
    if not from_stages:
        return failed("nothing", (_stage_line(final, f"FROM {final.base}"),))
    return passed("ok", evidence=tuple(Evidence.at(c) for c in from_stages))


@variant_check("offline_install")
@_needs_parse
def offline_install(p: ParsedDockerfile, a):
    if len(p.stages) < 2:
        return skipped("one_stage")
    installs = [i for i in p.final.of("RUN") if re.search(r"\bpip3?\s+install\b", " ".join(i.args))]
    if not installs:
        return failed("no_install", (_stage_line(p.final, f"FROM {p.final.base}"),))
    for ins in installs:
        if "--no-index" not in " ".join(ins.args):
            return failed("from_index", (Evidence.at(ins),), line=ins.line)
    return passed("ok", evidence=tuple(Evidence.at(i) for i in installs))


@variant_check("final_image_clean")
def final_image_clean(v, a):
    """What the final image really holds: no Poetry, no project sources or build files."""
    if v.parsed is not None and len(v.parsed.stages) < 2:
        return skipped("one_stage")
    c = v.contents
    if c is None:
        return skipped("not_run")
    if c.error:
        return failed("unknown", error=c.error)
    command = Evidence("command", "docker run --rm --entrypoint sh IMAGE -c 'command -v poetry; ls /app'")
    found = c.poetry + c.sources
    if found:
        listing = Evidence("observed", "\n".join(found[:20]))
        return failed("leftovers", (listing, command), poetry=", ".join(c.poetry[:3]) or "—",
                      sources=", ".join(c.sources[:3]) or "—")
    return passed("ok")
