"""A Dockerfile as comparable units: what two files have in common once everything a copier can
change for free is taken away.

The file is parsed by BuildKit's parser (grader/dockerfile.py), as for grading, so comments, blank
lines and line continuations are gone before anything is compared. Each instruction becomes one or
more *units*: each sub-command of a RUN (`a && b; c`, each line of a heredoc) and each of its
flags, each pair of an ENV/ARG/LABEL, any other instruction whole. Inside a unit the words are
split as the shell splits them (quoting and spacing vanish), then abstracted: ARG names, and the
ENV names the file itself reads, become `$V`; stage names `S<index>`, absolute paths `/P`, the users
and groups the file creates `U`. A unit's shingles are its word 3-grams, never spanning two units, so moving
independent instructions around changes no shingle.
"""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass

from grader.dockerfile import Instruction, ParsedDockerfile, Stage, absolute, is_root_user, parse_text

K = 3  # words per shingle: long enough that "pip install --no-cache-dir" alone is one, short
# enough that one changed flag leaves most of a sub-command's shingles intact
SEPARATORS = frozenset({"&&", "||", ";", "&"})
PAIRED = frozenset({"ENV", "LABEL"})  # BuildKit gives their arguments as name, value, name, value
USER_TOOLS = frozenset({"adduser", "useradd", "addgroup", "groupadd"})
# Options of those tools that take a value: the value is not the name being created...
_VALUE_OPTIONS = frozenset({"--home", "--home-dir", "--shell", "--gecos", "--comment", "--uid", "--gid",
                            "--ingroup", "--groups", "--skel", "--key", "--firstuid", "--lastuid",
                            "-d", "-s", "-c", "-u", "-g", "-G", "-k", "-K"})
# ...except these, whose values name groups.
_GROUP_OPTIONS = frozenset({"--ingroup", "--gid", "--groups", "-g", "-G"})
_VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}|\$(\w+)")
_ABSOLUTE_PATH = re.compile(r"(^|[=,:])(/[^\s,:=]*)")
_STAGE_REF = re.compile(r"(\bfrom=)([\w.-]+)", re.IGNORECASE)


_PLACEHOLDERS = re.compile(r"\$V|/P|(?<![\w.-])(U|S\d+)(?![\w.-])")


@dataclass(frozen=True)
class Unit:
    text: str  # the normalised words, e.g. "RUN apt-get install -y --no-install-recommends curl"
    line: int  # physical lines of the file the unit was written on
    end_line: int
    shingles: frozenset[str]

    @property
    def abstract_only(self) -> bool:
        """Nothing but abstracted names after the instruction (`ENV $V=/P`, `WORKDIR /P`, `ARG $V`):
        a shape every file has, not something anyone wrote."""
        rest = self.text.partition(" ")[2]
        return not _PLACEHOLDERS.sub("", rest).strip(' =:"/')


@dataclass(frozen=True)
class Normalised:
    path: str
    units: tuple[Unit, ...]
    lines: tuple[str, ...]  # the file as written, for showing matched lines

    def excerpt(self, first: int, last: int) -> str:
        return "\n".join(self.lines[first - 1:last])


@dataclass(frozen=True)
class _Names:
    """What this file calls its variables, stages and users, and so what to abstract."""

    variables: frozenset[str]
    stages: dict[str, str]  # lower-case name or index -> "S<index>"
    users: re.Pattern[str] | None
    paths: tuple[str, ...]  # the file's own directories, longest first

    def word(self, word: str) -> str:
        word = _VARIABLE.sub(lambda m: "$V" if (m.group(1) or m.group(2)) in self.variables else m.group(0), word)
        word = _ABSOLUTE_PATH.sub(self._path, word)
        word = _STAGE_REF.sub(lambda m: m.group(1) + self.stages.get(m.group(2).lower(), m.group(2)), word)
        if self.users is not None:
            word = self.users.sub("U", word)
        return word or '""'

    def _path(self, match: re.Match[str]) -> str:
        """`/app/dist` -> `/P/dist` when /app is the file's own directory; system paths
        (/usr/local/lib/..., /var/lib/apt/lists) stay: renaming them would change what the file does."""
        prefix, path = match.group(1), match.group(2)
        for own in self.paths:
            if path == own or path.startswith(own + "/"):
                return prefix + "/P" + path[len(own):]
        return match.group(0)


def normalise(text: str, path: str = "Dockerfile") -> Normalised:
    """The units of a Dockerfile, in file order. Raises SubmissionError when BuildKit cannot parse it."""
    parsed = parse_text(text, path)
    names = _names(parsed)
    units = [u for ins in parsed.preamble for u in _units(ins, names)]
    for stage in parsed.stages:
        units.append(_from_unit(stage, names))
        units.extend(u for ins in stage.instructions for u in _units(ins, names))
    return Normalised(path, tuple(units), parsed.lines)


def shingles(words: list[str]) -> frozenset[str]:
    """Word K-grams of one unit (the unit whole when shorter), words joined by the unit separator."""
    if len(words) <= K:
        return frozenset({"\x1f".join(words)})
    return frozenset("\x1f".join(words[i:i + K]) for i in range(len(words) - K + 1))


def words(command: str) -> list[str]:
    """Shell words and operators (`&&`, `;`, `|`), quotes removed."""
    return list(_split_words(command))


@functools.lru_cache(maxsize=8192)  # shlex is slow, and most commands recur: the recipe, in every file
def _split_words(command: str) -> tuple[str, ...]:
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return tuple(lexer)
    except ValueError:  # an unbalanced quote: BuildKit accepts the file, the shell would fail; compare as written
        return tuple(command.split())


def _unit(words_: list[str], line: int, end_line: int) -> Unit:
    return Unit(" ".join(words_), line, end_line, shingles(words_))


def _names(parsed: ParsedDockerfile) -> _Names:
    variables: set[str] = set()
    everything = parsed.preamble + [i for s in parsed.stages for i in s.instructions]
    referenced = {m.group(1) or m.group(2) for ins in everything for text in (ins.original, *ins.heredocs)
                  for m in _VARIABLE.finditer(text)}
    for ins in everything:
        if ins.cmd == "ARG":  # a build argument exists for the file alone: free to rename
            variables.update(a.partition("=")[0] for a in ins.args)
        elif ins.cmd == "ENV":  # only when the file reads it: PYTHONUNBUFFERED or PORT mean something to a program
            variables.update(n for n in ins.args[0::2] if n in referenced)
    stages = {str(s.index): f"S{s.index}" for s in parsed.stages}
    stages.update({s.name.lower(): f"S{s.index}" for s in parsed.stages if s.name})
    users = sorted(_created_users(parsed), key=len, reverse=True)
    pattern = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, users)) + r")(?![\w.-])") if users else None
    return _Names(frozenset(variables), stages, pattern, _own_paths(parsed))


def _own_paths(parsed: ParsedDockerfile) -> tuple[str, ...]:
    """Directories the file chooses itself, free to rename: WORKDIRs, absolute COPY/ADD
    destinations, paths held in ARG/ENV, `mkdir` targets and users' homes (ARGs resolved)."""
    found: set[str] = set()
    found.update(v for ins in parsed.preamble for v in _arg_values(ins))
    for stage in parsed.stages:
        for ins in stage.instructions:
            if ins.cmd == "WORKDIR" and ins.args:
                found.add(absolute(parsed.resolve(ins.args[0], stage, ins), parsed.workdir_at(stage, ins)))
            elif ins.cmd in ("COPY", "ADD") and len(ins.args) >= 2:
                found.add(parsed.resolve(ins.args[-1], stage, ins))
            elif ins.cmd in ("ARG", "ENV"):
                found.update(parsed.resolve(v, stage, ins) for v in _arg_values(ins))
            elif ins.cmd == "RUN":
                for part in _sub_commands(words(parsed.resolve(ins.command, stage, ins))):
                    found.update(_created_dirs(part))
    own = {p.rstrip("/") for p in found if p.startswith("/") and " " not in p and ":" not in p}
    return tuple(sorted(own - {""}, key=len, reverse=True))


def _arg_values(ins: Instruction) -> list[str]:
    if ins.cmd == "ENV":
        return [v.strip("\"'") for v in ins.args[1::2]]
    return [a.partition("=")[2].strip("\"'") for a in ins.args] if ins.cmd == "ARG" else []


def _created_dirs(part: list[str]) -> list[str]:
    if part and part[0] == "mkdir":
        return [w for w in part[1:] if not w.startswith("-")]
    return [value for option, value in zip(part, part[1:], strict=False) if option in ("--home", "--home-dir", "-d")
            and part[0] in USER_TOOLS]


def _created_users(parsed: ParsedDockerfile) -> set[str]:
    """Users and groups the file creates or switches to, with ARG/ENV values resolved: a copier
    renames them at no cost, so they say nothing."""
    found: set[str] = set()
    for stage in parsed.stages:
        for ins in stage.instructions:
            if ins.cmd == "USER" and ins.args:
                found.update(n for n in parsed.resolve(ins.args[0], stage, ins).split(":") if n)
            elif ins.cmd == "RUN":
                for part in _sub_commands(words(parsed.resolve(ins.command, stage, ins))):
                    found.update(_user_tool_names(part))
    return {n for n in found if n and not n.isdigit() and not is_root_user(n) and not n.startswith("$")}


def _user_tool_names(part: list[str]) -> set[str]:
    if not part or part[0] not in USER_TOOLS:
        return set()
    names: set[str] = set()
    expects_value: str | None = None
    for word in part[1:]:
        option, eq, value = word.partition("=")
        if expects_value is not None:
            if expects_value in _GROUP_OPTIONS:
                names.update(word.split(","))
            expects_value = None
        elif eq and option in _GROUP_OPTIONS:
            names.update(value.split(","))
        elif word in _VALUE_OPTIONS:
            expects_value = word
        elif not word.startswith("-"):
            names.add(word)
    return names


def _sub_commands(words_: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words_:
        if word in SEPARATORS:
            parts.append([])
        else:
            parts[-1].append(word)
    return [p for p in parts if p]


def _from_unit(stage: Stage, names: _Names) -> Unit:
    base = names.stages[stage.parent.name.lower()] if stage.parent and stage.parent.name else stage.base_resolved
    ins = stage.from_ins
    flags = [names.word(f) for f in ins.flags] if ins else []
    alias = ["AS", f"S{stage.index}"] if stage.name else []
    return _unit(["FROM", *flags, base, *alias], stage.line, stage.line)


def _units(ins: Instruction, names: _Names) -> list[Unit]:
    if ins.cmd == "RUN":
        return _run_units(ins, names)
    if ins.cmd in PAIRED or ins.cmd == "ARG":
        pairs = zip(ins.args[0::2], ins.args[1::2], strict=False) if ins.cmd in PAIRED else (
            a.partition("=")[::2] for a in ins.args)
        return [_unit([ins.cmd, _pair(key, value, ins.cmd, names)], ins.line, ins.end_line) for key, value in pairs]
    flags = [names.word(f) for f in ins.flags]
    args = [" ".join(a.split()) for a in ins.args] if ins.json_form else words(" ".join(ins.args))
    return [_unit([ins.cmd, *flags, *(names.word(a) for a in args)], ins.line, ins.end_line)]


def _pair(key: str, value: str, cmd: str, names: _Names) -> str:
    name = "$V" if cmd != "LABEL" and key in names.variables else key
    value = " ".join(names.word(w) for w in words(value))
    return f"{name}={value}" if value and value != '""' else name


def _run_units(ins: Instruction, names: _Names) -> list[Unit]:
    units = [_unit(["RUN", names.word(f)], ins.line, ins.line) for f in ins.flags]
    if ins.json_form:
        return [*units, _unit(["RUN", *(names.word(a) for a in ins.args)], ins.line, ins.end_line)]
    scripts = [" ".join(ins.args)] + [line for body in ins.heredocs for line in body.splitlines()]
    parts = [p for script in scripts for p in _sub_commands(_without_heredoc_markers(words(script)))]
    starts = _start_lines(ins, parts)
    for i, (part, start) in enumerate(zip(parts, starts, strict=True)):
        following = starts[i + 1] if i + 1 < len(starts) else ins.end_line + 1
        units.append(_unit(["RUN", *(names.word(w) for w in part)], start, max(start, following - 1)))
    return units


def _without_heredoc_markers(words_: list[str]) -> list[str]:
    """`<<EOF` / `<<-EOF` (split by the shell lexer into `<<` and `EOF`) only open a heredoc."""
    kept: list[str] = []
    after_marker = False
    for word in words_:
        if not after_marker and not word.startswith("<<"):
            kept.append(word)
        after_marker = word in ("<<", "<<-")
    return kept


def _start_lines(ins: Instruction, parts: list[list[str]]) -> list[int]:
    """The physical line each sub-command starts on (a chained RUN spans many lines): its words are
    searched forward through the instruction as written, each after the one before."""
    text = "\n".join(ins.physical)
    position, lines = 0, []
    for part in parts:
        start = None
        for word in part:
            found = text.find(word, position) if word else -1
            if found >= 0:
                start = found if start is None else start
                position = found + len(word)
        lines.append(ins.line + text.count("\n", 0, position if start is None else start))
    return lines
