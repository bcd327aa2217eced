"""Stage structure, judged by what each stage does and what the final image inherits, not by
how many FROM lines there are or how stages are named.

What a stage does (receives the sources, runs the build, takes artefacts, installs, or is an
alias of its base) is read in grader/stage_roles.py, with the definitions; discovery counts
stages with the same reading. The README's checks table says them too.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from grader.assignment import Assignment
from grader.checkapi import VariantCheckFn
from grader.dockerfile import Instruction, ParsedDockerfile, Stage, absolute
from grader.facts import VariantFacts
from grader.policy import looks_remote
from grader.stage_roles import GIT_CLONE, INSTALLS, Role, role_of, roles


def _several_working(p: ParsedDockerfile) -> bool:
    """Whether there is a build stage apart from the final one to judge at all. An alias plus one
    stage doing everything is one working stage: multi_stage fails it, once; the checks of what
    the final stage takes from a build stage have nothing to look at (skipped, not failed)."""
    return sum(1 for r in roles(p) if r.working) >= 2


def _needs_parse(check: Callable[[VariantFacts, ParsedDockerfile, Assignment], Outcome]) -> VariantCheckFn:
    """Structure checks are skipped, not failed, when there is nothing parsed to look at."""

    def wrapper(v: VariantFacts, a: Assignment) -> Outcome:
        if v.parsed is None:
            return skipped("not_parsed")
        return check(v, v.parsed, a)

    wrapper.__name__ = wrapper.__qualname__ = check.__name__
    wrapper.__doc__ = check.__doc__
    return wrapper


def _from(stage: Stage) -> Evidence:
    if stage.from_ins is not None:
        return Evidence.at(stage.from_ins)
    return Evidence("dockerfile", stage.from_instruction, stage.line)


def _role_item(r: Role) -> dict[str, Any]:
    """One sentence per stage in the evidence of the structure checks: who did what, where."""
    base = {"stage": r.stage.label, "line": r.stage.line}
    if r.tainted:
        lines = sorted({i.line for i in r.sources} | {line for line, _ in r.build})
        return {"reason": "stage_build", **base, "lines": ", ".join(map(str, lines))}
    if r.takes:
        ins, other = r.takes[0]
        return {"reason": "stage_takes", **base, "sources": " ".join(ins.args[:-1]), "from": other.label,
                "copy_line": ins.line}
    if r.installs:
        return {"reason": "stage_installs", **base, "install_line": r.installs[0].line}
    return {"reason": "stage_alias", **base, "base": r.stage.base_resolved}


def normalise_image(ref: str) -> str:
    ref = ref.lower()
    for prefix in ("docker.io/library/", "docker.io/", "library/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


STAGE_ITEMS = ("stage_alias", "stage_build", "stage_takes", "stage_installs")


@variant_check("base_image", reads=("parsed",), reasons=("not_parsed", "ok", "wrong"))
@_needs_parse
def base_image(v: VariantFacts, p: ParsedDockerfile, a: Assignment) -> Outcome:
    expected = normalise_image(a.base_image)
    for stage in p.needed():
        if stage.parent is None and normalise_image(stage.base_resolved) != expected:
            return failed("wrong", (_from(stage),), found=stage.base_resolved, expected=a.base_image, line=stage.line)
    return passed("ok", expected=a.base_image)


@variant_check("source_from_context", reads=("parsed",), reasons=("fetched", "not_parsed", "ok"))
@_needs_parse
def source_from_context(v: VariantFacts, p: ParsedDockerfile, a: Assignment) -> Outcome:
    for stage in p.needed():
        for ins in stage.of("RUN", "ADD"):
            found = ins.locate(GIT_CLONE) or (ins.locate(r"\.git(\s|$)") if ins.cmd == "ADD" else None)
            if found:
                line, text = found
                return failed("fetched", (Evidence.at(ins, line, text),), line=line)
    return passed("ok")


@variant_check("single_stage", reads=("parsed",), reasons=("not_parsed", "ok", "ok_alias", "several"),
               item_reasons=STAGE_ITEMS)
@_needs_parse
def single_stage(v: VariantFacts, p: ParsedDockerfile, a: Assignment) -> Outcome:
    found = roles(p)
    working = [r for r in found if r.working]
    items = [_role_item(r) for r in found]
    if len(working) <= 1:
        if len(found) > 1:
            return passed("ok_alias", tuple(_from(r.stage) for r in found), count=len(found), items=items)
        return passed("ok")
    return failed("several", tuple(_from(r.stage) for r in working), count=len(working), items=items)


@variant_check("multi_stage", reads=("parsed",), reasons=("not_parsed", "ok", "one", "no_artefacts"),
               item_reasons=STAGE_ITEMS)
@_needs_parse
def multi_stage(v: VariantFacts, p: ParsedDockerfile, a: Assignment) -> Outcome:
    found = roles(p)
    working = [r for r in found if r.working]
    items = [_role_item(r) for r in found]
    evidence = tuple(_from(r.stage) for r in found)
    if len(working) < 2:
        return failed("one", evidence, count=len(found), working=len(working), items=items,
                      stage=working[0].stage.label if working else p.final.label)
    final_lineage = p.final.lineage()
    takes = any(other not in final_lineage for s in final_lineage for _, other in role_of(p, s).takes)
    # A final stage built FROM a working stage is multi-stage too, just not isolated: that one
    # mistake is final_stage_isolated's to report, once.
    inherits = any(role_of(p, s).working for s in final_lineage[1:])
    if not (takes or inherits):
        return failed("no_artefacts", evidence, count=len(working), items=items, stage=p.final.label)
    aliases = len(working) < len(found)  # say why some FROM lines do not count
    return passed("ok", evidence, count=len(working), items=items if aliases else [])


@variant_check("final_stage_isolated", reads=("parsed", "contents"),
               reasons=("from_stage", "not_parsed", "ok", "ok_alias", "one_stage"),
               item_reasons=("found_in_image", *STAGE_ITEMS))
@_needs_parse
def final_stage_isolated(v: VariantFacts, p: ParsedDockerfile, a: Assignment) -> Outcome:
    final = p.final
    if not _several_working(p):
        return skipped("one_stage")
    ancestors = final.lineage()[1:]
    tainted = next((r for r in (role_of(p, s) for s in ancestors) if r.tainted), None)
    if tainted is not None:
        evidence = [_from(final), *(_from(s) for s in ancestors)]
        items = [_role_item(tainted)]
        found = _leftovers(v, a)
        if found:
            items.append({"reason": "found_in_image", "found": ", ".join(found[:3])})
            evidence.append(Evidence("observed", "\n".join(found[:20])))
        return failed("from_stage", tuple(evidence), stage=final.parent.label if final.parent else "?",
                      via=tainted.stage.label, line=final.line, items=items)
    if ancestors:
        return passed("ok_alias", tuple(_from(s) for s in final.lineage()), stage=ancestors[0].label,
                      base=ancestors[-1].base_resolved)
    return passed("ok", base=final.base_resolved)


def leftovers(v, a) -> tuple[list[str], list[str]]:
    """The build tools and the build files/sources the running final image holds."""
    c = v.contents
    if c is None or c.error:
        return [], []
    tools, sources = [], []
    for path in c.paths:
        name = path.rsplit("/", 1)[-1]
        if any(name == t or name.startswith(f"{t}-") for t in a.final_image.build_tools):
            tools.append(path)
        elif "-packages/" not in path:  # an installed package's own pyproject.toml is not ours
            sources.append(path)
    return tools, sources


def _leftovers(v, a) -> list[str]:
    tools, sources = leftovers(v, a)
    return tools + sources


def _source_dirs(p: ParsedDockerfile, stage: Stage) -> list[tuple[str, Instruction]]:
    """Where the project's sources went in `stage` (and the stages it is built FROM)."""
    dirs = []
    for s in stage.lineage():
        role = role_of(p, s)
        for ins in role.sources:
            cwd = p.workdir_at(s, ins)
            dest = p.resolve(ins.args[-1], s, ins) if ins.cmd in ("COPY", "ADD") and len(ins.args) > 1 else "."
            dirs.append((absolute(dest, cwd), ins))
    return dirs


def _overlaps(a_path: str, b_path: str) -> bool:
    if a_path == "/" or b_path == "/":
        return True
    def under(x: str, y: str) -> bool:
        return x == y or x.startswith(y.rstrip("/") + "/")

    return under(a_path, b_path) or under(b_path, a_path)


def _is_dist(path: str) -> bool:
    return "dist" in posixpath.normpath(path).split("/")


@variant_check("copies_only_dist", reads=("parsed", "contents"),
               reasons=("from_context", "not_parsed", "not_run", "nothing", "ok", "ok_clean", "one_stage",
                        "too_much", "too_much_found", "from_image"))
@_needs_parse
def copies_only_dist(v: VariantFacts, p: ParsedDockerfile, a: Assignment) -> Outcome:
    if not _several_working(p):
        return skipped("one_stage")
    shipped = _shipped(p)
    taken: list[Instruction] = []
    undecided: list[tuple[Instruction, str]] = []
    for stage in shipped:
        for ins in stage.of("COPY", "ADD"):
            # ARG/ENV values resolved: the message names what is copied, not `${SRC}`
            sources = " ".join(p.resolve(src, stage, ins) or src for src in ins.args[:-1])
            ref = ins.flag("from")
            other = p.stage(ref) if ref else None
            if not ref and ins.cmd == "ADD" and all(looks_remote(w) for w in sources.split()):
                continue  # a download, not the context: build_policy's verdict (one mistake, one failure)
            if not ref:
                return failed("from_context", (Evidence.at(ins),), sources=sources, line=ins.line)
            if other is None:
                return failed("from_image", (Evidence.at(ins),), image=ref, line=ins.line)
            taken.append(ins)
            verdict = _judge_copy(p, ins, other)
            if isinstance(verdict, Outcome):
                return verdict
            undecided += [(ins, src) for src in verdict]
    if not taken:
        return failed("nothing", (_from(p.final),))
    if not undecided:
        return passed("ok", tuple(Evidence.at(c) for c in taken))
    return _judge_by_contents(v, a, undecided)


def _shipped(p: ParsedDockerfile) -> list[Stage]:
    """The final stage and the untainted stages it is built FROM: their own instructions are the
    final image's (a tainted ancestor is final_stage_isolated's verdict, not repeated here)."""
    return [p.final] + [s for s in p.final.lineage()[1:] if not role_of(p, s).tainted]


def _judge_copy(p: ParsedDockerfile, ins: Instruction, other: Stage) -> Outcome | list[str]:
    """A failing outcome, or the sources whose content only the running image can tell."""
    cwd = p.workdir_at(other)
    source_dirs = _source_dirs(p, other)
    unproven = []
    for raw in ins.args[:-1]:
        src = absolute(p.resolve(raw, other), cwd)
        if _is_dist(src):
            continue
        hit = next(((d, s) for d, s in source_dirs if _overlaps(src, d)), None)
        if hit is not None:
            return failed("too_much", (Evidence.at(ins), Evidence.at(hit[1])), sources=raw, stage=other.label,
                          line=ins.line, source_line=hit[1].line, where=hit[0])
        unproven.append(raw)
    return unproven


def _judge_by_contents(v, a, undecided: list[tuple[Instruction, str]]) -> Outcome:
    """A COPY --from of a directory that never received the sources (e.g. `/app/` the build filled
    with dist): the running image says whether only build output came along."""
    ins, raw = undecided[0]
    c = v.contents
    if c is None:
        return skipped("not_run")
    found = _leftovers(v, a)
    if found or c.error:
        return failed("too_much_found", (Evidence.at(ins), Evidence("observed", "\n".join(found[:20]))),
                      sources=raw, line=ins.line, found=", ".join(found[:3]) or c.error)
    return passed("ok_clean", (Evidence.at(ins),), sources=raw, line=ins.line)


@variant_check("offline_install", reads=("parsed",),
               reasons=("from_index", "no_install", "not_parsed", "ok", "one_stage"))
@_needs_parse
def offline_install(v: VariantFacts, p: ParsedDockerfile, a: Assignment) -> Outcome:
    if not _several_working(p):
        return skipped("one_stage")
    shipped = _shipped(p)
    installs = [i for s in shipped for i in s.of("RUN") if re.search(INSTALLS, i.command)]
    if not installs:
        return failed("no_install", (_from(p.final),))
    for ins in installs:
        if "--no-index" not in ins.command:
            line, text = ins.locate(INSTALLS) or (ins.line, ins.original)
            return failed("from_index", (Evidence.at(ins, line, text),), line=line)
    return passed("ok", tuple(Evidence.at(i) for i in installs))


@variant_check("final_image_clean", reads=("parsed", "contents"),
               reasons=("leftovers", "not_run", "ok", "one_stage", "unknown"))
def final_image_clean(v: VariantFacts, a: Assignment) -> Outcome:
    """What the final image really holds: no Poetry, no project sources or build files."""
    if v.parsed is not None and not _several_working(v.parsed):
        return skipped("one_stage")
    c = v.contents
    if c is None:
        return skipped("not_run")
    if c.error:
        return failed("unknown", error=c.error)
    command = Evidence("command", "docker run --rm --entrypoint sh IMAGE -c 'command -v poetry; ls -A \"$PWD\"'")
    tools, sources = leftovers(v, a)
    if tools or sources:
        listing = Evidence("observed", "\n".join((tools + sources)[:20]))
        return failed("leftovers", (listing, command), poetry=", ".join(tools[:3]) or "—",
                      sources=", ".join(sources[:3]) or "—")
    return passed("ok")
