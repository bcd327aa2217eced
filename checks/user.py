"""Who the process runs as: from the parse, the image config and the running container."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from grader.assignment import Assignment
from grader.dockerfile import Instruction, ParsedDockerfile, Stage, is_root_user
from grader.facts import VariantFacts


def _uid_command(v) -> Evidence:
    return Evidence("command", "docker exec <container> grep Uid /proc/1/status")


def _observed_uid(v):
    """The uid read from the running container, or the Outcome to return when there is none."""
    r = v.runtime
    if r is None or not r.started:
        return skipped("not_run")
    if r.uid is None and r.exited_early:
        return skipped("exited")
    if r.uid is None:
        return failed("unknown", (_uid_command(v),))
    return r.uid


@variant_check("user_checked", reads=("runtime",), reasons=("exited", "not_run", "ok", "unknown"))
def user_checked(v: VariantFacts, a: Assignment) -> Outcome:
    uid = _observed_uid(v)
    return uid if not isinstance(uid, int) else passed("ok", uid=uid)


@variant_check("runs_as_root", reads=("runtime", "parsed"),
               reasons=("exited", "not_root", "not_root_user", "not_run", "ok", "unknown"))
def runs_as_root(v: VariantFacts, a: Assignment) -> Outcome:
    uid = _observed_uid(v)
    if not isinstance(uid, int):
        return uid
    if uid != 0:
        parsed = v.parsed
        final = _final_user(parsed) if parsed is not None else None
        if parsed is not None and final is not None:  # the USER that did it, with where its value came from
            ins, stage, resolved = final
            evidence = (*_user_evidence(parsed, ins, stage, resolved), _uid_command(v))
            return failed("not_root_user", evidence, uid=uid, user=resolved, line=ins.line)
        return failed("not_root", (_uid_command(v),), uid=uid)
    return passed("ok")


@variant_check("runtime_nonroot", reads=("runtime",), reasons=("exited", "not_run", "ok", "root", "unknown"))
def runtime_nonroot(v: VariantFacts, a: Assignment) -> Outcome:
    uid = _observed_uid(v)
    if not isinstance(uid, int):
        return uid
    if uid == 0:
        return failed("root", (Evidence("observed", "uid=0 (root)"), _uid_command(v)))
    return passed("ok", uid=uid)


# Options of Debian's adduser/addgroup and of useradd that take a value (the next word).
_VALUED = {"--home", "--shell", "--gecos", "--comment", "--ingroup", "--uid", "--gid", "--firstuid", "--lastuid",
           "--conf", "--add_extra_groups", "--extrausers", "-u", "-g", "-G", "-d", "-s", "-c", "-k", "-e", "-f",
           "-K", "-p", "--home-dir", "--groups", "--skel", "--expiredate", "--inactive", "--key", "--password",
           "--base-dir", "-b"}


@dataclass(frozen=True)
class Created:
    name: str
    uid: str | None
    line: int
    text: str


def _created_users(p: ParsedDockerfile) -> list[Created]:
    """The users the final stage (and what it is built FROM) creates, ARGs resolved."""
    found = []
    for stage in p.final.lineage():
        for ins in stage.of("RUN"):
            for command in re.split(r"&&|\|\||[;|\n]", p.resolve(ins.command, stage, ins)):
                user = _parse_creation(command)
                if user is not None:
                    line, text = ins.locate(r"\b(adduser|useradd)\b") or (ins.line, ins.original)
                    found.append(Created(user[0], user[1], line, text))
    return found


def _parse_creation(command: str) -> tuple[str, str | None] | None:
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    tool = next((i for i, w in enumerate(words) if w.rsplit("/", 1)[-1] in ("adduser", "useradd")), None)
    if tool is None:
        return None
    positional, uid, skip = [], None, False
    for i, word in enumerate(words[tool + 1:]):
        if skip:
            skip = False
            continue
        name, eq, value = word.partition("=")
        if name in ("--uid", "-u"):
            uid = value if eq else (words[tool + 2 + i] if tool + 2 + i < len(words) else None)
        if word.startswith("-"):
            skip = name in _VALUED and not eq
            continue
        positional.append(word)
    if not positional:
        return None
    # `adduser NAME` / `useradd [options] NAME`; `adduser USER GROUP` only adds to a group.
    return (positional[0] if words[tool].endswith("adduser") else positional[-1]), uid


def _final_user(p: ParsedDockerfile) -> tuple[Instruction, Stage, str] | None:
    """The USER in effect in the final image, its stage, and its value with ARG/ENV resolved."""
    for stage in p.final.lineage():
        users = stage.of("USER")
        if users:
            ins = users[-1]
            return ins, stage, p.resolve(ins.args[0] if ins.args else "", stage, ins).strip()
    return None


def _user_evidence(p: ParsedDockerfile, ins: Instruction, stage: Stage, resolved: str) -> tuple[Evidence, ...]:
    """USER as written, and where the value came from when it is an ARG/ENV (`USER ${USER}`)."""
    evidence = [Evidence.at(ins)]
    written = ins.args[0] if ins.args else ""
    if written != resolved:
        for name in re.findall(r"\$\{?(\w+)", written):
            source = p.definition(stage, ins, name)
            if source is not None:
                evidence.append(Evidence.at(source))
        evidence.append(Evidence("observed", f"USER {written} → {resolved}"))
    return tuple(evidence)


@variant_check("user_created", reads=("parsed",), reasons=("missing", "not_parsed", "ok", "other_user"))
def user_created(v: VariantFacts, a: Assignment) -> Outcome:
    if v.parsed is None:
        return skipped("not_parsed")
    created = _created_users(v.parsed)
    if not created:
        return failed("missing")
    evidence = tuple(Evidence("dockerfile", c.text, c.line) for c in created)
    final = _final_user(v.parsed)
    if final is None:  # no USER at all: final_user_nonroot says so
        return passed("ok", evidence, user=created[-1].name, line=created[-1].line)
    ins, stage, resolved = final
    who = resolved.split(":", 1)[0]
    named = any(who in (c.name, c.uid) for c in created)
    # a bare uid matches a created user whose uid the file leaves to adduser; root is another check's
    if not who or is_root_user(who) or named or (who.isdigit() and any(c.uid is None for c in created)):
        return passed("ok", evidence, user=created[-1].name, line=created[-1].line)
    return failed("other_user", evidence + _user_evidence(v.parsed, ins, stage, resolved), created=created[-1].name,
                  user=resolved, line=ins.line, created_line=created[-1].line)


@variant_check("final_user_nonroot", reads=("parsed", "image"),
               reasons=("empty", "image_root", "no_user", "not_parsed", "ok", "root"))
def final_user_nonroot(v: VariantFacts, a: Assignment) -> Outcome:
    if v.parsed is None:
        return skipped("not_parsed")
    final = _final_user(v.parsed)
    if final is None:
        return failed("no_user", (Evidence.at(v.parsed.final.from_ins),) if v.parsed.final.from_ins else ())
    ins, stage, resolved = final
    evidence = _user_evidence(v.parsed, ins, stage, resolved)
    if not resolved.split(":", 1)[0]:
        return failed("empty", evidence, written=ins.args[0] if ins.args else "", line=ins.line)
    if is_root_user(resolved):
        return failed("root", evidence, user=resolved or "root", line=ins.line)
    if v.image is not None and is_root_user(v.image.user or "root"):
        return failed("image_root", evidence, user=v.image.user or "root")
    return passed("ok", evidence, user=resolved)
