"""Keeps the head and tail of an unbounded stream, so no submission can fill memory or disk."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO


class CappedLog:
    """Writes the first `cap // 2` bytes straight to a file, keeps the last `cap // 2` in memory,
    and on close appends the tail after a note of how much was cut."""

    def __init__(self, path: Path, cap_bytes: int) -> None:
        self.path = path
        self.head_left = cap_bytes // 2
        self.tail_cap = cap_bytes - cap_bytes // 2
        self.tail = bytearray()
        self.cut = 0
        self.file: BinaryIO = path.open("wb")

    def write(self, chunk: bytes) -> None:
        if self.head_left > 0:
            head, chunk = chunk[: self.head_left], chunk[self.head_left :]
            self.file.write(head)
            self.head_left -= len(head)
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self.tail_cap
            if excess > 0:
                del self.tail[:excess]
                self.cut += excess

    def close(self) -> None:
        if self.cut:
            self.file.write(f"\n[... {self.cut} bytes of log cut ...]\n".encode())
        self.file.write(self.tail)
        self.file.close()


def tail_text(path: Path, max_lines: int = 80, max_bytes: int = 16384) -> str:
    """The last lines of a log file, decoded leniently."""
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        data = f.read()
    lines = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(lines[-max_lines:])
