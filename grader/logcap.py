"""Keeps the head and tail of an unbounded stream, so no submission can fill memory or disk."""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import BinaryIO


class CappedLog:
    """Writes the first `cap // 2` bytes straight to a file, keeps the last `cap // 2` in memory,
    and on close appends the tail after a note of how much was cut."""

    def __init__(self, path: Path, cap_bytes: int) -> None:
        self.path = path
        self.head_left = cap_bytes // 2
        self.tail_cap = cap_bytes - cap_bytes // 2
        self.tail: deque[bytes] = deque()
        self.tail_size = 0
        self.cut = 0
        self.file: BinaryIO = path.open("wb")

    def write(self, chunk: bytes) -> None:
        if self.head_left > 0:
            head, chunk = chunk[: self.head_left], chunk[self.head_left :]
            self.file.write(head)
            self.head_left -= len(head)
        if chunk:
            self.tail.append(chunk)
            self.tail_size += len(chunk)
            while self.tail_size - len(self.tail[0]) >= self.tail_cap:
                dropped = self.tail.popleft()
                self.tail_size -= len(dropped)
                self.cut += len(dropped)

    def close(self) -> None:
        if self.cut:
            self.file.write(f"\n[... {self.cut} bytes of log cut ...]\n".encode())
        for chunk in self.tail:
            self.file.write(chunk)
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
