"""A parsed Dockerfile: stages, instructions with line numbers, ARG values in FROM resolved.

Parsing is BuildKit's own parser (PyPI `dockerfile`); this module only shapes its output.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile as buildkit_parser

from grader.errors import SubmissionError

ROOT_NAMES = {"root", "0"}
_REFERENCED = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")  # names a word refers to: $NAME, ${NAME...}
MAX_DOCKERFILE_BYTES = 256 * 1024
_KNOWN_CMDS = frozenset(buildkit_parser.all_cmds())


@dataclass(frozen=True)
class Instruction:
    cmd: str  # upper case, as BuildKit reports it
    args: tuple[str, ...]
    flags: tuple[str, ...]
    original: str
    line: int
    end_line: int
    json_form: bool
    physical: tuple[str, ...] = ()  # the file's own lines from `line` to `end_line`, as written
    heredocs: tuple[str, ...] = ()  # bodies of `<<EOF` documents, which are part of the command

    @property
    def source(self) -> str:
        """The instruction as the student wrote it (all its lines), for evidence."""
        return "\n".join(self.physical) if self.physical else self.original

    @property
    def command(self) -> str:
        """What a RUN executes: its arguments, and the bodies of its heredocs."""
        return "\n".join((" ".join(self.args), *self.heredocs))

    def locate(self, pattern: str) -> tuple[int, str] | None:
        """The physical line (number, text) where `pattern` first matches; None when it does not.

        A chained `RUN a && \\ b && \\ c` is one instruction over several lines: evidence about
        `b` must name b's own line, not the RUN's first one."""
        regex = re.compile(pattern)
        for offset, text in enumerate(self.physical):
            if regex.search(text):
                return self.line + offset, text.strip()
        if regex.search(self.command):
            return self.line, (self.physical[0].strip() if self.physical else self.original)
        return None

    def flag(self, name: str) -> str | None:
        """The value of `--name=value`, or None."""
        prefix = f"--{name}="
        for flag in self.flags:
            if flag.lower().startswith(prefix):
                return flag[len(prefix):]
        return None


@dataclass
class Stage:
    index: int
    name: str | None
    base: str  # as written, e.g. "${BASE}" or "build"
    base_resolved: str  # ARGs substituted
    line: int
    instructions: list[Instruction] = field(default_factory=list)
    parent: Stage | None = None  # set when the stage is built FROM an earlier stage
    from_ins: Instruction | None = None  # the FROM line itself, for evidence

    @property
    def from_instruction(self) -> str:
        return f"FROM {self.base}" + (f" AS {self.name}" if self.name else "")

    def lineage(self) -> list[Stage]:
        """This stage, then the earlier stages it is built FROM, nearest first."""
        chain = [self]
        while chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        return chain

    def of(self, *cmds: str) -> list[Instruction]:
        return [i for i in self.instructions if i.cmd in cmds]

    @property
    def label(self) -> str:
        return self.name or str(self.index)


@dataclass
class ParsedDockerfile:
    path: str  # repo-relative, for messages
    stages: list[Stage]
    global_args: dict[str, str]
    preamble: list[Instruction] = field(default_factory=list)  # the ARGs before the first FROM
    lines: tuple[str, ...] = ()  # the file's text, one entry per line (BOM and CR removed)

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def instruction_at(self, line: int) -> Instruction | None:
        """The instruction that spans `line`, for evidence built from a line number."""
        for stage in self.stages:
            for ins in stage.instructions:
                if ins.line <= line <= ins.end_line:
                    return ins
        return None

    def sources_of(self, stage: Stage) -> list[Stage]:
        """The earlier stages `stage` is built from or copies/mounts from (directly)."""
        found = [stage.parent] if stage.parent is not None else []
        for ins in stage.instructions:
            for ref in _stage_refs(ins):
                other = self.stage(ref)
                if other is not None and other.index < stage.index and other not in found:
                    found.append(other)
        return found

    def needed(self) -> list[Stage]:
        """The stages BuildKit builds for the final image (the others are skipped), in file order."""
        seen: dict[int, Stage] = {}
        todo = [self.final]
        while todo:
            stage = todo.pop()
            if stage.index not in seen:
                seen[stage.index] = stage
                todo.extend(self.sources_of(stage))
        return [seen[i] for i in sorted(seen)]

    def values_at(self, stage: Stage, upto: Instruction | None = None) -> dict[str, str]:
        """ARG and ENV values in effect in `stage` before `upto` (all of the stage when None).

        Docker's scoping: ENV is inherited through FROM an earlier stage; an ARG lasts until the
        end of its stage, and a global ARG (before the first FROM) is visible only where the stage
        declares it again (`ARG NAME`)."""
        values: dict[str, str] = {}
        for s in reversed(stage.lineage()):  # oldest first
            for ins in s.instructions:
                if ins is upto:
                    return values
                if ins.cmd == "ENV":
                    for name, value in _env_pairs(ins):
                        values[name] = substitute(value, values)
                elif ins.cmd == "ARG" and s is stage:
                    for arg in ins.args:
                        name, eq, default = arg.partition("=")
                        if eq:
                            values.setdefault(name, substitute(default.strip("\"'"), values))
                        elif name in self.global_args:
                            values.setdefault(name, self.global_args[name])
        return values

    def workdir_at(self, stage: Stage, upto: Instruction | None = None) -> str:
        """The working directory (absolute) in `stage` before `upto`, following WORKDIR through FROM.

        The base image's own WORKDIR is unknown here; "/" is what the course's base image has."""
        cwd = "/"
        for s in reversed(stage.lineage()):
            for ins in s.instructions:
                if ins is upto:
                    return cwd
                if ins.cmd == "WORKDIR" and ins.args:
                    cwd = absolute(self.resolve(ins.args[0], s, ins), cwd)
        return cwd

    def resolve(self, text: str, stage: Stage, upto: Instruction | None = None) -> str:
        """`text` with the stage's ARG/ENV values substituted (`USER ${USER}` -> `USER user`)."""
        return substitute(text, self.values_at(stage, upto))

    def stage(self, ref: str) -> Stage | None:
        """The earlier stage a FROM or --from refers to, by name or index."""
        for stage in self.stages:
            if stage.name and stage.name.lower() == ref.lower():
                return stage
            if ref.isdigit() and stage.index == int(ref):
                return stage
        return None

    def stage_of(self, ins: Instruction) -> Stage | None:
        """The stage holding `ins`."""
        return next((s for s in self.stages if any(i is ins for i in s.instructions)), None)

    def definition(self, stage: Stage, upto: Instruction, name: str) -> Instruction | None:
        """The last ARG/ENV before `upto` that sets `name`: in the stage chain, else the global ARG."""
        def defines(ins: Instruction) -> bool:
            return ins.cmd in ("ARG", "ENV") and any(arg.split("=", 1)[0] == name for arg in ins.args)

        found = None
        for s in reversed(stage.lineage()):
            for ins in s.instructions:
                if ins is upto:
                    return found or next((i for i in reversed(self.preamble) if defines(i)), None)
                if defines(ins):
                    found = ins
        return found

    def definitions(self, ins: Instruction) -> list[Instruction]:
        """The ARG/ENV instructions that give the variables `ins` names their values, and those
        their values name in turn (`ARG URL=http://${HOST}/x` then `ADD ${URL} /x`), in file order:
        evidence for a message that shows a resolved value."""
        stage = self.stage_of(ins)
        if stage is None:
            return []
        found: list[Instruction] = []
        todo = [(name, ins) for name in _REFERENCED.findall(" ".join(ins.args))]
        seen: set[str] = set()
        while todo:
            name, upto = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            source = self.definition(stage, upto, name)
            if source is not None:
                if source not in found:
                    found.append(source)
                todo += [(n, source) for n in _REFERENCED.findall(" ".join(source.args))]
        return sorted(found, key=lambda i: i.line)

    def entrypoint(self) -> Instruction | None:
        """The ENTRYPOINT (or, without one, the CMD) that the final image runs."""
        for stage in self.final.lineage():
            found = stage.of("ENTRYPOINT") or stage.of("CMD")
            if found:
                return found[-1]
        return None

    def final_user(self) -> Instruction | None:
        """The USER in effect in the final image (following FROM an earlier stage), or None."""
        for stage in self.final.lineage():
            users = stage.of("USER")
            if users:
                return users[-1]
        return None


def absolute(path: str, cwd: str) -> str:
    """`path` as an absolute, normalised container path, relative ones taken from `cwd`."""
    joined = posixpath.join(cwd, path.strip("\"'"))
    normal = posixpath.normpath(joined)
    return "/" + normal.lstrip("/") if normal != "/" else "/"


def is_root_user(spec: str) -> bool:
    """`root`, `0`, `0:0`, `root:staff`: every way of writing the root user."""
    return spec.split(":", 1)[0].strip().lower() in ROOT_NAMES


def parse_file(path: Path, display_path: str) -> ParsedDockerfile:
    try:
        if path.stat().st_size > MAX_DOCKERFILE_BYTES:
            raise SubmissionError(f"{display_path}: larger than {MAX_DOCKERFILE_BYTES // 1024} KiB",
                                  reason="too_large", path=display_path, limit_kib=MAX_DOCKERFILE_BYTES // 1024)
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SubmissionError(f"{display_path}: not UTF-8 text", reason="not_utf8", path=display_path) from exc
    except OSError as exc:  # its strerror only: the message must not show where the workspace is
        raise SubmissionError(f"{display_path}: cannot be read ({exc.strerror})", reason="unreadable",
                              path=display_path, error=exc.strerror) from exc
    return parse_text(text, display_path)


def parse_text(text: str, display_path: str) -> ParsedDockerfile:
    try:
        commands = buildkit_parser.parse_string(text)
    except buildkit_parser.GoParseError as exc:
        raise SubmissionError(f"{display_path}: not a valid Dockerfile ({exc})", reason="invalid",
                              path=display_path, error=str(exc)) from exc
    # BuildKit counts lines at \n only (a form feed or U+2028 is not a line break for it).
    lines = tuple(ln.removesuffix("\r") for ln in text.removeprefix("\ufeff").split("\n"))
    instructions = [_instruction(c, lines) for c in commands]
    for ins in instructions:
        if ins.cmd.lower() not in _KNOWN_CMDS:
            raise SubmissionError(f"{display_path}:{ins.line}: unknown instruction '{ins.cmd}'",
                                  reason="unknown_instruction", path=display_path, line=ins.line, cmd=ins.cmd)
    parsed = _split_stages(instructions, display_path)
    parsed.lines = lines
    return parsed


def _instruction(command: buildkit_parser.Command, lines: tuple[str, ...]) -> Instruction:
    physical = tuple(ln.rstrip() for ln in lines[command.start_line - 1:command.end_line])
    return Instruction(
        cmd=command.cmd.upper(),
        args=tuple(command.value),
        flags=tuple(command.flags),
        original=command.original,
        line=command.start_line,
        end_line=command.end_line,
        json_form=command.json,
        physical=physical,
        heredocs=tuple(h.content for h in command.heredocs),
    )


def _stage_refs(ins: Instruction) -> list[str]:
    """Stage names or indexes an instruction reads from: `COPY --from=X`, `RUN --mount=...,from=X`."""
    refs = []
    if ins.cmd in ("COPY", "ADD") and ins.flag("from"):
        refs.append(ins.flag("from") or "")
    for flag in ins.flags:
        if flag.lower().startswith("--mount="):
            for part in flag.split("=", 1)[1].split(","):
                key, _, value = part.partition("=")
                if key.strip().lower() == "from" and value:
                    refs.append(value.strip())
    return refs


def _env_pairs(ins: Instruction) -> list[tuple[str, str]]:
    # BuildKit's parser gives ENV as name, value, name, value, ... (both forms)
    return list(zip(ins.args[0::2], ins.args[1::2], strict=False))


def _split_stages(instructions: list[Instruction], display_path: str) -> ParsedDockerfile:
    global_args: dict[str, str] = {}
    preamble: list[Instruction] = []
    stages: list[Stage] = []
    for ins in instructions:
        if ins.cmd == "FROM":
            stages.append(_new_stage(ins, len(stages), global_args, stages, display_path))
        elif not stages:
            if ins.cmd == "ARG":
                global_args.update(_arg_defaults(ins))
                preamble.append(ins)
            else:
                raise SubmissionError(
                    f"{display_path}:{ins.line}: '{ins.cmd}' before the first FROM "
                    "(only ARG may come before FROM)", reason="before_from", path=display_path, line=ins.line,
                    cmd=ins.cmd)
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise SubmissionError(f"{display_path}: no FROM instruction: this is not a Dockerfile", reason="no_from",
                              path=display_path)
    return ParsedDockerfile(path=display_path, stages=stages, global_args=global_args, preamble=preamble)


def _new_stage(
    ins: Instruction, index: int, args: dict[str, str], earlier: list[Stage], display_path: str
) -> Stage:
    if not ins.args or not ins.args[0]:
        raise SubmissionError(f"{display_path}:{ins.line}: FROM without an image", reason="from_without_image",
                              path=display_path, line=ins.line)
    base = ins.args[0]
    name = ins.args[2] if len(ins.args) >= 3 and ins.args[1].upper() == "AS" else None
    resolved = substitute(base, args)
    parent = next(
        (s for s in earlier if s.name and s.name.lower() == resolved.lower()), None
    )
    return Stage(index, name, base, resolved, ins.line, parent=parent, from_ins=ins)


def _arg_defaults(ins: Instruction) -> dict[str, str]:
    found = {}
    for arg in ins.args:
        name, _, default = arg.partition("=")
        found[name] = default.strip("\"'")
    return found


# BuildKit's parser leaves variables as written; FROM only needs the plain forms below,
# which is why this small expander exists instead of a full shell-word implementation.
_VAR = re.compile(r"\$\{(\w+)(?::?([-+])([^}]*))?\}|\$(\w+)")


def substitute(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        value = values.get(name, "")
        op, word = match.group(2), match.group(3) or ""
        if op == "-":
            return value or word
        if op == "+":
            return word if value else ""
        return value

    return _VAR.sub(replace, text)
