"""grader.sources: real archives, built here, unpacked into a workspace or refused whole.

Hostile entries are hand-made TarInfo / ZipInfo records; the bombs are real gzip and zip
streams of a whole GiB of zeros, written without ever holding (or compressing) a GiB.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import time
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

from grader.config import Settings
from grader.errors import GraderError, SubmissionError
from grader.sources import Workspace, extract_archive

SHA = "0123456789abcdef0123456789abcdef01234567"
TOP = f"counter-backend-{SHA}-{SHA}"  # the top directory GitLab's archive endpoint puts everything in
KiB, MiB, GiB = 1024, 1024**2, 1024**3
LIMITS = {"max_bytes": 4 * MiB, "max_files": 50, "max_file_bytes": 1 * MiB}


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


def make_tar(members: list[Member], compression: str = "gz") -> bytes:
    """Like GitLab's: pax format, with a global header carrying the commit (as `git archive` writes)."""
    buf = io.BytesIO()
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT, pax_headers={"comment": SHA}) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def zentry(name: str, data: bytes = b"", unix_mode: int = stat.S_IFREG | 0o644, method: int = zipfile.ZIP_DEFLATED):
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.create_system, info.external_attr, info.compress_type = 3, unix_mode << 16, method
    return info, data


def make_zip(entries: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name": some cases want exactly that
        for info, data in entries:
            zf.writestr(info, data)
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


def shown(name: str) -> str:
    """An entry as messages name it: quoted, its path in the repository (GitLab's top directory left out)."""
    return f"'{name.removeprefix(TOP + '/')}'"


def refused(archive: bytes | Path, dest: Path, **limits: int) -> str:
    """The one-line SubmissionError message; dest must be gone or left empty."""
    existed = dest.is_dir()
    with pytest.raises(SubmissionError) as caught:
        extract_archive(archive, dest, **{**LIMITS, **limits})
    message = str(caught.value)
    assert "\n" not in message and message.startswith("repository archive:")
    if existed:
        assert list(dest.iterdir()) == []
    else:
        assert not dest.exists()
    return message


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


def write_gzip(path: Path, content: Callable[[Deflater], None]) -> None:
    with path.open("wb") as out:
        out.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\x03")  # gzip header: deflate, no name, unix
        d = Deflater(out)
        content(d)
        d.finish()
        out.write(struct.pack("<II", d.crc, d.size & 0xFFFFFFFF))


def write_gzip_tar(path: Path, members: list[tuple[tarfile.TarInfo, int]]) -> None:
    """A tar.gz of headers each followed by that many zero bytes of data."""

    def content(d: Deflater) -> None:
        for info, size in members:
            d.data(info.tobuf(tarfile.USTAR_FORMAT))
            d.zeros(size + (-size % tarfile.BLOCKSIZE))
        d.zeros(2 * tarfile.BLOCKSIZE)  # end of archive

    write_gzip(path, content)


def gnu_sparse_header(name: str, extended: bool) -> bytes:
    """A GNU sparse ('S') header block; `extended`: sparse-map extension blocks follow it."""
    info = tarfile.TarInfo(name)
    info.type = tarfile.GNUTYPE_SPARSE
    block = bytearray(info.tobuf(tarfile.GNU_FORMAT))
    assert len(block) == tarfile.BLOCKSIZE
    block[482] = int(extended)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def sparse_extension(more: bool) -> bytes:
    """21 (offset, size) pairs, and whether another extension block follows."""
    return (b"00000000001\0" * 2 * 21 + bytes([more])).ljust(tarfile.BLOCKSIZE, b"\0")


def write_zip_bomb(path: Path, name: str, size: int) -> None:
    """One deflated entry of `size` zeros, its sizes and CRC all honest."""
    buf = io.BytesIO()
    d = Deflater(buf)
    d.zeros(size)
    d.finish()
    data, raw = buf.getvalue(), name.encode()
    dos_date = (2024 - 1980) << 9 | 1 << 5 | 1
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, dos_date, d.crc, len(data), size, len(raw), 0)
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII",
        *(b"PK\x01\x02", 3 << 8 | 20, 20, 0, 8, 0, dos_date, d.crc, len(data), size, len(raw), 0, 0, 0, 0),
        *(0o100644 << 16, 0),
    )
    eocd = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(raw), len(local) + len(raw) + len(data), 0
    )
    path.write_bytes(local + raw + data + central + raw + eocd)


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
    pax = base / "gib-pax-header.tar.gz"
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, GiB
    write_gzip_tar(pax, [(directory(TOP)[0], 0), (header, GiB), (file_header(f"{TOP}/after.txt", 0), 0)])
    zipped = base / "one-gib-file.zip"
    write_zip_bomb(zipped, f"{TOP}/zeros.bin", GiB)
    sparse = base / "sparse-map-chain.tar.gz"

    def chain(d: Deflater) -> None:  # 64 MiB of sparse map: 2.8 million pairs tarfile would keep as tuples
        d.data(directory(TOP)[0].tobuf(tarfile.USTAR_FORMAT))
        d.data(gnu_sparse_header(f"{TOP}/h", extended=True))
        d.repeat(sparse_extension(more=True) * (MiB // tarfile.BLOCKSIZE), 64)
        d.data(sparse_extension(more=False))
        d.zeros(2 * tarfile.BLOCKSIZE)

    write_gzip(sparse, chain)
    return {"one": one, "many": many, "pax": pax, "zip": zipped, "sparse": sparse}


def refused_quickly_and_small(archive: Path, dest: Path, **limits: int) -> str:
    tracemalloc.start()
    started = time.monotonic()
    try:
        message = refused(archive, dest, **limits)
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert peak < 32 * MiB, f"peak Python memory {peak / MiB:.0f} MiB"
    return message


# --- what a repository archive becomes --------------------------------------------------------


def test_a_gitlab_shaped_archive_yields_its_inner_directory_with_the_files_intact(tmp_path: Path):
    dest = tmp_path / "src"
    root = extract_archive(make_tar(repository()), dest, **LIMITS)
    assert root == dest / TOP
    assert files_under(root) == EXPECTED
    assert (root / "empty").is_dir()
    assert os.access(root / "app" / "run.sh", os.X_OK) and not os.access(root / "app" / "main.py", os.X_OK)


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz", "zip"])
def test_every_supported_format_is_recognised_by_its_content(tmp_path: Path, compression: str):
    if compression == "zip":
        archive = make_zip([zentry(f"{TOP}/{name}", data) for name, data in EXPECTED.items()])
    else:
        archive = make_tar(repository(), compression)
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    assert root == tmp_path / "src" / TOP
    assert files_under(root) == EXPECTED


def test_an_archive_file_on_disk_extracts_like_the_same_bytes(tmp_path: Path):
    path = tmp_path / "archive.tar.gz"
    path.write_bytes(make_tar(repository()))
    root = extract_archive(path, tmp_path / "src", **LIMITS)
    assert files_under(root) == EXPECTED


def test_without_a_single_top_directory_the_destination_is_the_root(tmp_path: Path):
    archive = make_tar([reg("Dockerfile", b"FROM scratch\n"), directory("app"), reg("app/x.py", b"x = 1\n")])
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    assert root == tmp_path / "src"
    assert files_under(root) == {"Dockerfile": b"FROM scratch\n", "app/x.py": b"x = 1\n"}


def test_a_single_top_level_file_is_not_taken_for_the_root(tmp_path: Path):
    root = extract_archive(make_tar([reg("Dockerfile", b"FROM scratch\n")]), tmp_path / "src", **LIMITS)
    assert root == tmp_path / "src"


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
            hardlink(f"{TOP}/Dockerfile.copy", f"{TOP}/Dockerfile"),
        ]
    )
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    links = {"entry": "app/run.sh", "code": "app", "app/Dockerfile": "../Dockerfile", "dangling": "not-there-yet"}
    for name, target in links.items():
        assert (root / name).is_symlink() and os.readlink(root / name) == target
    assert (root / "code" / "main.py").read_bytes() == EXPECTED["app/main.py"]
    assert (root / "Dockerfile.copy").stat().st_ino == (root / "Dockerfile").stat().st_ino
    assert not (root / "Dockerfile.copy").is_symlink()


def test_zip_symlinks_inside_the_repository_are_kept_as_links(tmp_path: Path):
    archive = make_zip(
        [
            zentry(f"{TOP}/", b"", stat.S_IFDIR | 0o755),
            zentry(f"{TOP}/Dockerfile", EXPECTED["Dockerfile"]),
            zentry(f"{TOP}/Dockerfile.link", b"Dockerfile", stat.S_IFLNK | 0o777),
        ]
    )
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    assert os.readlink(root / "Dockerfile.link") == "Dockerfile"
    assert (root / "Dockerfile.link").read_bytes() == EXPECTED["Dockerfile"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("fmt", ["tar.gz", "zip"])
def test_a_real_git_archive_with_symlinks_round_trips(tmp_path: Path, fmt: str):
    repo = tmp_path / "repo"
    (repo / "app").mkdir(parents=True)
    (repo / "Dockerfile").write_bytes(EXPECTED["Dockerfile"])
    (repo / "app" / "run.sh").write_bytes(EXPECTED["app/run.sh"])
    (repo / "app" / "run.sh").chmod(0o755)
    (repo / "start").symlink_to("app/run.sh")

    def git(*args: str) -> str:
        env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(tmp_path)}
        done = subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)
        return done.stdout.decode().strip()

    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=Student", "-c", "user.email=s@example.edu", "commit", "-qm", "work")
    sha = git("rev-parse", "HEAD")
    archive = tmp_path / f"archive.{fmt}"
    git("archive", f"--format={fmt}", f"--prefix=repo-{sha}-{sha}/", f"--output={archive}", "HEAD")
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    assert root.name == f"repo-{sha}-{sha}"
    assert files_under(root) == {"Dockerfile": EXPECTED["Dockerfile"], "app/run.sh": EXPECTED["app/run.sh"]}
    assert os.readlink(root / "start") == "app/run.sh" and os.access(root / "app" / "run.sh", os.X_OK)


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

HOSTILE_TAR = {
    "absolute path": ([reg("/evil.txt", b"x")], "/evil.txt", "absolute path"),
    "dot-dot leaving the archive": ([reg(f"{TOP}/../../evil.txt", b"x")], f"{TOP}/../../evil.txt", "'..'"),
    "dot-dot even when it stays inside": ([reg(f"{TOP}/app/../sneaky.txt", b"x")], f"{TOP}/app/../sneaky.txt", "'..'"),
    "symlink to an absolute path": ([symlink(f"{TOP}/passwd", "/etc/passwd")], f"{TOP}/passwd", "absolute"),
    "symlink leaving the archive": ([symlink(f"{TOP}/up", "../../..")], f"{TOP}/up", "outside"),
    "symlink leaving the repository root": ([symlink(f"{TOP}/sibling", "../elsewhere")], f"{TOP}/sibling", "outside"),
    "symlink leaving through another symlink": (
        # lexically sub/deeper/l1/../.. is `sub`, but l1 is `..`/`..` itself: l2 really is TOP/..
        [
            directory(f"{TOP}/sub/deeper"),
            symlink(f"{TOP}/sub/deeper/l1", "../.."),
            symlink(f"{TOP}/l2", "sub/deeper/l1/../.."),
        ],
        f"{TOP}/l2",
        "outside",
    ),
    "symlink loop": ([symlink(f"{TOP}/a", "b"), symlink(f"{TOP}/b", "a")], f"{TOP}/a", "loop"),
    "symlink too long to walk": ([symlink(f"{TOP}/far", "./" * 600 + "ok.txt")], f"{TOP}/far", "more than 512"),
    "hard link to an absolute path": ([hardlink(f"{TOP}/h", "/etc/passwd")], f"{TOP}/h", "absolute"),
    "hard link leaving the archive": ([hardlink(f"{TOP}/h", "../outside.txt")], f"{TOP}/h", "outside"),
    "hard link to nothing in the archive": ([hardlink(f"{TOP}/h", f"{TOP}/missing")], f"{TOP}/h", "earlier file"),
    "hard link to a directory": ([hardlink(f"{TOP}/h", f"{TOP}")], f"{TOP}/h", "earlier file"),
    "character device": ([special(f"{TOP}/tty", tarfile.CHRTYPE)], f"{TOP}/tty", "character device"),
    "block device": ([special(f"{TOP}/sda", tarfile.BLKTYPE)], f"{TOP}/sda", "block device"),
    "fifo": ([special(f"{TOP}/pipe", tarfile.FIFOTYPE)], f"{TOP}/pipe", "FIFO"),
    "file over a symlink": (
        [symlink(f"{TOP}/x", "ok.txt"), reg(f"{TOP}/x", b"over")],
        f"{TOP}/x",
        "symlink and as a file",
    ),
    "symlink over a file": (
        [reg(f"{TOP}/y", b"y"), symlink(f"{TOP}/y", "ok.txt")],
        f"{TOP}/y",
        "file and as a symlink",
    ),
    "file over a file": ([reg(f"{TOP}/z", b"1"), reg(f"{TOP}/z", b"2")], f"{TOP}/z", "twice"),
    "file through a symlinked directory": (
        [directory(f"{TOP}/sub"), symlink(f"{TOP}/d", "sub"), reg(f"{TOP}/d/f.txt", b"x")],
        f"{TOP}/d/f.txt",
        "symlink, not a directory",
    ),
    "file under a file": ([reg(f"{TOP}/ok.txt/inner", b"x")], f"{TOP}/ok.txt/inner", "file, not a directory"),
}


@pytest.mark.parametrize("case", HOSTILE_TAR, ids=str)
def test_a_hostile_tar_entry_is_refused_by_name_and_nothing_is_left(tmp_path: Path, case: str):
    members, name, reason = HOSTILE_TAR[case]
    # good entries first, so there is something written to take back
    archive = make_tar([directory(TOP), reg(f"{TOP}/ok.txt", b"fine\n"), *members, reg(f"{TOP}/later.txt", b"x")])
    message = refused(archive, tmp_path / "src")
    assert shown(name) in message and reason in message
    assert list(tmp_path.iterdir()) == []  # nothing escaped next to dest either


def test_messages_name_entries_as_in_the_repository_on_one_line(tmp_path: Path):
    archive = make_tar(repository() + [symlink(f"{TOP}/app/bad\nname", "/etc/passwd")])
    message = refused(archive, tmp_path / "src")  # which also checks: one line
    assert "symlink 'app/bad\\nname' points to the absolute path '/etc/passwd'" in message
    assert TOP not in message


def test_a_refused_archive_leaves_an_existing_destination_empty(tmp_path: Path):
    dest = tmp_path / "src"
    dest.mkdir()
    message = refused(make_tar(repository() + [symlink(f"{TOP}/passwd", "/etc/passwd")]), dest)
    assert "'passwd'" in message
    assert dest.is_dir()


LIMITED = {
    "too many entries": (
        [reg(f"{TOP}/f{i}.txt", b"x") for i in range(6)],
        {"max_files": 5},
        f"{TOP}/f3.txt",  # TOP, ok.txt, f0, f1, f2 are five
        "more than 5 entries",
    ),
    "one file too big": (
        [reg(f"{TOP}/big.bin", bytes(2000))],
        {"max_file_bytes": 1000},
        f"{TOP}/big.bin",
        "limit for one file",
    ),
    "all files too big together": (
        [reg(f"{TOP}/a.bin", bytes(1500)), reg(f"{TOP}/b.bin", bytes(1500))],
        {"max_bytes": 3000, "max_file_bytes": 2000},
        f"{TOP}/b.bin",  # ok.txt's 5 bytes + 1500 + 1500 passes 3000
        "more than",
    ),
}


@pytest.mark.parametrize("case", LIMITED, ids=str)
def test_an_archive_over_a_limit_is_refused_naming_the_entry_that_passed_it(tmp_path: Path, case: str):
    members, limits, name, reason = LIMITED[case]
    archive = make_tar([directory(TOP), reg(f"{TOP}/ok.txt", b"fine\n"), *members])
    message = refused(archive, tmp_path / "src", **limits)
    assert shown(name) in message and reason in message


def test_exactly_at_the_limits_is_accepted(tmp_path: Path):
    archive = make_tar([directory(TOP), reg(f"{TOP}/a.bin", bytes(1000)), reg(f"{TOP}/b.bin", bytes(1000))])
    root = extract_archive(archive, tmp_path / "src", max_bytes=2000, max_files=3, max_file_bytes=1000)
    assert (root / "b.bin").stat().st_size == 1000


HOSTILE_ZIP = {
    "absolute path": ([zentry("/evil.txt", b"x")], "/evil.txt", "absolute path"),
    "dot-dot": ([zentry(f"{TOP}/../evil.txt", b"x")], f"{TOP}/../evil.txt", "'..'"),
    "symlink to an absolute path": ([zentry(f"{TOP}/l", b"/etc/passwd", stat.S_IFLNK | 0o777)], f"{TOP}/l", "absolute"),
    "symlink leaving the archive": ([zentry(f"{TOP}/l", b"../../x", stat.S_IFLNK | 0o777)], f"{TOP}/l", "outside"),
    "fifo": ([zentry(f"{TOP}/pipe", b"", stat.S_IFIFO | 0o644)], f"{TOP}/pipe", "FIFO"),
    "socket": ([zentry(f"{TOP}/sock", b"", stat.S_IFSOCK | 0o644)], f"{TOP}/sock", "socket"),
    "character device": ([zentry(f"{TOP}/tty", b"", stat.S_IFCHR | 0o644)], f"{TOP}/tty", "character device"),
    "file over a symlink": (
        [zentry(f"{TOP}/x", b"ok.txt", stat.S_IFLNK | 0o777), zentry(f"{TOP}/x", b"over")],
        f"{TOP}/x",
        "twice",
    ),
    "one file too big": ([zentry(f"{TOP}/big.bin", bytes(2 * MiB))], f"{TOP}/big.bin", "limit for one file"),
    "bzip2 entry (inflated without a bound by zipfile)": (
        [zentry(f"{TOP}/b.txt", b"x" * 100, method=zipfile.ZIP_BZIP2)],
        f"{TOP}/b.txt",
        "compression method",
    ),
}


@pytest.mark.parametrize("case", HOSTILE_ZIP, ids=str)
def test_a_hostile_zip_entry_is_refused_by_name_and_nothing_is_left(tmp_path: Path, case: str):
    entries, name, reason = HOSTILE_ZIP[case]
    archive = make_zip([zentry(f"{TOP}/ok.txt", b"fine\n"), *entries, zentry(f"{TOP}/later.txt", b"x")])
    message = refused(archive, tmp_path / "src")
    assert shown(name) in message and reason in message
    assert list(tmp_path.iterdir()) == []


def test_a_zip_with_too_many_entries_is_refused_before_anything_is_written(tmp_path: Path):
    archive = make_zip([zentry(f"{TOP}/f{i}.txt", b"x") for i in range(8)])
    assert "'f5.txt'" in refused(archive, tmp_path / "src", max_files=5)


def test_a_zip_entry_whose_declared_size_understates_its_data_is_refused_as_corrupt(tmp_path: Path):
    name = f"{TOP}/liar.bin"
    archive = bytearray(make_zip([zentry(f"{TOP}/ok.txt", b"fine\n"), zentry(name, bytes(100_000))]))
    local = zipfile.ZipFile(io.BytesIO(bytes(archive))).getinfo(name).header_offset
    central = archive.index(archive[local + 4 : local + 26], local + 30) - 6  # same fields, in the directory
    struct.pack_into("<I", archive, local + 22, 1000)  # uncompressed size: 1000, not 100 000
    struct.pack_into("<I", archive, central + 24, 1000)
    message = refused(bytes(archive), tmp_path / "src")
    assert "'liar.bin'" in message and "corrupt" in message


NOT_ARCHIVES = {
    "empty": (b"", "empty"),
    "text": (b"just some text, not an archive\n" * 40, "not a tar or zip"),
    "gzip of no tar": (zlib.compress(b"hello " * 200, wbits=31), "not a tar or zip"),
    "broken gzip": (b"\x1f\x8b\x08\x00" + bytes(600), "corrupt compressed data"),
    "truncated tar.gz": (make_tar(repository() + [reg(f"{TOP}/noise.bin", os.urandom(64 * KiB))])[:40_000], "corrupt"),
    "truncated zip": (make_zip([zentry(f"{TOP}/a.txt", os.urandom(4000))])[:-30], "not a valid zip"),
}


@pytest.mark.parametrize("case", NOT_ARCHIVES, ids=str)
def test_what_is_not_a_whole_archive_is_the_students_error(tmp_path: Path, case: str):
    data, reason = NOT_ARCHIVES[case]
    assert reason in refused(data, tmp_path / "src")


# --- bombs -----------------------------------------------------------------------------------


def test_a_gzip_bomb_of_one_huge_file_is_stopped_quickly_in_little_memory(tmp_path: Path, bombs: dict[str, Path]):
    assert bombs["one"].stat().st_size < 2 * MiB  # a GiB of zeros, really compressed
    message = refused_quickly_and_small(bombs["one"], tmp_path / "src", max_bytes=10 * MiB, max_file_bytes=2 * GiB)
    assert "'zeros.bin'" in message and "more than 10 MiB" in message


def test_a_gzip_bomb_of_many_honest_files_stops_at_the_first_one_past_the_cap(tmp_path: Path, bombs: dict[str, Path]):
    message = refused_quickly_and_small(
        bombs["many"], tmp_path / "src", max_bytes=10 * MiB, max_files=2000, max_file_bytes=2 * MiB
    )
    assert "'part-0010.bin'" in message  # parts 0..9 are exactly 10 MiB


def test_a_gigantic_tar_header_is_refused_without_reading_it_into_memory(tmp_path: Path, bombs: dict[str, Path]):
    message = refused_quickly_and_small(bombs["pax"], tmp_path / "src", max_bytes=2 * GiB, max_file_bytes=2 * GiB)
    assert "header larger than 64 KiB" in message and f"'{TOP}'" in message  # the entry it follows


def test_headers_decompressing_past_what_the_limits_allow_are_refused(tmp_path: Path):
    members = [directory(TOP)]
    for i in range(4):
        info, data = reg(f"{TOP}/f{i}.txt", b"x")
        info.pax_headers = {"comment": "y" * 60_000}  # 60 KB of header (under the 64 KiB per header) for one byte
        members.append((info, data))
    message = refused(make_tar(members), tmp_path / "src", max_bytes=KiB, max_files=10)
    assert "decompressed headers and data" in message


def sparse_gnu() -> list[Member]:
    info = tarfile.TarInfo(f"{TOP}/holes.img")
    info.type = tarfile.GNUTYPE_SPARSE
    return [(info, None)]


def sparse_pax() -> list[Member]:
    info, data = reg(f"{TOP}/GNUSparseFile.0/holes.img", b"1\n0\n4\n".ljust(512, b"\0") + b"data")
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": f"{TOP}/holes.img",
        "GNU.sparse.realsize": str(GiB),
    }
    return [(info, data)]


@pytest.mark.parametrize(("members", "fmt"), [(sparse_gnu, tarfile.GNU_FORMAT), (sparse_pax, tarfile.PAX_FORMAT)])
def test_a_sparse_file_is_refused_before_tarfile_builds_its_map(tmp_path: Path, members, fmt: int):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=fmt) as tf:
        for info, data in [directory(TOP), reg(f"{TOP}/ok.txt", b"fine\n"), *members()]:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    assert "sparse" in refused(buf.getvalue(), tmp_path / "src")


def test_a_chain_of_sparse_map_blocks_is_refused_at_its_first_header(tmp_path: Path, bombs: dict[str, Path]):
    limits = Settings()  # the real defaults: their header budget alone would let the whole map be parsed
    message = refused_quickly_and_small(
        bombs["sparse"],
        tmp_path / "src",
        max_bytes=limits.max_archive_bytes,
        max_files=limits.max_archive_files,
        max_file_bytes=limits.max_file_bytes,
    )
    assert "sparse" in message


def test_file_contents_and_names_that_look_like_tar_headers_are_only_data(tmp_path: Path):
    header = sparse_gnu()[0][0].tobuf(tarfile.GNU_FORMAT)  # sparse header blocks (after a long name), as content
    records = b"30 GNU.sparse.realsize=1073741824\n"
    long_dir = "docs/" + "d" * 120 + "/"  # long enough for a pax path record
    archive = make_tar(
        [
            directory(TOP),
            reg(f"{TOP}/tests/fixture.tar", header + bytes(1024)),
            reg(f"{TOP}/{long_dir}GNU.sparse.notes.txt", records),
        ]
    )
    root = extract_archive(archive, tmp_path / "src", **LIMITS)
    assert (root / "tests" / "fixture.tar").read_bytes() == header + bytes(1024)
    assert (root / long_dir / "GNU.sparse.notes.txt").read_bytes() == records


def test_a_zip_bomb_is_refused_from_its_declared_size_before_inflating(tmp_path: Path, bombs: dict[str, Path]):
    assert zipfile.ZipFile(bombs["zip"]).getinfo(f"{TOP}/zeros.bin").file_size == GiB
    message = refused_quickly_and_small(bombs["zip"], tmp_path / "src", max_bytes=10 * MiB, max_file_bytes=2 * GiB)
    assert "'zeros.bin'" in message and "more than 10 MiB" in message


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
