"""A parsed Dockerfile: stages, instructions with line numbers, ARG values in FROM resolved.

Parsing is BuildKit's own parser (PyPI `dockerfile`); this module only shapes its output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile as buildkit_parser

from grader.errors import SubmissionError

ROOT_NAMES = {"root", "0"}
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

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, ref: str) -> Stage | None:
        """The earlier stage a FROM or --from refers to, by name or index."""
        for stage in self.stages:
            if stage.name and stage.name.lower() == ref.lower():
                return stage
            if ref.isdigit() and stage.index == int(ref):
                return stage
        return None

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


def is_root_user(spec: str) -> bool:
    """`root`, `0`, `0:0`, `root:staff`: every way of writing the root user."""
    return spec.split(":", 1)[0].strip().lower() in ROOT_NAMES


def parse_file(path: Path, display_path: str) -> ParsedDockerfile:
    try:
        if path.stat().st_size > MAX_DOCKERFILE_BYTES:
            raise SubmissionError(f"{display_path}: larger than {MAX_DOCKERFILE_BYTES // 1024} KiB")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmissionError(f"{display_path}: cannot be read ({exc})") from exc
    return parse_text(text, display_path)


def parse_text(text: str, display_path: str) -> ParsedDockerfile:
    try:
        commands = buildkit_parser.parse_string(text)
    except buildkit_parser.GoParseError as exc:
        raise SubmissionError(f"{display_path}: not a valid Dockerfile ({exc})") from exc
    instructions = [_instruction(c) for c in commands]
    for ins in instructions:
        if ins.cmd.lower() not in _KNOWN_CMDS:
            raise SubmissionError(f"{display_path}:{ins.line}: unknown instruction '{ins.cmd}'")
    return _split_stages(instructions, display_path)


def _instruction(command: buildkit_parser.Command) -> Instruction:
    return Instruction(
        cmd=command.cmd.upper(),
        args=tuple(command.value),
        flags=tuple(command.flags),
        original=command.original,
        line=command.start_line,
        end_line=command.end_line,
        json_form=command.json,
    )


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
                    "(only ARG may come before FROM)"
                )
        else:
            stages[-1].instructions.append(ins)
    if not stages:
        raise SubmissionError(f"{display_path}: no FROM instruction: this is not a Dockerfile")
    return ParsedDockerfile(path=display_path, stages=stages, global_args=global_args, preamble=preamble)


def _new_stage(
    ins: Instruction, index: int, args: dict[str, str], earlier: list[Stage], display_path: str
) -> Stage:
    if not ins.args or not ins.args[0]:
        raise SubmissionError(f"{display_path}:{ins.line}: FROM without an image")
    base = ins.args[0]
    name = ins.args[2] if len(ins.args) >= 3 and ins.args[1].upper() == "AS" else None
    resolved = substitute(base, args)
    parent = next(
        (s for s in earlier if s.name and s.name.lower() == resolved.lower()), None
    )
    return Stage(index, name, base, resolved, ins.line, parent=parent)


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
