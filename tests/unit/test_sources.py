"""grader.sources and grader.workspace: real archives, unpacked into a workspace or refused whole.

Archives are made here: by tarfile (hostile entries are hand-made TarInfo records), by `git archive
--format=tar.gz` of a real temporary repository (what GitLab answers), and, for the bombs, as real
gzip streams of a whole GiB of zeros, written without ever holding (or compressing) a GiB.
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import stat
import string
import struct
import subprocess
import tarfile
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

import grader.sources
from grader.config import Settings
from grader.errors import GraderError, SubmissionError
from grader.messages import catalogue, refusal
from grader.sources import extract_archive
from grader.workspace import Workspace

SHA = "0123456789abcdef0123456789abcdef01234567"
TOP = f"counter-backend-{SHA}-{SHA}"  # the top directory GitLab's archive endpoint puts everything in
KiB, MiB, GiB = 1024, 1024**2, 1024**3
LIMITS = {"max_bytes": 4 * MiB, "max_files": 50, "max_file_bytes": 1 * MiB}
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


# --- building archives ------------------------------------------------------------------------

Member = tuple[tarfile.TarInfo, bytes | None]


def reg(name: str, data: bytes = b"", mode: int = 0o644) -> Member:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def directory(name: str, mode: int = 0o755) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info, None


def symlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
    return info, None


def hardlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info, None


def special(name: str, kind: bytes) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = kind, 1, 3
    return info, None


def make_tar(members: list[Member]) -> bytes:
    """Like GitLab's: a tar.gz in pax format, with a global header carrying the commit (as `git archive` writes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": SHA}) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def repository() -> list[Member]:
    return [
        directory(TOP),
        reg(f"{TOP}/Dockerfile", b"FROM python:3.12-slim\nCOPY . /app\n"),
        directory(f"{TOP}/app"),
        reg(f"{TOP}/app/main.py", b"print('counter')\n"),
        reg(f"{TOP}/app/run.sh", b"#!/bin/sh\nexec python main.py\n", mode=0o755),
        reg(f"{TOP}/app/привет.txt", "здравствуй\n".encode()),
        directory(f"{TOP}/empty"),
    ]


EXPECTED = {
    "Dockerfile": b"FROM python:3.12-slim\nCOPY . /app\n",
    "app/main.py": b"print('counter')\n",
    "app/run.sh": b"#!/bin/sh\nexec python main.py\n",
    "app/привет.txt": "здравствуй\n".encode(),
}


def files_under(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()
    }


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def refused(archive: bytes | Path, dest: Path, **limits: int) -> SubmissionError:
    """The SubmissionError: one line, with a catalogue reason whose every placeholder is given and
    no server path in any language; dest must be gone or left empty, and nothing left beside it."""
    existed, around = dest.is_dir(), sorted(dest.parent.iterdir()) if dest.parent.exists() else []
    with pytest.raises(SubmissionError) as caught:
        extract_archive(archive, dest, **{**LIMITS, **limits})
    exc = caught.value
    texts = catalogue()["refusal"][exc.reason]
    for lang in ("ru", "en"):
        assert placeholders(texts[lang]) <= set(exc.params), (exc.reason, lang)
        shown = refusal(exc, lang)
        assert "\n" not in shown and str(dest.parent) not in shown
    assert str(exc) == refusal(exc, "en")
    assert (list(dest.iterdir()) == [] if existed else not dest.exists())
    assert sorted(dest.parent.iterdir()) == around  # no staging directory, no archive file left
    return exc


def git_archive(tmp_path: Path, make: Callable[[Path], None]) -> Path:
    """`git archive --format=tar.gz` of a one-commit repository laid out by `make`, as GitLab names it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    make(repo)

    def git(*args: str) -> str:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
        done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)
        return done.stdout.decode().strip()

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=Student", "-c", "user.email=s@example.edu", "commit", "-qm", "work")
    sha = git("rev-parse", "HEAD")
    archive = tmp_path / "archive.tar.gz"
    git("archive", "--format=tar.gz", f"--prefix=repo-{sha}-{sha}/", f"--output={archive}", "HEAD")
    return archive


# --- bombs: long repeated runs, deflated without being compressed ----------------------------

ZERO_MIB = bytes(MiB)


class Deflater:
    """Raw deflate of small byte strings and long repetitions of a chunk. After a full flush the
    compressor starts afresh, so a chunk always deflates to the very same bytes, which are simply
    repeated: a GiB of zeros is written in a fraction of a second, and never held."""

    def __init__(self, out: BinaryIO) -> None:
        self.out, self.crc, self.size = out, 0, 0
        self.c = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.packed: dict[bytes, bytes] = {}

    def data(self, chunk: bytes) -> None:
        self.out.write(self.c.compress(chunk) + self.c.flush(zlib.Z_FULL_FLUSH))
        self.crc, self.size = zlib.crc32(chunk, self.crc), self.size + len(chunk)

    def repeat(self, chunk: bytes, times: int) -> None:
        if chunk not in self.packed:
            probe = zlib.compressobj(9, zlib.DEFLATED, -15)
            probe.compress(b"start")
            probe.flush(zlib.Z_FULL_FLUSH)
            self.packed[chunk] = probe.compress(chunk) + probe.flush(zlib.Z_FULL_FLUSH)
            assert probe.compress(chunk) + probe.flush(zlib.Z_FULL_FLUSH) == self.packed[chunk]
        for _ in range(times):
            self.out.write(self.packed[chunk])
            self.crc, self.size = zlib.crc32(chunk, self.crc), self.size + len(chunk)

    def zeros(self, n: int) -> None:
        whole, rest = divmod(n, MiB)
        self.repeat(ZERO_MIB, whole)
        if rest:
            self.data(bytes(rest))

    def finish(self) -> None:
        self.out.write(self.c.flush(zlib.Z_FINISH))


def write_gzip_tar(path: Path, members: list[tuple[tarfile.TarInfo, int]]) -> None:
    """A tar.gz of headers each followed by that many zero bytes of data: a real gzip stream."""
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03")  # gzip header: deflate, no name, unix
        d = Deflater(out)
        for info, size in members:
            d.data(info.tobuf(tarfile.USTAR_FORMAT))
            d.zeros(size + (-size % tarfile.BLOCKSIZE))
        d.zeros(2 * tarfile.BLOCKSIZE)  # end of archive
        d.finish()
        out.write(struct.pack("<II", d.crc, d.size & 0xFFFFFFFF))


def file_header(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("bombs")
    one = base / "one-gib-file.tar.gz"
    write_gzip_tar(one, [(directory(TOP)[0], 0), (file_header(f"{TOP}/zeros.bin", GiB), GiB)])
    many = base / "thousand-mib-files.tar.gz"
    write_gzip_tar(
        many, [(directory(TOP)[0], 0)] + [(file_header(f"{TOP}/part-{i:04}.bin", MiB), MiB) for i in range(1024)]
    )
    return {"one": one, "many": many}


def refused_quickly_and_small(archive: Path, dest: Path, **limits: int) -> SubmissionError:
    tracemalloc.start()
    started = time.monotonic()
    try:
        exc = refused(archive, dest, **limits)
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert peak < 32 * MiB, f"peak Python memory {peak / MiB:.0f} MiB"
    return exc


# --- what a repository archive becomes --------------------------------------------------------


def test_a_gitlab_shaped_archive_yields_its_inner_directory_with_the_files_intact(tmp_path: Path):
    dest = tmp_path / "src"
    root = extract_archive(make_tar(repository()), dest, **LIMITS)
    assert root == dest / TOP
    assert files_under(root) == EXPECTED
    assert (root / "empty").is_dir()
    assert os.access(root / "app" / "run.sh", os.X_OK) and not os.access(root / "app" / "main.py", os.X_OK)
    assert list(tmp_path.iterdir()) == [dest]  # the archive's file and the staging directory are gone


def test_an_archive_file_on_disk_extracts_like_the_same_bytes_and_is_left_in_place(tmp_path: Path):
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(make_tar(repository()))
    root = extract_archive(path, tmp_path / "src", **LIMITS)
    assert files_under(root) == EXPECTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive.tar.gz", "src"]


def test_without_a_single_top_directory_the_destination_is_the_root(tmp_path: Path):
    archive = make_tar([reg("Dockerfile", b"FROM scratch\n"), directory("app"), reg("app/x.py", b"x = 1\n")])
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    assert root == tmp_path / "src"
    assert files_under(root) == {"Dockerfile": b"FROM scratch\n", "app/x.py": b"x = 1\n"}


def test_a_single_top_level_file_is_not_taken_for_the_root(tmp_path: Path):
    root = extract_archive(make_tar([reg("Dockerfile", b"FROM scratch\n")]), tmp_path / "src", **LIMITS)
    assert root == tmp_path / "src"


def test_a_top_directory_only_implied_by_its_entries_is_the_root(tmp_path: Path):
    root = extract_archive(make_tar([reg(f"{TOP}/Dockerfile", b"FROM scratch\n")]), tmp_path / "src", **LIMITS)
    assert root == tmp_path / "src" / TOP


def test_an_empty_existing_destination_is_accepted(tmp_path: Path):
    dest = tmp_path / "src"
    dest.mkdir()
    assert extract_archive(make_tar(repository()), dest, **LIMITS) == dest / TOP


def test_a_destination_with_content_is_our_error_and_is_left_alone(tmp_path: Path):
    dest = tmp_path / "src"
    dest.mkdir()
    (dest / "previous.txt").write_text("keep")
    with pytest.raises(GraderError, match="not empty"):
        extract_archive(make_tar(repository()), dest, **LIMITS)
    assert (dest / "previous.txt").read_text() == "keep"


def test_setuid_setgid_and_group_or_world_write_bits_are_dropped(tmp_path: Path):
    archive = make_tar(
        [
            directory(TOP),
            directory(f"{TOP}/open", mode=0o777),
            reg(f"{TOP}/open/suid", b"#!/bin/sh\n", mode=0o6777),
            reg(f"{TOP}/open/shared", b"data", mode=0o2666),
            reg(f"{TOP}/sticky", b"data", mode=0o1777),
        ]
    )
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [root / "open", *root.rglob("*")]}
    assert modes["suid"] == 0o755 and modes["shared"] == 0o644 and modes["sticky"] == 0o755
    assert all(
        not m & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | stat.S_IWOTH | stat.S_IWGRP) for m in modes.values()
    )


def test_links_inside_the_repository_are_kept_as_links(tmp_path: Path):
    archive = make_tar(
        repository()
        + [
            symlink(f"{TOP}/entry", "app/run.sh"),
            symlink(f"{TOP}/code", "app"),
            symlink(f"{TOP}/app/Dockerfile", "../Dockerfile"),
            symlink(f"{TOP}/dangling", "not-there-yet"),
            symlink(f"{TOP}/app/up-and-down", "../app/./main.py"),
        ]
    )
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    links = {"entry": "app/run.sh", "code": "app", "app/Dockerfile": "../Dockerfile", "dangling": "not-there-yet"}
    for name, target in links.items():
        assert (root / name).is_symlink() and os.readlink(root / name) == target
    assert (root / "code" / "main.py").read_bytes() == EXPECTED["app/main.py"]
    assert (root / "app" / "up-and-down").read_bytes() == EXPECTED["app/main.py"]


@needs_git
def test_a_real_git_archive_round_trips_links_modes_long_and_unicode_names(tmp_path: Path):
    long_dir = "docs/" + "a-rather-long-directory-name-" * 5  # > 100 bytes: git archive writes a pax header

    def make(repo: Path) -> None:
        (repo / "app").mkdir()
        (repo / long_dir).mkdir(parents=True)
        (repo / "Dockerfile").write_bytes(EXPECTED["Dockerfile"])
        (repo / "app" / "run.sh").write_bytes(EXPECTED["app/run.sh"])
        (repo / "app" / "run.sh").chmod(0o755)
        (repo / "app" / "привет.txt").write_bytes(EXPECTED["app/привет.txt"])
        (repo / long_dir / "notes.md").write_text("notes\n")
        (repo / "start").symlink_to("app/run.sh")
        (repo / "app" / "Dockerfile").symlink_to("../Dockerfile")

    archive = git_archive(tmp_path, make)
    with tarfile.open(archive) as tf:  # what GitLab answers: a pax global header with the commit, one top dir
        assert tf.pax_headers["comment"] and tf.getmembers()[0].isdir()
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    assert root.name.startswith("repo-") and root.parent == tmp_path / "src"
    assert files_under(root) == {
        "Dockerfile": EXPECTED["Dockerfile"],
        "app/run.sh": EXPECTED["app/run.sh"],
        "app/привет.txt": EXPECTED["app/привет.txt"],
        f"{long_dir}/notes.md": b"notes\n",
    }
    assert os.readlink(root / "start") == "app/run.sh" and os.access(root / "app" / "run.sh", os.X_OK)
    assert (root / "app" / "Dockerfile").read_bytes() == EXPECTED["Dockerfile"]


@needs_git
@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/etc/passwd", "archive_link"),
        ("../../../etc", "archive_link"),
        ("../../elsewhere", "archive_link"),  # inside the destination, but outside the repository
        # through the link `code`: refused although it would stay inside (see README, threat model)
        ("../code/../Dockerfile", "archive_link_chain"),
    ],
)
def test_a_real_git_archive_with_a_symlink_out_is_refused_by_its_name(tmp_path: Path, target: str, reason: str):
    def make(repo: Path) -> None:
        (repo / "app").mkdir()
        (repo / "Dockerfile").write_bytes(EXPECTED["Dockerfile"])
        (repo / "code").symlink_to("app")
        (repo / "app" / "link").symlink_to(target)

    exc = refused(git_archive(tmp_path, make), tmp_path / "src")
    assert (exc.reason, exc.params["entry"], exc.params["target"]) == (reason, "app/link", target)


def test_an_archive_of_no_entries_is_refused_as_empty(tmp_path: Path):
    assert refused(zlib.compress(bytes(10240), wbits=31), tmp_path / "src").reason == "archive_empty"


def test_the_archive_limits_are_settings_with_the_documented_defaults(monkeypatch: pytest.MonkeyPatch):
    defaults = Settings()
    assert (defaults.max_archive_bytes, defaults.max_archive_files, defaults.max_file_bytes) == (
        200 * MiB,
        20_000,
        50 * MiB,
    )
    monkeypatch.setenv("GRADER_MAX_ARCHIVE_FILES", "300")
    assert Settings().max_archive_files == 300


# --- what is refused, whole ------------------------------------------------------------------

HOSTILE = {
    "absolute path": ([reg("/evil.txt", b"x")], "/evil.txt", "archive_path"),
    "dot-dot leaving the archive": ([reg(f"{TOP}/../../evil.txt", b"x")], "../../evil.txt", "archive_path"),
    "dot-dot even when it stays inside": ([reg(f"{TOP}/app/../sneaky.txt", b"x")], "app/../sneaky.txt", "archive_path"),
    "a file named '.', which would replace the destination": ([reg(".", b"x")], ".", "archive_path"),
    "symlink to an absolute path": ([symlink(f"{TOP}/passwd", "/etc/passwd")], "passwd", "archive_link"),
    "symlink leaving the archive": ([symlink(f"{TOP}/up", "../../..")], "up", "archive_link"),
    "symlink leaving the repository root": ([symlink(f"{TOP}/sibling", "../elsewhere")], "sibling", "archive_link"),
    "symlink named with a trailing slash": ([symlink(f"{TOP}/sub/up/", "../..")], "sub/up", "archive_link"),
    "symlink leaving through another symlink": (
        # lexically sub/deeper/l1/../.. is `sub`, but l1 is `..`/`..` itself: l2 really is TOP/..
        [
            directory(f"{TOP}/sub/deeper"),
            symlink(f"{TOP}/sub/deeper/l1", "../.."),
            symlink(f"{TOP}/l2", "sub/deeper/l1/../.."),
        ],
        "l2",
        "archive_link_chain",
    ),
    "symlink through a link to '.'": (
        [symlink(f"{TOP}/here", "."), symlink(f"{TOP}/out", "here/../..")], "out", "archive_link_chain"),
    "symlink to a symlink": ([symlink(f"{TOP}/a", "ok.txt"), symlink(f"{TOP}/b", "a")], "b", "archive_link_chain"),
    "symlink loop": ([symlink(f"{TOP}/a", "b"), symlink(f"{TOP}/b", "a")], "a", "archive_link_chain"),
    "symlink to itself": ([symlink(f"{TOP}/me", "me")], "me", "archive_link_chain"),
    # git archive writes no hard link: any is refused, before tarfile would link (or copy) anything
    "hard link to an absolute path": ([hardlink(f"{TOP}/h", "/etc/passwd")], "h", "archive_special"),
    "hard link leaving the archive": ([hardlink(f"{TOP}/h", "../outside.txt")], "h", "archive_special"),
    "hard link inside": ([hardlink(f"{TOP}/h", f"{TOP}/ok.txt")], "h", "archive_special"),
    "character device": ([special(f"{TOP}/tty", tarfile.CHRTYPE)], "tty", "archive_special"),
    "block device": ([special(f"{TOP}/sda", tarfile.BLKTYPE)], "sda", "archive_special"),
    "fifo": ([special(f"{TOP}/pipe", tarfile.FIFOTYPE)], "pipe", "archive_special"),
    "file over a symlink": ([symlink(f"{TOP}/x", "ok.txt"), reg(f"{TOP}/x", b"over")], "x", "archive_duplicate"),
    "symlink over a file": ([reg(f"{TOP}/y", b"y"), symlink(f"{TOP}/y", "ok.txt")], "y", "archive_duplicate"),
    "file over a file": ([reg(f"{TOP}/z", b"1"), reg(f"{TOP}/z", b"2")], "z", "archive_duplicate"),
    "file through a symlinked directory": (
        [directory(f"{TOP}/sub"), symlink(f"{TOP}/d", "sub"), reg(f"{TOP}/d/f.txt", b"x")],
        "d/f.txt",
        "archive_nested",
    ),
    "file through a symlink declared after it": (
        [reg(f"{TOP}/d/f.txt", b"x"), symlink(f"{TOP}/d", "sub"), directory(f"{TOP}/sub")],
        "d/f.txt",
        "archive_nested",
    ),
    "file under a file": ([reg(f"{TOP}/ok.txt/inner", b"x")], "ok.txt/inner", "archive_nested"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=str)
def test_a_hostile_entry_is_refused_by_its_name_and_nothing_is_left(tmp_path: Path, case: str):
    members, entry, reason = HOSTILE[case]
    # good entries first, so there would be something written to take back
    archive = make_tar([directory(TOP), reg(f"{TOP}/ok.txt", b"fine\n"), *members, reg(f"{TOP}/later.txt", b"x")])
    exc = refused(archive, tmp_path / "src")
    assert (exc.reason, exc.params["entry"]) == (reason, entry)
    assert list(tmp_path.iterdir()) == []  # nothing escaped next to dest either


def test_the_data_filter_bypass_through_links_past_path_max_is_refused(tmp_path: Path):
    """CVE-2025-4517 as in CPython's own test: directories of 247-byte names, each reached through a
    one-letter link, make a path past PATH_MAX where os.path.realpath stops resolving, and the data
    filter takes what follows for inside. With this very archive, extractall(filter="data") of
    CPython 3.11.7 and of backports.tarfile 1.2.0 writes `escape/newfile` outside the destination."""
    component, steps, members, path = "d" * 247, "abcdefghijklmnop", [], ""
    for step in steps:
        members += [directory(f"{path}{component}"), symlink(f"{path}{step}", component)]
        path = f"{path}{component}/"
    link = "/".join(steps) + "/" + "l" * 254
    members += [symlink(link, "/".join([".."] * len(steps))), symlink("escape", f"{link}/..")]
    members += [reg("escape/newfile", b"new")]
    exc = refused(make_tar(members), tmp_path / "dest", max_files=100)
    assert exc.reason == "archive_nested" and exc.params["entry"].startswith("a/b/c/")
    assert list(tmp_path.iterdir()) == []


def test_messages_name_entries_as_in_the_repository_on_one_line(tmp_path: Path):
    archive = make_tar(repository() + [symlink(f"{TOP}/app/bad\nname", "/etc/passwd\x1b[31m")])
    exc = refused(archive, tmp_path / "src")  # which also checks: one line, in both languages
    assert (exc.params["entry"], exc.params["target"]) == ("app/bad\\nname", "/etc/passwd\\x1b[31m")
    assert "Символическая ссылка app/bad\\nname → /etc/passwd\\x1b[31m" in refusal(exc, "ru")
    assert TOP not in str(exc)


def test_a_very_long_name_is_shortened_in_the_middle(tmp_path: Path):
    name = "a" * 300 + "/tail.txt"
    exc = refused(make_tar([directory(TOP), special(f"{TOP}/{name}", tarfile.FIFOTYPE)]), tmp_path / "src")
    assert len(exc.params["entry"]) <= 121 and exc.params["entry"].endswith("/tail.txt") and "…" in exc.params["entry"]


def test_a_refused_archive_leaves_an_existing_destination_empty(tmp_path: Path):
    dest = tmp_path / "src"
    dest.mkdir()
    exc = refused(make_tar(repository() + [symlink(f"{TOP}/passwd", "/etc/passwd")]), dest)
    assert exc.params["entry"] == "passwd" and dest.is_dir()


LIMITED = {
    "too many entries": (
        [reg(f"{TOP}/f{i}.txt", b"x") for i in range(6)],
        {"max_files": 5},
        "f3.txt",  # TOP, ok.txt, f0, f1, f2 are five
        ("too_many_files", {"limit": 5}),
    ),
    "one file too big": (
        [reg(f"{TOP}/big.bin", bytes(2 * MiB))],
        {"max_file_bytes": MiB},
        "big.bin",
        ("archive_file_too_big", {"size": 2.0, "limit": 1.0}),
    ),
    "all files too big together": (
        [reg(f"{TOP}/a.bin", bytes(MiB)), reg(f"{TOP}/b.bin", bytes(MiB))],
        {"max_bytes": 2 * MiB, "max_file_bytes": 2 * MiB},
        "b.bin",  # ok.txt's 5 bytes + 1 MiB + 1 MiB passes 2 MiB
        ("archive_too_big", {"limit": 2.0}),
    ),
}


@pytest.mark.parametrize("case", LIMITED, ids=str)
def test_an_archive_over_a_limit_is_refused_naming_the_entry_that_passed_it(tmp_path: Path, case: str):
    members, limits, entry, (reason, params) = LIMITED[case]
    exc = refused(make_tar([directory(TOP), reg(f"{TOP}/ok.txt", b"fine\n"), *members]), tmp_path / "src", **limits)
    assert (exc.reason, exc.params["entry"]) == (reason, entry)
    assert params.items() <= exc.params.items()


def test_exactly_at_the_limits_is_accepted(tmp_path: Path):
    archive = make_tar([directory(TOP), reg(f"{TOP}/a.bin", bytes(1000)), reg(f"{TOP}/b.bin", bytes(1000))])
    root = extract_archive(archive, tmp_path / "src", max_bytes=2000, max_files=3, max_file_bytes=1000)
    assert (root / "b.bin").stat().st_size == 1000


NOT_ARCHIVES = {
    "empty": b"",
    "text": b"just some text, not an archive\n" * 40,
    "a plain tar (GitLab's are gzipped)": tarfile.TarInfo("x").tobuf() + bytes(1024),
    "gzip of no tar": zlib.compress(b"hello " * 200, wbits=31),
    "broken gzip": b"\x1f\x8b\x08\x00" + bytes(600),
    "truncated tar.gz": make_tar(repository() + [reg(f"{TOP}/noise.bin", os.urandom(64 * KiB))])[:40_000],
}


@pytest.mark.parametrize("case", NOT_ARCHIVES, ids=str)
def test_what_is_not_a_whole_tar_gz_is_the_students_error(tmp_path: Path, case: str):
    exc = refused(NOT_ARCHIVES[case], tmp_path / "src")
    assert exc.reason == "archive_corrupt" and exc.params["detail"]


# --- bombs and the bytes read to list the headers --------------------------------------------


def test_a_gzip_bomb_of_one_huge_file_is_stopped_at_its_header(tmp_path: Path, bombs: dict[str, Path]):
    assert bombs["one"].stat().st_size < 2 * MiB  # a GiB of zeros, really compressed
    exc = refused_quickly_and_small(bombs["one"], tmp_path / "src", max_bytes=10 * MiB, max_file_bytes=2 * GiB)
    assert (exc.reason, exc.params["entry"], exc.params["limit"]) == ("archive_too_big", "zeros.bin", 10)
    assert "больше 10 МБ" in refusal(exc, "ru") and "more than 10 MiB" in refusal(exc, "en")


def test_a_gzip_bomb_within_the_caps_is_refused_by_its_compression_ratio(tmp_path: Path, bombs: dict[str, Path]):
    exc = refused_quickly_and_small(bombs["one"], tmp_path / "src", max_bytes=2 * GiB, max_file_bytes=2 * GiB)
    assert (exc.reason, exc.params["entry"], exc.params["ratio"]) == ("archive_bomb", "zeros.bin", 100)


def test_a_compressible_but_small_archive_is_no_bomb(tmp_path: Path):
    archive = make_tar([directory(TOP), reg(f"{TOP}/zeros.bin", bytes(MiB))])
    assert len(archive) * 100 < MiB
    assert (extract_archive(archive, tmp_path / "src", **LIMITS) / "zeros.bin").stat().st_size == MiB


def test_a_gzip_bomb_of_many_honest_files_stops_at_the_first_one_past_the_cap(tmp_path: Path, bombs: dict[str, Path]):
    exc = refused_quickly_and_small(
        bombs["many"], tmp_path / "src", max_bytes=10 * MiB, max_files=2000, max_file_bytes=2 * MiB
    )
    assert (exc.reason, exc.params["entry"]) == ("archive_too_big", "part-0010.bin")  # parts 0..9 are 10 MiB


@pytest.mark.parametrize(("count", "record"), [(40, 60_000), (1, 2 * MiB)], ids=["many big headers", "one huge"])
def test_the_bytes_decompressed_to_list_the_headers_are_bounded(tmp_path: Path, count: int, record: int):
    members = [directory(TOP)]
    for i in range(count):
        info, data = reg(f"{TOP}/f{i}.txt", b"x")
        info.pax_headers = {"comment": "y" * record}  # header bytes, for one byte of data
        members.append((info, data))
    exc = refused(make_tar(members), tmp_path / "src", max_files=100)
    assert exc.reason == "archive_corrupt" and "headers" in exc.params["detail"]


def test_every_reason_raised_has_its_texts_in_both_languages():
    tree = ast.parse(Path(grader.sources.__file__).read_text(encoding="utf-8"))
    raised = {node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
              and getattr(node.func, "id", None) == "_refusal" and isinstance(node.args[0], ast.Constant)}
    raised |= set(grader.sources._FILTERED.values()) | {"archive_refused"}
    assert raised and all(set(catalogue()["refusal"][reason]) == {"ru", "en"} for reason in raised)


# --- the workspace ---------------------------------------------------------------------------


def test_a_workspace_is_a_private_directory_under_the_base_removed_on_exit(tmp_path: Path):
    base = tmp_path / "work"  # created on demand
    with Workspace(base, "sub-42") as ws:
        assert ws.path.parent == base and ws.path.is_dir()
        assert stat.S_IMODE(ws.path.stat().st_mode) == 0o700
        (ws.path / "src").mkdir()
        (ws.path / "src" / "file").write_text("x")
    assert not ws.path.exists() and base.is_dir()


@pytest.mark.parametrize("error", [RuntimeError, SubmissionError, KeyboardInterrupt])
def test_a_workspace_is_removed_when_the_job_fails_or_is_interrupted(tmp_path: Path, error: type[BaseException]):
    with pytest.raises(error), Workspace(tmp_path, "sub-1") as ws:
        extract_archive(make_tar(repository()), ws.path / "src", **LIMITS)
        raise error("stop")
    assert not ws.path.exists()
    assert list(tmp_path.iterdir()) == []


def test_removing_a_workspace_never_follows_its_links(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    with Workspace(tmp_path / "work", "sub-2") as ws:
        (ws.path / "to-dir").symlink_to(outside)
        (ws.path / "to-file").symlink_to(outside / "keep.txt")
        (ws.path / "locked").mkdir()
        (ws.path / "locked" / "f").write_text("x")
        (ws.path / "locked").chmod(0o500)
    assert not ws.path.exists()
    assert (outside / "keep.txt").read_text() == "keep"


def test_a_job_id_cannot_place_the_workspace_outside_the_base(tmp_path: Path):
    base = tmp_path / "work"
    with Workspace(base, "../../etc/evil") as a, Workspace(base, "../../etc/evil") as b:
        assert a.path.parent == base and b.path.parent == base
        assert a.path != b.path
