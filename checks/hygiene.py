"""Habits the course teaches that do not stop the image from working: advice, not points.

A small build context (.dockerignore), no pip cache in the layers, RUN commands chained
instead of one layer each, and no shell variable expected to survive from one RUN to the next.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from checks.hints import variable_across_runs
from grader.assignment import Assignment
from grader.dockerfile import Instruction, ParsedDockerfile, Stage
from grader.facts import VariantFacts


def _context_dir(v) -> str:
    """The student's build context, repo-relative: the directory of the Dockerfile."""
    parent = PurePosixPath(v.dockerfile_path).parent if v.dockerfile_path else PurePosixPath(".")
    return str(parent)


@variant_check("dockerignore", reads=("context",),
               reasons=("ineffective", "missing", "no_context", "ok", "reference_context"))
def dockerignore(v: VariantFacts, a: Assignment) -> Outcome:
    if v.context_is_reference:
        return skipped("reference_context")
    if v.context is None:
        return skipped("no_context")
    ctx = v.context
    where = v.context_rel or _context_dir(v)
    sizes = dict(context=f"{where}/", files=ctx.file_count, size=round(ctx.size_bytes / 1_000_000, 1))
    # Lists what really reaches the engine, after .dockerignore, with the base image the student has.
    see = Evidence("command", f"printf 'FROM {a.base_image}\\nCOPY . /ctx\\nRUN ls -A /ctx\\n' "
                              f"| docker build --no-cache --progress=plain -f - {where}")
    sent = Evidence("observed", f"{ctx.file_count} files, {sizes['size']} MB sent to the engine")
    if not ctx.dockerignore:
        evidence = [Evidence("observed", f"no .dockerignore in {where}/"), sent, see]
        if ctx.unwanted:
            evidence.insert(1, Evidence("observed", "sent anyway: " + ", ".join(ctx.unwanted)))
        return failed("missing", tuple(evidence), **sizes)
    if ctx.unwanted:
        return failed("ineffective", (Evidence("observed", "sent anyway: " + ", ".join(ctx.unwanted)), sent, see),
                      names=", ".join(ctx.unwanted), **sizes)
    return passed("ok", (), **sizes)


# pip's own invocations that download and so fill its cache: `pip install`, `python -m pip wheel`,
# `pip3.11 --no-cache-dir install`, ...
_PIP = re.compile(r"(?<![\w-])pip[\d.]*\s+(?:-\S+\s+)*(?:install|wheel)\b")
_NO_CACHE = re.compile(r"(?<!\S)--no-cache(?:-dir)?(?!\S)")  # optparse also takes the prefix
_ISOLATED = re.compile(r"(?<!\S)--isolated(?!\S)")
# `pip install --no-index` of wheel files (the recipe's group 4) leaves pip nothing to cache: its HTTP
# cache holds downloads (there are none), its wheel cache wheels it builds from sdists (a wheel file
# is installed as it is), and --no-index skips the version check (pip's own req_command.py). Only an
# sdist (`foo-1.0.tar.gz`) installed that way would have its built wheel cached.
_INSTALL = re.compile(r"(?<![\w-])pip[\d.]*\s+(?:-\S+\s+)*install\b")
_NO_INDEX = re.compile(r"(?<!\S)--no-index(?!\S)")
_SDIST = re.compile(r"\.(?:tar\.gz|tgz|tar\.bz2|tar\.xz|zip)['\"]?(?!\S)")
_COMMANDS = re.compile(r"&&|\|\||[;|\n]")
# pip turns its cache off for any value strtobool accepts, "false" and "0" included (kept for
# backwards compatibility); an empty or other value is not a setting pip honours.
_PIP_BOOL = {"1", "0", "y", "n", "yes", "no", "t", "f", "true", "false", "on", "off"}
_INLINE_NO_CACHE = re.compile(r"\bPIP_NO_CACHE_DIR=['\"]?(\w+)")


def _env_no_cache(stage: Stage, parsed: ParsedDockerfile, upto: Instruction) -> bool:
    """Whether PIP_NO_CACHE_DIR is set, by ENV in the stage chain or by ARG in this stage, before `upto`."""
    value: str | None = None
    for s in reversed(stage.lineage()):  # oldest first
        for ins in s.instructions:
            if ins is upto:
                return value is not None and value.strip("\"'").lower() in _PIP_BOOL
            if ins.cmd == "ENV":
                pairs = dict(zip(ins.args[0::2], ins.args[1::2], strict=False))
                value = pairs.get("PIP_NO_CACHE_DIR", value)
            elif ins.cmd == "ARG" and s is stage:  # an ARG's scope ends with its stage
                for arg in ins.args:
                    name, eq, default = arg.partition("=")
                    if name == "PIP_NO_CACHE_DIR":
                        value = default if eq else parsed.global_args.get(name)
    return False


def _caches_pip(ins: Instruction, env_no_cache: bool) -> bool:
    if any(f.startswith("--mount=") and "type=cache" in f and ".cache" in f for f in ins.flags):
        return False  # the cache lives in a BuildKit cache mount, not in the layer
    text = ins.command
    inline = _INLINE_NO_CACHE.search(text)
    env = env_no_cache or bool(inline and inline.group(1).lower() in _PIP_BOOL)
    for command in _COMMANDS.split(text):
        if not _PIP.search(command) or _NO_CACHE.search(command):
            continue
        if _INSTALL.search(command) and _NO_INDEX.search(command) and not _SDIST.search(command):
            continue  # nothing is downloaded or built: nothing is cached
        if env and not _ISOLATED.search(command):  # --isolated makes pip ignore PIP_* variables
            continue
        return True
    return False


@variant_check("pip_no_cache", reads=("parsed",), reasons=("cached", "no_pip", "not_parsed", "ok"))
def pip_no_cache(v: VariantFacts, a: Assignment) -> Outcome:
    if v.parsed is None:
        return skipped("not_parsed")
    checked = []
    # Only layers that ship count: a build stage's cache is thrown away with the stage.
    for stage in v.parsed.final.lineage():
        for ins in stage.of("RUN"):
            if not _PIP.search(ins.command):
                continue
            if _caches_pip(ins, _env_no_cache(stage, v.parsed, ins)):
                line, text = ins.locate(_PIP.pattern) or (ins.line, ins.original)
                return failed("cached", (Evidence.at(ins, line, text),), line=line)
            checked.append(ins)
    if not checked:
        return passed("no_pip")
    return passed("ok", count=len(checked))


def _chainable(first: Instruction, second: Instruction) -> bool:
    return (first.cmd == second.cmd == "RUN" and not first.json_form and not second.json_form
            and first.flags == second.flags)


@variant_check("layers_chained", reads=("parsed",), reasons=("consecutive", "not_parsed", "ok"))
def layers_chained(v: VariantFacts, a: Assignment) -> Outcome:
    if v.parsed is None:
        return skipped("not_parsed")
    groups: list[list[Instruction]] = []
    for stage in v.parsed.stages:
        for first, second in zip(stage.instructions, stage.instructions[1:], strict=False):
            if not _chainable(first, second):
                continue
            if groups and groups[-1][-1] is first:
                groups[-1].append(second)
            else:
                groups.append([first, second])
    if not groups:
        return passed("ok")
    evidence = tuple(Evidence.at(ins) for group in groups for ins in group)
    pairs = ", ".join("–".join(str(ins.line) for ins in group) for group in groups)
    return failed("consecutive", evidence, pairs=pairs, line=groups[0][0].line)


@variant_check("run_variables", reads=("parsed",), reasons=("across_runs", "not_parsed", "ok"))
def run_variables(v: VariantFacts, a: Assignment) -> Outcome:
    if v.parsed is None:
        return skipped("not_parsed")
    hint = variable_across_runs(v.parsed)
    if hint is None or hint.line is None:
        return passed("ok")
    used = v.parsed.instruction_at(hint.line)
    line_text = used.physical[hint.line - used.line].strip() if used and used.physical else None
    evidence = (Evidence.at(used, hint.line, line_text),) if used else ()
    return failed("across_runs", evidence, name=hint.name, line=hint.line)
