"""The copy of a student's Dockerfile that is actually sent to the engine.

The engine builds a copy written into the job's log directory (`-f COPY`, the original context),
never the student's file itself, so that what this engine cannot or must not see is taken out
first, line numbers unchanged (every message and log line still points at the student's file):

- a `# syntax=` directive (one the policy gate allowed) is taken out: the engine's built-in
  frontend builds the file, and no frontend image is pulled on the student's behalf;
- `RUN <<EOF` heredocs, which BuildKit's parser (PyPI `dockerfile`) understands but the built-in
  frontend of engine 20.10 does not ("unknown instruction"), are rewritten in their simple, common
  form into the exec-form RUN BuildKit itself would run (`[*SHELL, script]`), padded with empty
  lines. Other heredoc shapes are left as written; the build then fails with a hint saying why;
- cache mounts (`RUN --mount=type=cache`) get an id of the grading's own, so no other grading's
  build shares their contents.

CRLF line ends and a UTF-8 BOM are kept as they are: both parse and build on this engine.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import dockerfile as buildkit_parser

from grader.errors import GraderError
from grader.facts import BuildfileChange

DEFAULT_SHELL: tuple[str, ...] = ("/bin/sh", "-c")
# BuildKit reads parser directives only from the comment lines before the first instruction; its
# own pattern is `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`. Leading blanks are accepted here too:
# a wider net only means a harmless comment line is also treated as a directive.
_DIRECTIVE = re.compile(r"^\s*#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
# `<<EOF`, `<<-EOF`, `<<"EOF"`, `<<'EOF'`: a heredoc word with nothing before or after it.
_SIMPLE_HEREDOC = re.compile(r"<<(-?)([\"']?)([A-Za-z_][A-Za-z0-9_]*)\2")
# Flags are written back as they were parsed (quotes removed): only ones that need no quoting.
_PLAIN_FLAG = re.compile(r"--[A-Za-z-]+(=[\w.,:/=@+%-]*)?")
_PLAIN_VALUE = re.compile(r"[\w.:/=@+%-]*")  # one mount option, written back without quoting


@dataclass(frozen=True)
class Directive:
    line: int
    key: str  # lower case: "syntax", "escape", ...
    value: str


@dataclass(frozen=True)
class Buildfile:
    text: str  # what the engine builds; same line count and numbering as the student's file
    changes: tuple[BuildfileChange, ...]


def lines_of(text: str) -> list[str]:
    """The file's lines as BuildKit counts them: split on "\\n" only (a CR stays on its line; form
    feeds and Unicode line separators are not line breaks for BuildKit, unlike str.splitlines)."""
    return text.split("\n")


def directives(text: str) -> list[Directive]:
    """The parser directives BuildKit reads: the comment lines at the top, before anything else."""
    found = []
    for number, line in enumerate(lines_of(text.removeprefix("\ufeff")), start=1):
        match = _DIRECTIVE.match(line)
        if not match:
            break
        found.append(Directive(number, match.group(1).lower(), match.group(2)))
    return found


def escape_char(text: str) -> str:
    """The escape character (`# escape=` directive), backslash by default."""
    chosen = [d.value for d in directives(text) if d.key == "escape"]
    return chosen[-1] if chosen and chosen[-1] in ("\\", "`") else "\\"


def prepare(text: str, cache_scope: str | None = None) -> Buildfile:
    """The copy to build: syntax directives out, simple RUN heredocs in exec form, and (with a
    `cache_scope`, one per grading) every cache mount given an id of that grading's own."""
    lines = lines_of(text)
    changes = _drop_syntax(lines, directives(text))
    original = buildkit_parser.parse_string(text)
    shells = _shells(original)
    rewritten = set()
    for command in original:
        flags = scoped_cache_flags(command.flags, cache_scope) if command.cmd.upper() == "RUN" else command.flags
        shell = shells.get(command.start_line, DEFAULT_SHELL)
        heredoc = _heredoc_as_exec(command, shell, flags)
        line = heredoc if heredoc is not None else _run_line(command, flags) if flags != command.flags else None
        if line is not None:
            _replace(lines, command, line)
            rewritten.add(command.start_line)
        if heredoc is not None:
            changes.append(BuildfileChange("heredoc_rewritten", command.start_line,
                                           {"word": command.heredocs[0].name, "shell": " ".join(shell)}))
    copy = "\n".join(lines)
    _require_same_lines(original, buildkit_parser.parse_string(copy), rewritten | {c.line for c in changes})
    return Buildfile(copy, tuple(changes))


def scoped_cache_flags(flags: tuple[str, ...], scope: str | None) -> tuple[str, ...]:
    """`--mount=type=cache,...` with `id=SCOPE/<its id or target>`.

    BuildKit keeps cache mounts by id (by default the target path) for every later build on the
    engine: without a scope, one student's build could read, or plant files in, the pip cache the
    next student's build mounts at the same target."""
    if scope is None:
        return flags
    return tuple(_scoped(flag, scope) for flag in flags)


def _scoped(flag: str, scope: str) -> str:
    name, _, spec = flag.partition("=")
    parts = [p.partition("=") for p in spec.split(",")]
    options = {key.strip().lower(): value for key, _, value in parts}
    plain = all(_PLAIN_VALUE.fullmatch(p) for p in spec.split(","))
    if name.lower() != "--mount" or options.get("type") != "cache" or not plain:
        return flag
    own = options.get("id") or options.get("target") or options.get("dst") or options.get("destination") or ""
    kept = [f"{key}={value}" if eq else key for key, eq, value in parts if key.strip().lower() != "id"]
    return name + "=" + ",".join([*kept, f"id={scope}/" + own.lstrip("/")])


def _run_line(command: buildkit_parser.Command, flags: tuple[str, ...]) -> str | None:
    """The RUN with other flags, on one line; None when it cannot be written back as it was parsed
    (a heredoc, a shell command that would read as JSON, flags needing quotes)."""
    if command.heredocs or not all(_PLAIN_FLAG.fullmatch(f) for f in flags):
        return None
    if command.json:
        rest = json.dumps(list(command.value), ensure_ascii=False)
    else:
        rest = command.value[0] if command.value else ""
        if rest.lstrip().startswith("["):
            return None
    return " ".join(["RUN", *flags, rest])


def _drop_syntax(lines: list[str], block: list[Directive]) -> list[BuildfileChange]:
    """Removes the syntax directives; the other directives (escape) move up to stay the block's
    first lines, as an empty line would end the block and silently drop them. The block keeps
    its length, so no line below it moves."""
    if not any(d.key == "syntax" for d in block):
        return []
    bom = "\ufeff" if lines[0].startswith("\ufeff") else ""
    own = [lines[d.line - 1].removeprefix("\ufeff").removesuffix("\r") for d in block]
    kept = [text for d, text in zip(block, own, strict=True) if d.key != "syntax"]
    for i, d in enumerate(block):
        cr = "\r" if lines[d.line - 1].endswith("\r") else ""
        lines[d.line - 1] = (kept[i] if i < len(kept) else "") + cr
    lines[0] = bom + lines[0]
    return [BuildfileChange("syntax_removed", d.line, {"frontend": d.value}) for d in block if d.key == "syntax"]


def _shells(commands: tuple[buildkit_parser.Command, ...]) -> dict[int, tuple[str, ...]]:
    """The SHELL in effect at each RUN's line. SHELL is image config: a stage built FROM an
    earlier stage inherits it; one built from an image starts with the default (the course's
    base image sets none)."""
    by_stage: dict[str, tuple[str, ...]] = {}
    shells: dict[int, tuple[str, ...]] = {}
    current: tuple[str, ...] = DEFAULT_SHELL
    name: str | None = None
    for c in commands:
        cmd = c.cmd.upper()
        if cmd == "FROM":
            current = by_stage.get(c.value[0].lower(), DEFAULT_SHELL) if c.value else DEFAULT_SHELL
            name = c.value[2].lower() if len(c.value) >= 3 and c.value[1].upper() == "AS" else None
        elif cmd == "SHELL" and c.json and c.value:
            current = tuple(c.value)
        elif cmd == "RUN":
            shells[c.start_line] = current
        if cmd in ("FROM", "SHELL") and name:
            by_stage[name] = current
    return shells


def _heredoc_as_exec(command: buildkit_parser.Command, shell: tuple[str, ...], flags: tuple[str, ...]) -> str | None:
    """`RUN [flags] ["/bin/sh", "-c", "<script>"]` for `RUN [flags] <<WORD`, or None when the
    instruction is not of that simple shape.

    BuildKit runs a heredoc without a `#!` line as the script given to the stage's shell, so the
    exec form with the same shell and script means the same thing. Its variables are expanded by
    that shell at run time, not by BuildKit, quoted word or not."""
    if command.cmd.upper() != "RUN" or len(command.heredocs) != 1 or len(command.value) != 1:
        return None
    heredoc = command.heredocs[0]
    match = _SIMPLE_HEREDOC.fullmatch(command.value[0])
    if match is None or heredoc.file_descriptor != 0 or heredoc.content.startswith("#!"):
        return None
    if not all(_PLAIN_FLAG.fullmatch(f) for f in flags):
        return None
    script = heredoc.content.replace("\r\n", "\n")  # a CRLF file's CRs are the editor's, not the script's
    if match.group(1) == "-":  # <<- strips leading tabs, as BuildKit does
        script = "".join(line.lstrip("\t") for line in script.splitlines(keepends=True))
    return " ".join(["RUN", *flags, json.dumps([*shell, script], ensure_ascii=False)])


def _replace(lines: list[str], command: buildkit_parser.Command, rewrite: str) -> None:
    first, last = command.start_line - 1, command.end_line - 1
    cr = "\r" if lines[first].endswith("\r") else ""
    lines[first] = rewrite + cr
    for index in range(first + 1, last + 1):
        lines[index] = cr


def _require_same_lines(before: tuple, after: tuple, changed: set[int]) -> None:
    """Every instruction of the copy starts on the line it starts on in the student's file."""
    def starts(commands: tuple) -> list[tuple[str, int]]:
        return [(c.cmd.upper(), c.start_line) for c in commands]

    same_ends = all(a.end_line == b.end_line for a, b in zip(before, after, strict=False)
                    if a.start_line not in changed)
    if starts(before) != starts(after) or not same_ends:
        raise GraderError("the Dockerfile copy for the engine does not keep the file's line numbers "
                          "(grader bug in grader/buildfile.py)")
