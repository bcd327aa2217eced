"""grader.logcap: head and tail of an unbounded stream, written to a real file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from grader.config import Settings
from grader.logcap import CappedLog, tail_text

CAP = Settings().log_cap_bytes  # what the engine uses for build logs
NOTE = re.compile(rb"\n\[\.\.\. (\d+) bytes of log cut \.\.\.\]\n")
NOTE_ROOM = 64  # the note is one short line


def write_all(path: Path, cap: int, chunks: Iterator[bytes]) -> int:
    log = CappedLog(path, cap)
    total = 0
    for chunk in chunks:
        log.write(chunk)
        total += len(chunk)
    log.close()
    return total


def numbered(total: int, size: int) -> Iterator[bytes]:
    """`total` bytes in chunks of `size`, each chunk filled with its own byte value, so any
    slice of the stream can be recomputed; the first bytes are b"BEGIN", the last b"END\\n"."""
    count = total // size
    for k in range(count):
        chunk = bytes([65 + k % 26]) * size
        if k == 0:
            chunk = b"BEGIN" + chunk[5:]
        if k == count - 1:
            chunk = chunk[:-4] + b"END\n"
        yield chunk


def stream_slice(total: int, size: int, start: int, stop: int) -> bytes:
    return b"".join(numbered(total, size))[start:stop]


def test_stream_smaller_than_the_cap_is_kept_whole(tmp_path):
    path = tmp_path / "build.log"
    lines = [f"#{i} step {i}/9 done\n".encode() for i in range(10)]

    write_all(path, 1024, iter(lines))

    assert path.read_bytes() == b"".join(lines)


def test_stream_of_exactly_the_cap_is_kept_whole_without_a_note(tmp_path):
    path = tmp_path / "build.log"
    data = bytes(range(256)) * 4  # 1024 bytes

    write_all(path, 1024, (data[i:i + 100] for i in range(0, len(data), 100)))

    assert path.read_bytes() == data


def test_one_byte_over_the_cap_is_cut_and_counted(tmp_path):
    path = tmp_path / "build.log"
    data = b"a" * 512 + b"m" + b"z" * 512

    write_all(path, 1024, iter([data[:512], data[512:513], data[513:]]))

    text = path.read_bytes()
    assert text.startswith(b"a" * 512)
    assert text.endswith(b"z" * 512)
    assert b"m" not in text
    assert [int(n) for n in NOTE.findall(text)] == [1]


def test_huge_stream_leaves_the_head_the_tail_and_a_note_within_the_cap(tmp_path):
    path = tmp_path / "build.log"
    total, size = 50 * 2**20, 64 * 1024

    written = write_all(path, CAP, numbered(total, size))

    text = path.read_bytes()
    assert written == total
    assert len(text) <= CAP + NOTE_ROOM
    assert text.startswith(b"BEGIN")
    assert text.endswith(b"END\n")
    [note] = NOTE.finditer(text)
    assert int(note.group(1)) == total - CAP
    head, tail = text[:note.start()], text[note.end():]
    assert len(head) == CAP // 2 and len(tail) == CAP - CAP // 2
    assert tail == stream_slice(total, size, total - len(tail), total)


def test_note_counts_exactly_the_bytes_missing_from_the_file(tmp_path):
    path = tmp_path / "build.log"
    total, size = 3 * 2**20 + 4096, 4096

    write_all(path, 2**16, numbered(total, size))

    text = path.read_bytes()
    [note] = NOTE.finditer(text)
    kept = len(text) - (note.end() - note.start())
    assert int(note.group(1)) + kept == total


def test_huge_stream_in_uneven_chunks_stays_within_the_cap(tmp_path):
    path = tmp_path / "build.log"
    total, size = 8 * 2**20, 100_000  # 100 kB does not divide the 512 KiB tail

    write_all(path, CAP, numbered(total, size))

    assert path.stat().st_size <= CAP + NOTE_ROOM


def test_tail_text_returns_the_last_lines(tmp_path):
    path = tmp_path / "build.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))

    assert tail_text(path, max_lines=3) == "line 97\nline 98\nline 99"


def test_tail_text_of_a_short_log_is_the_whole_log(tmp_path):
    path = tmp_path / "build.log"
    path.write_text("#1 FROM python\n#2 RUN pip install\nERROR: failed\n")

    assert tail_text(path, max_lines=10) == "#1 FROM python\n#2 RUN pip install\nERROR: failed"


def test_tail_text_reads_no_more_than_max_bytes(tmp_path):
    path = tmp_path / "build.log"
    path.write_bytes(b"x" * 100_000 + b"\nERROR: the end\n")

    text = tail_text(path, max_lines=25, max_bytes=64)

    assert text.endswith("ERROR: the end")
    assert len(text.encode()) <= 64


def test_tail_text_decodes_invalid_utf8_leniently(tmp_path):
    path = tmp_path / "build.log"
    path.write_bytes("шаг 1\n".encode() + b"\xff\xfe broken\n" + "готово\n".encode())

    assert tail_text(path).splitlines() == ["шаг 1", "\ufffd\ufffd broken", "готово"]


def test_tail_text_of_a_cut_log_ends_with_the_stream_end(tmp_path):
    path = tmp_path / "build.log"
    chunks = [f"step {i}\n".encode() for i in range(50_000)]

    write_all(path, 4096, iter(chunks))

    assert tail_text(path, max_lines=2) == "step 49998\nstep 49999"


def test_tail_text_of_an_empty_log_is_empty(tmp_path):
    path = tmp_path / "build.log"
    write_all(path, 1024, iter([]))

    assert tail_text(path) == ""
