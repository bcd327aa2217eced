"""Advice for a failed build: matched on the build log's well-known messages and the parse."""

from __future__ import annotations

import re
from dataclasses import dataclass

from grader.dockerfile import ParsedDockerfile

# (substring of the log, hint key); the first match wins, so the specific ones come first.
LOG_HINTS: tuple[tuple[str, str], ...] = (
    ("The requested command export does not exist", "poetry_export"),
    ("Readme path", "readme_missing"),
    ("README.md does not exist", "readme_missing"),
    ("You must give at least one requirement", "empty_variable"),
    ("pull access denied", "base_image"),
    ("failed to resolve source metadata", "base_image"),
    ("manifest unknown", "base_image"),
    ("Temporary failure in name resolution", "network"),
    ("git: not found", "git_clone"),
    ("externally-managed-environment", "break_system_packages"),
)

_ASSIGNED = re.compile(r"(?:^|[;&|]\s*|export\s+)([A-Za-z_]\w*)=")


@dataclass(frozen=True)
class Hint:
    key: str
    line: int | None = None
    name: str = ""


def build_hint(log_tail: str, timed_out: bool, parsed: ParsedDockerfile | None) -> Hint | None:
    if timed_out:
        return server_in_run(parsed)
    for needle, key in LOG_HINTS:
        if needle in log_tail:
            if key == "empty_variable":
                return variable_across_runs(parsed) or Hint(key)
            return Hint(key)
    return variable_across_runs(parsed)


def server_in_run(parsed: ParsedDockerfile | None) -> Hint | None:
    """A build that never ends almost always starts the server in a RUN step."""
    for stage in parsed.stages if parsed else ():
        for ins in stage.of("RUN"):
            if re.search(r"-m\s+counter_backend\b|(^|\s)server(\s|$)", " ".join(ins.args)):
                return Hint("server_in_run", ins.line)
    return None


def variable_across_runs(parsed: ParsedDockerfile | None) -> Hint | None:
    """A shell variable set in one RUN and used in a later one: each RUN is a new shell."""
    for stage in parsed.stages if parsed else ():
        assigned: dict[str, int] = {}
        for ins in stage.of("RUN"):
            text = " ".join(ins.args)
            local = set(_ASSIGNED.findall(text))
            for name, line in assigned.items():
                if name not in local and re.search(rf"\$\{{?{name}\b", text):
                    return Hint("empty_variable", ins.line, name)
            assigned.update({name: ins.line for name in local})
    return None
