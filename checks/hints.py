"""Advice for a failed build: matched on the build log's well-known messages and the parse."""

from __future__ import annotations

import re
from dataclasses import dataclass

from grader.assignment import Assignment
from grader.dockerfile import ParsedDockerfile

# (pattern in the log, hint key); the first match wins, so the specific ones come first.
LOG_HINTS: tuple[tuple[str, str], ...] = (
    # The grader's parser knows heredocs, engine 20.10's frontend reads their lines as instructions:
    # only `RUN <<EOF` alone is converted (grader/buildfile.py), other shapes fail here.
    (r"dockerfile parse error line \d+: unknown instruction", "heredoc_unsupported"),
    (r"The requested command export does not exist", "poetry_export"),
    (r"No such file or directory: '[^']*README[^']*'|Readme path .* does not exist", "readme_missing"),
    (r"No such file or directory: '[^']*dist/constraints\.txt'", "dist_missing"),
    (r"You must give at least one requirement", "empty_variable"),
    (r"pull access denied|failed to resolve source metadata|manifest unknown"
     r"|failed to create LLB definition|load metadata for [^\n]*\n(?:#\d+ sha256:[^\n]*\n)?#\d+ ERROR",
     "base_image"),
    (r"Temporary failure in name resolution|Could not resolve host", "network"),
    (r"git: not found", "git_clone"),
    (r"exit code: 137|Killed", "build_killed"),
    (r"Cannot fork|Resource temporarily unavailable|can't fork", "build_pids"),
    (r"externally-managed-environment", "break_system_packages"),
)

# The sub-command a log hint is about, found on its own physical line of a chained RUN, so the
# report points at it (`RUN a && \\ b && \\ c`: b's line, not the RUN's first).
HINT_AT: dict[str, str] = {
    "poetry_export": r"\bpoetry\s+export\b",
    "dist_missing": r"\bpoetry\s+export\b",
    "readme_missing": r"\bpoetry\s+build\b",
    "git_clone": r"\bgit\s+clone\b",
    "break_system_packages": r"\bpip[\d.]*\s+(?:-\S+\s+)*install\b(?!.*--break-system-packages)",
}

_ALWAYS_SET = {"PATH", "HOME", "PWD", "USER", "SHELL", "LANG", "HOSTNAME", "TERM"}
_ASSIGNED = re.compile(r"(?:^|[;&|]\s*|export\s+)([A-Za-z_]\w*)=")


@dataclass(frozen=True)
class Hint:
    key: str
    line: int | None = None
    name: str = ""


# BuildKit's words for a COPY/ADD source that is not in the context it received.
_NOT_IN_CONTEXT = re.compile(r'failed to compute cache key: "/?([^"]+)" not found|"/?([^"]+)": not found')


def build_hint(log_tail: str, timed_out: bool, parsed: ParsedDockerfile | None, a: Assignment,
               excluded: list[str] | None = None) -> Hint | None:
    """`excluded`: the context's files .dockerignore keeps out (a COPY of one fails "not found")."""
    if timed_out:
        return server_in_run(parsed, a)
    missing = _NOT_IN_CONTEXT.search(log_tail)
    if missing:
        name = missing.group(1) or missing.group(2)
        kept_out = any(e == name or e.startswith(name.rstrip("/") + "/") for e in excluded or [])
        return Hint("dockerignore_excludes" if kept_out else "not_in_context", _copy_line(parsed, name), name)
    for pattern, key in LOG_HINTS:
        if re.search(pattern, log_tail):
            if key == "empty_variable":
                return variable_across_runs(parsed) or Hint("no_requirement")
            return Hint(key, _run_line(parsed, HINT_AT[key]) if key in HINT_AT else None)
    return variable_across_runs(parsed)


def _copy_line(parsed: ParsedDockerfile | None, name: str) -> int | None:
    """The line of the COPY/ADD that names `name` as a source."""
    for stage in parsed.stages if parsed else ():
        for ins in stage.of("COPY", "ADD"):
            if not ins.flag("from") and any(src.strip("./").rstrip("/") == name.rstrip("/") for src in ins.args[:-1]):
                return ins.line
    return None


def _run_line(parsed: ParsedDockerfile | None, pattern: str) -> int | None:
    """The physical line of the first RUN sub-command matching `pattern`, in the stages BuildKit builds."""
    for stage in parsed.needed() if parsed else ():
        for ins in stage.of("RUN"):
            found = ins.locate(pattern)
            if found:
                return found[0]
    return None


def server_in_run(parsed: ParsedDockerfile | None, a: Assignment) -> Hint | None:
    """A build that never ends almost always starts the server in a RUN step."""
    scripts = "|".join(re.escape(s) for s in a.console_scripts) or "(?!)"
    pattern = rf"-m\s+{re.escape(a.module)}\b|(^|[\s;&|]){scripts}(\s|$)"
    for stage in parsed.stages if parsed else ():
        for ins in stage.of("RUN"):
            found = ins.locate(pattern)
            if found:
                return Hint("server_in_run", found[0])
    return None


def variable_across_runs(parsed: ParsedDockerfile | None) -> Hint | None:
    """A shell variable set in one RUN and used in a later one: each RUN is a new shell."""
    for stage in parsed.stages if parsed else ():
        assigned: set[str] = set()
        declared = _declared(stage) | _ALWAYS_SET  # these do reach every RUN
        for ins in stage.of("RUN"):
            text = ins.command
            local = set(_ASSIGNED.findall(text))
            for name in assigned - declared:
                used = rf"\$\{{?{name}\b"
                if name not in local and re.search(used, text):
                    return Hint("empty_variable", (ins.locate(used) or (ins.line, ""))[0], name)
            assigned |= local
    return None


def _declared(stage) -> set[str]:
    return {arg.split("=", 1)[0] for s in stage.lineage() for ins in s.of("ENV", "ARG") for arg in ins.args if arg}


def failed_step(log: str, max_lines: int = 20) -> str:
    """The lines of the BuildKit step that failed (`#N ...` up to `#N ERROR`), else the log's end."""
    lines = log.splitlines()
    error = next((ln for ln in reversed(lines) if re.match(r"#\d+ ERROR", ln)), None)
    if error is None:
        return "\n".join(lines[-max_lines:])
    step = error.split()[0] + " "
    own = [ln for ln in lines if ln.startswith(step) and not re.match(r"#\d+ sha256:", ln)]
    return "\n".join(own[-max_lines:])
