"""Turns a fetched repository archive into a per-job workspace, safely.

GitLab's archive endpoint (`GET /projects/:id/repository/archive?sha=...`) answers a tar.gz whose
entries all sit under one top directory, `<project>-<sha>-<sha>/`. The archive is the student's
(a repository can hold any symlink, and anything that reaches us can be crafted), so nothing in it
may write outside `dest`, replace what it wrote, or exhaust the grader's disk, memory or time:

- names are checked lexically (no absolute path, no `..`, no over-long or over-deep path), and an
  entry may not sit under a link or a file, nor appear twice;
- regular files are written with O_EXCL|O_NOFOLLOW, by our own copy loop that counts the bytes
  actually written (per file and in total) and stops as soon as a cap is passed; the sizes the
  headers declare are checked before, but never trusted alone;
- links are created last, once every entry is known, so no entry is ever written through one;
  a symlink is followed through the archive's own symlinks and refused if it ever leaves the
  repository root (absolute, `..` too far, a loop); a hard link must name an earlier file;
- devices, FIFOs, sockets and unknown entry types are refused; modes lose setuid, setgid, sticky
  and group/other write bits, directories are always 0755;
- tar headers are read through a guard that refuses any single header read over 64 KiB (a pax or
  GNU long-name header is otherwise read into memory whole) and any sparse file (whose maps
  tarfile builds in memory from an unbounded chain of blocks), and stops decompressing once more
  bytes came out than data within the caps plus headers could need; parsed members are not kept;
- zip entries must be stored or deflated (zipfile inflates bzip2 and lzma without a bound).

`tarfile.data_filter` (Python 3.11.4+) runs on every tar member as a second opinion; the copies, the modes and the
links are ours. Anything refused leaves `dest` as it was found (absent or empty).
"""

from __future__ import annotations

import bz2
import functools
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Protocol, TypeVar

from grader.errors import GraderError, SubmissionError

CHUNK = 256 * 1024  # one read of file data
MAX_HEADER_READ = 64 * 1024  # a single tar header read (pax, GNU long name) above this is hostile
HEADER_ALLOWANCE = 8 * 1024  # per entry: tar header blocks, pax records and padding beyond the data
MAX_NAME_BYTES = 255  # one path component (NAME_MAX)
MAX_PATH_BYTES = 2048  # a whole path inside the archive; dest's own path must still fit PATH_MAX
MAX_DEPTH = 128  # nesting; also keeps the recursive rmtree far from Python's recursion limit
MAX_LINK_TARGET_BYTES = 4095
MAX_LINK_HOPS = 40  # like the kernel's ELOOP limit
MAX_LINK_STEPS = 512  # path components walked to resolve one symlink, however they are chained

_MAGIC_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_MAGIC_GZIP = b"\x1f\x8b"
_MAGIC_BZIP2 = b"BZh"
_MAGIC_XZ = b"\xfd7zXZ\x00"
_PAX_SPARSE = re.compile(rb"(?:^|\n)\d+ GNU\.sparse\.")  # a pax record "<length> GNU.sparse.<key>=..."
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
_DECOMPRESSION_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)
_READ_ERRORS = (
    tarfile.TarError,
    zipfile.BadZipFile,
    *_DECOMPRESSION_ERRORS,
    NotImplementedError,
    RuntimeError,
    UnicodeError,
    OverflowError,
)

DIR, FILE, SYMLINK, HARDLINK = "directory", "file", "symlink", "hard link"

_T = TypeVar("_T")


def extract_archive(archive: bytes | Path, dest: Path, *, max_bytes: int, max_files: int, max_file_bytes: int) -> Path:
    """Extracts a tar (plain, gzip, bzip2 or xz, detected) or zip archive into `dest`, which must be
    empty or absent, and returns the repository root: the single top-level directory if there is
    exactly one, else `dest`. A hostile, oversized or corrupt archive raises SubmissionError with
    one line naming the entry, and leaves `dest` as it was (absent or empty)."""
    dest = Path(dest)
    created = _prepare(dest)
    try:
        with _open_source(archive) as src:
            extractor = _Extractor(dest, max_bytes=max_bytes, max_files=max_files, max_file_bytes=max_file_bytes)
            head = src.read(512)
            src.seek(0)
            if not head:
                raise SubmissionError("repository archive: the archive is empty (0 bytes)")
            if head.startswith(_MAGIC_ZIP):
                extractor.from_zip(src)
            else:
                extractor.from_tar(src, head)
            return extractor.finish()
    except BaseException as exc:
        try:
            _clear(dest, created)
        except OSError as err:
            exc.add_note(f"and {dest} could not be cleared: {err}")
        raise


class Workspace:
    """A private (0700) directory for one job under `base_dir`, removed on exit whatever happened,
    KeyboardInterrupt included:

        with Workspace(settings.work_dir, job_id) as ws:
            repo = extract_archive(archive, ws.path / "repo", ...)
    """

    def __init__(self, base_dir: Path, job_id: str) -> None:
        self.base_dir = Path(base_dir)
        self.job_id = job_id
        self.path: Path  # set on entering; still names the (removed) directory after exit
        self._live = False

    def __enter__(self) -> Workspace:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.job_id)[:64] or "job"
        try:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix=f"job-{safe}-", dir=self.base_dir))  # mode 0700
            self._live = True
        except OSError as err:
            raise GraderError(f"cannot create a workspace under {self.base_dir} (GRADER_WORK_DIR): {err}") from err
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._live:
            return
        self._live = False
        path = self.path
        try:
            _remove_tree(path)
        except OSError as err:
            if exc is not None:
                exc.add_note(f"and the workspace {path} could not be removed: {err}")
                return
            raise GraderError(f"cannot remove the workspace {path}: {err}") from err


# --- the extraction proper ---------------------------------------------------------------------


@dataclass
class _Entry:
    name: str  # as in the archive, for messages
    parts: tuple[str, ...]  # normalised path below dest; () is dest itself
    kind: str
    size: int = 0
    mode: int = 0o644
    target: str = ""  # of a link, as in the archive


class _StreamError(Exception):
    """The tar stream guard stopped; `reason` is completed with the entry by the extractor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Extractor:
    def __init__(self, dest: Path, *, max_bytes: int, max_files: int, max_file_bytes: int) -> None:
        self.dest = dest
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.max_file_bytes = max_file_bytes
        self.tree: dict[tuple[str, ...], str] = {}  # every path the archive makes, implied dirs included
        self.made: set[tuple[str, ...]] = {()}  # directories created on disk
        self.symlinks: dict[tuple[str, ...], str] = {}
        self.links: list[_Entry] = []  # created last, in archive order
        self.guard: _TarGuard | None = None
        self.count = 0
        self.top: str | None = None  # the top directory all entries so far share, left out of messages
        self.top_known = False
        self.declared = 0  # bytes the headers announced so far
        self.written = 0  # bytes actually written so far

    # -- tar --

    def from_tar(self, src: BinaryIO, head: bytes) -> None:
        inner: _ReadStream
        if head.startswith(_MAGIC_GZIP):
            label, inner = "gzip", gzip.GzipFile(fileobj=src, mode="rb")
        elif head.startswith(_MAGIC_BZIP2):
            label, inner = "bzip2", bz2.BZ2File(src)
        elif head.startswith(_MAGIC_XZ):
            label, inner = "xz", lzma.LZMAFile(src)
        else:
            label, inner = "plain", src
        budget = self.max_bytes + HEADER_ALLOWANCE * (self.max_files + 1) + MAX_HEADER_READ
        stream = self.guard = _TarGuard(inner, budget)
        try:
            try:
                tf = tarfile.open(fileobj=stream, mode="r:", encoding="utf-8", errors="surrogateescape")
            except _StreamError as err:
                raise _refuse(f"{err.reason} in the first entry") from None
            except (SubmissionError, GraderError):
                raise
            except _READ_ERRORS as err:
                kind = "" if label == "plain" else f"{label} data, "
                raise _refuse(f"not a tar or zip archive ({kind}{_oneline(err)})") from None
            try:
                self._tar_members(tf)
            finally:
                tf.close()
        finally:
            if inner is not src:
                inner.close()

    def _tar_members(self, tf: tarfile.TarFile) -> None:
        last: str | None = None
        while True:
            try:
                member = tf.next()
            except _StreamError as err:
                raise _refuse(f"{err.reason} after entry {self._name(last)}" if last else err.reason) from None
            except (SubmissionError, GraderError):
                raise
            except _READ_ERRORS as err:
                after = f" after entry {self._name(last)}" if last else ""
                raise _refuse(f"corrupt archive{after} ({_oneline(err)})") from None
            if member is None:
                return
            # tarfile keeps every member it parsed; we need none of them (`members` is not in typeshed)
            tf.members.clear()  # type: ignore[attr-defined]
            last = member.name
            self._count(member.name)
            entry = self._tar_entry(member)
            self._admit(entry)
            self._second_opinion(member)
            if entry.kind == FILE:
                self._write_file(entry, functools.partial(tf.extractfile, member))

    def _second_opinion(self, member: tarfile.TarInfo) -> None:
        # tar's data filter came with Python 3.11.4; on an older 3.11 (Debian 12's 3.11.2, in the
        # worker image built on the local base stand-in) our own rules above are the only ones.
        data_filter = getattr(tarfile, "data_filter", None)
        if data_filter is None:
            return
        try:
            data_filter(member, str(self.dest))
        except tarfile.FilterError as err:
            raise _refuse(
                f"entry {self._name(member.name)} is refused by tar's data filter ({type(err).__name__})"
            ) from None

    def _tar_entry(self, m: tarfile.TarInfo) -> _Entry:
        name = m.name
        parts = _parts(name, self._name(name))
        if m.sparse is not None:
            raise _refuse(f"entry {self._name(name)} is a sparse file; sparse files are not accepted")
        if m.isreg():
            return _Entry(name, parts, FILE, size=m.size, mode=_file_mode(m.mode))
        if m.isdir():
            return _Entry(name, parts, DIR)
        if m.issym():
            return _Entry(name, parts, SYMLINK, target=m.linkname)
        if m.islnk():
            return _Entry(name, parts, HARDLINK, target=m.linkname)
        if m.ischr() or m.isblk() or m.isfifo():
            what = "character device" if m.ischr() else "block device" if m.isblk() else "FIFO"
            raise _refuse(f"entry {self._name(name)} is a {what}; a repository holds only files, directories and links")
        raise _refuse(f"entry {self._name(name)} has the unsupported tar type {m.type!r}")

    # -- zip --

    def from_zip(self, src: BinaryIO) -> None:
        try:
            zf = zipfile.ZipFile(src)
        except (SubmissionError, GraderError):
            raise
        except _READ_ERRORS as err:
            raise _refuse(f"not a valid zip archive ({_oneline(err)})") from None
        with zf:
            self._zip_members(zf)

    def _zip_members(self, zf: zipfile.ZipFile) -> None:
        infos = zf.infolist()
        self.top, self.top_known = _common_top(info.filename for info in infos), True
        if len(infos) > self.max_files:
            self._count_over(infos[self.max_files].filename)
        for info in infos:
            self._count(info.filename)
            entry = self._zip_entry(info)
            if info.flag_bits & 0x1:
                raise _refuse(f"entry {self._name(info.filename)} is encrypted")
            if entry.kind != DIR and info.compress_type not in _ZIP_METHODS:
                raise _refuse(
                    f"entry {self._name(info.filename)} uses zip compression method {info.compress_type};"
                    " only stored and deflated entries are accepted"
                )
            if entry.kind == SYMLINK:
                entry.target = self._zip_link_target(zf, info)
            self._admit(entry)
            if entry.kind == FILE:
                self._write_file(entry, functools.partial(zf.open, info))

    def _zip_entry(self, info: zipfile.ZipInfo) -> _Entry:
        name = info.filename
        unix = info.external_attr >> 16 if info.create_system == 3 else 0
        ftype = stat.S_IFMT(unix)
        parts = _parts(name, self._name(name))
        if name.endswith("/") or ftype == stat.S_IFDIR:
            if ftype not in (0, stat.S_IFDIR):
                raise _refuse(f"entry {self._name(name)} is named as a directory but is not one")
            return _Entry(name, parts, DIR)
        if ftype == stat.S_IFLNK:
            return _Entry(name, parts, SYMLINK, size=info.file_size)
        if ftype in (0, stat.S_IFREG):
            return _Entry(name, parts, FILE, size=info.file_size, mode=_file_mode(unix or 0o644))
        what = {stat.S_IFCHR: "character device", stat.S_IFBLK: "block device", stat.S_IFIFO: "FIFO"}
        kind = what.get(ftype, "socket" if ftype == stat.S_IFSOCK else f"file of type {oct(ftype)}")
        raise _refuse(f"entry {self._name(name)} is a {kind}; a repository holds only files, directories and links")

    def _zip_link_target(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
        if info.file_size > MAX_LINK_TARGET_BYTES:
            raise _refuse(f"symlink {self._name(info.filename)} has a target longer than {MAX_LINK_TARGET_BYTES} bytes")
        with self._reading(info.filename):
            with zf.open(info) as f:
                data = f.read(MAX_LINK_TARGET_BYTES + 1)
        if len(data) > MAX_LINK_TARGET_BYTES:
            raise _refuse(f"symlink {self._name(info.filename)} has a target longer than {MAX_LINK_TARGET_BYTES} bytes")
        return os.fsdecode(data)

    # -- common --

    def _count(self, name: str) -> None:
        self.count += 1
        if self.count > self.max_files:
            self._count_over(name)

    def _count_over(self, name: str) -> None:
        raise _refuse(
            f"more than {self.max_files} entries (stopped at {self._name(name)}); remove generated or vendored"
            " files (node_modules, .venv, build output) from the repository"
        )

    def _admit(self, e: _Entry) -> None:
        """Checks one entry against everything known so far, registers it, creates its parents."""
        if e.parts:
            if not self.top_known:
                self.top_known = True
                self.top = e.parts[0] if len(e.parts) > 1 or e.kind == DIR else None
            elif e.parts[0] != self.top:
                self.top = None
        if e.kind in (SYMLINK, HARDLINK):
            self._check_link_target(e)
        if e.kind == FILE:
            if e.size > self.max_file_bytes:
                self._file_too_big(e, e.size)
            self.declared += e.size
            if self.declared > self.max_bytes:
                self._total_too_big(e)
        if not e.parts:
            if e.kind == DIR:
                return  # "./": the archive's root itself
            raise _refuse(f"entry {self._name(e.name)} has no file name")
        for i in range(1, len(e.parts)):
            above = self.tree.get(e.parts[:i])
            if above is None:
                self.tree[e.parts[:i]] = DIR
            elif above != DIR:
                under = self._name("/".join(e.parts[:i]))
                raise _refuse(f"entry {self._name(e.name)} lies under {under}, which is a {above}, not a directory")
        before = self.tree.get(e.parts)
        if before is not None:
            if before == DIR and e.kind == DIR:
                return
            raise _refuse(f"entry {self._name(e.name)} appears twice in the archive, as a {before} and as a {e.kind}")
        self.tree[e.parts] = e.kind
        self._make_parents(e.parts)
        if e.kind == DIR:
            self._fs(os.mkdir, self.dest.joinpath(*e.parts), 0o755)
            self.made.add(e.parts)
        elif e.kind == SYMLINK:
            self.symlinks[e.parts] = e.target
            self.links.append(e)
        elif e.kind == HARDLINK:
            self.links.append(e)

    def _check_link_target(self, e: _Entry) -> None:
        t = e.target
        what = "symlink" if e.kind == SYMLINK else "hard link"
        if not t or "\x00" in t:
            raise _refuse(f"{what} {self._name(e.name)} has an empty or invalid target")
        if len(os.fsencode(t)) > MAX_LINK_TARGET_BYTES:
            raise _refuse(f"{what} {self._name(e.name)} has a target longer than {MAX_LINK_TARGET_BYTES} bytes")
        if t.startswith("/"):
            raise _refuse(
                f"{what} {self._name(e.name)} points to the absolute path {_show(t)};"
                " make it relative to a file inside the repository, or remove it"
            )
        if e.kind == SYMLINK:
            why = self._escapes(e.parts[:-1], t, ())
            if why:
                raise _refuse(f"symlink {self._name(e.name)} -> {_show(t)} {why}; make it point inside, or remove it")
            return
        if ".." in t.split("/"):
            raise _refuse(f"hard link {self._name(e.name)} -> {self._name(t)} points outside the repository")
        target = _parts(t)
        if self.tree.get(target) not in (FILE, HARDLINK):
            raise _refuse(
                f"hard link {self._name(e.name)} -> {self._name(t)} does not name an earlier file of the archive"
            )

    def _escapes(self, start: tuple[str, ...], target: str, root: tuple[str, ...]) -> str | None:
        """Why following `target` from the directory `start` would leave `root`, or None.

        Resolves through the archive's own symlinks (the tree on disk will be exactly the archive),
        and lexically through everything else: a path may never climb above `root`, even if it
        would come back, and a chain of more than MAX_LINK_HOPS links counts as a loop. The walk is
        bounded (MAX_LINK_STEPS), so thousands of links with long targets cost little."""
        cur = list(start)
        pending = list(reversed(target.split("/")))
        hops = steps = 0
        while pending:
            steps += 1
            if steps > MAX_LINK_STEPS:
                return f"goes through more than {MAX_LINK_STEPS} path components"
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if len(cur) <= len(root):
                    return "points outside the repository"
                cur.pop()
                continue
            cur.append(part)
            link = self.symlinks.get(tuple(cur))
            if link is None:
                continue
            hops += 1
            if hops > MAX_LINK_HOPS:
                return "is part of a symlink loop"
            if link.startswith("/"):
                return "points outside the repository (through an absolute symlink)"
            cur.pop()
            pending.extend(reversed(link.split("/")))
        return None

    def _name(self, name: str | None) -> str:
        """An entry as the student knows it: inside GitLab's `<project>-<ref>-<sha>/`, the path in
        the repository (`app/main.py`), else the name as archived."""
        shown = name or ""
        if self.top is not None:
            rest = shown
            while rest.startswith("./"):
                rest = rest[2:]
            if rest.startswith(self.top + "/") and len(rest) > len(self.top) + 1:
                shown = rest[len(self.top) + 1 :]
        return _show(shown)

    def _make_parents(self, parts: tuple[str, ...]) -> None:
        for i in range(1, len(parts)):
            if parts[:i] not in self.made:
                self._fs(os.mkdir, self.dest.joinpath(*parts[:i]), 0o755)
                self.made.add(parts[:i])

    @contextmanager
    def _reading(self, name: str) -> Iterator[None]:
        """Reading an entry's data: archive faults become the student's, naming the entry."""
        try:
            yield
        except _StreamError as err:
            raise _refuse(f"{err.reason} in entry {self._name(name)}") from None
        except (SubmissionError, GraderError):
            raise
        except tarfile.ReadError as err:
            raise _refuse(f"entry {self._name(name)} is truncated or corrupt ({_oneline(err)})") from None
        except _READ_ERRORS as err:
            raise _refuse(f"entry {self._name(name)} is corrupt ({_oneline(err)})") from None

    def _write_file(self, e: _Entry, opener: Callable[[], IO[bytes] | None]) -> None:
        path = self.dest.joinpath(*e.parts)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = self._fs(os.open, path, flags, 0o600)
        size = 0
        try:
            with self._reading(e.name):
                src: IO[bytes] | None = opener()
            if src is None:
                raise _refuse(f"entry {self._name(e.name)} has no data")
            while True:
                with self._reading(e.name), self._data():
                    chunk = src.read(CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_file_bytes:
                    self._file_too_big(e, size, more=True)
                if self.written + size > self.max_bytes:
                    self._total_too_big(e)
                view = memoryview(chunk)
                while view:
                    view = view[self._fs(os.write, fd, view) :]
            with self._reading(e.name):
                src.close()  # a zip entry checks its CRC on the last read; closing is harmless
            self._fs(os.fchmod, fd, e.mode)
        finally:
            os.close(fd)
        self.written += size

    @contextmanager
    def _data(self) -> Iterator[None]:
        """Tells the tar guard that what is read now is a member's data, not headers."""
        if self.guard is None:
            yield
            return
        self.guard.in_data = True
        try:
            yield
        finally:
            self.guard.in_data = False

    def _file_too_big(self, e: _Entry, size: int, more: bool = False) -> None:
        over = "over " if more else ""
        raise _refuse(
            f"file {self._name(e.name)} is {over}{_size(size)}, above the {_size(self.max_file_bytes)} limit"
            " for one file; remove it from the repository (large data and binaries do not belong there)"
        )

    def _total_too_big(self, e: _Entry) -> None:
        raise _refuse(
            f"the archive unpacks to more than {_size(self.max_bytes)} (passed at {self._name(e.name)});"
            " remove large or generated files from the repository"
        )

    def _fs(self, func: Callable[..., _T], *args: object) -> _T:
        """A filesystem call on our side: its failure (disk full, permissions) is ours."""
        try:
            return func(*args)
        except OSError as err:
            raise GraderError(f"cannot write the workspace {self.dest}: {err}") from err

    def finish(self) -> Path:
        if not self.tree:
            raise _refuse("the archive holds no files; push your work to the repository")
        tops = {parts[0] for parts in self.tree}
        root: tuple[str, ...] = ()
        if len(tops) == 1:
            (top,) = tops
            if self.tree[(top,)] == DIR:
                root = (top,)
        for e in self.links:
            path = self.dest.joinpath(*e.parts)
            if e.kind == SYMLINK:
                why = self._escapes(e.parts[:-1], e.target, root)
                if why:
                    raise _refuse(
                        f"symlink {self._name(e.name)} -> {_show(e.target)} {why}; make it point inside, or remove it"
                    )
                self._fs(os.symlink, e.target, path)
            else:
                target = _parts(e.target)
                if target[: len(root)] != root:
                    raise _refuse(
                        f"hard link {self._name(e.name)} -> {self._name(e.target)} points outside the repository"
                    )
                self._fs(lambda a, b: os.link(a, b, follow_symlinks=False), self.dest.joinpath(*target), path)
        return self.dest.joinpath(*root)


class _ReadStream(Protocol):
    """What the tar stream guard reads from: the archive itself or its decompressor."""

    def read(self, size: int, /) -> bytes: ...

    def seek(self, pos: int, /) -> int: ...

    def tell(self) -> int: ...

    def close(self) -> None: ...


class _TarGuard:
    """What tarfile reads through: turns decompression faults into the student's, refuses a single
    header read over MAX_HEADER_READ, and stops once `budget` bytes were decompressed (reads, and
    skips by seeking; a backward seek costs a rewind, i.e. everything up to the new position)."""

    def __init__(self, inner: _ReadStream, budget: int) -> None:
        self.inner = inner
        self.budget = budget
        self.work = 0
        self.in_data = False  # set while our copy loop reads a member's data; else tarfile reads headers

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0 or size > (CHUNK if self.in_data else MAX_HEADER_READ):
            raise _StreamError(f"a tar header larger than {_size(MAX_HEADER_READ)}")
        try:
            data = self.inner.read(size)
        except (GraderError, SubmissionError):
            raise
        except _DECOMPRESSION_ERRORS as err:
            raise _StreamError(f"corrupt compressed data ({_oneline(err)})") from None
        self._spend(len(data))
        if not self.in_data and _is_sparse_header(data):
            raise _StreamError("a sparse file (GNU sparse headers are not accepted)")
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != os.SEEK_SET:
            raise GraderError("tar stream guard: only absolute seeks are expected")
        here = self.inner.tell()
        self._spend(pos - here if pos >= here else pos)
        try:
            return self.inner.seek(pos)
        except (GraderError, SubmissionError):
            raise
        except _DECOMPRESSION_ERRORS as err:
            raise _StreamError(f"corrupt compressed data ({_oneline(err)})") from None

    def tell(self) -> int:
        return self.inner.tell()

    # tarfile types its fileobj as one protocol for every mode; reading never writes, and a fileobj
    # it was given is never closed by it (from_tar closes `inner` itself).
    def write(self, b: bytes, /) -> int:
        raise io.UnsupportedOperation("the tar stream guard is read-only")

    def close(self) -> None:
        pass

    def _spend(self, n: int) -> None:
        self.work += n
        if self.work > self.budget:
            raise _StreamError(f"more than {_size(self.budget)} of decompressed headers and data")


def _is_sparse_header(data: bytes) -> bool:
    """A GNU sparse member's header block, or pax records describing a sparse file."""
    if len(data) == tarfile.BLOCKSIZE and data[257:262] == b"ustar" and data[156:157] == tarfile.GNUTYPE_SPARSE:
        return True
    return _PAX_SPARSE.search(data) is not None


class _OurFile(io.RawIOBase):
    """An archive file on our disk: failing to read it is our fault, not the student's."""

    def __init__(self, f: io.BufferedReader, path: Path) -> None:
        self.f = f
        self.path = path

    def _ours(self, func: Callable[..., _T], *args: object) -> _T:
        try:
            return func(*args)
        except OSError as err:
            raise GraderError(f"cannot read the archive {self.path}: {err}") from err

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._ours(self.f.read, size)

    def readinto(self, b: bytearray | memoryview) -> int | None:  # type: ignore[override]
        return self._ours(self.f.readinto, b)

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._ours(self.f.seek, pos, whence)

    def tell(self) -> int:
        return self._ours(self.f.tell)

    def close(self) -> None:
        self.f.close()
        super().close()


@contextmanager
def _open_source(archive: bytes | Path) -> Iterator[BinaryIO]:
    if isinstance(archive, bytes | bytearray | memoryview):
        yield io.BytesIO(bytes(archive))
        return
    if not isinstance(archive, os.PathLike):
        raise TypeError(f"archive must be bytes or a Path, not {type(archive).__name__}")
    path = Path(archive)
    try:
        f = path.open("rb")
    except OSError as err:
        raise GraderError(f"cannot open the archive {path}: {err}") from err
    with _OurFile(f, path) as ours:
        yield ours  # type: ignore[misc]


# --- helpers ----------------------------------------------------------------------------------


def _parts(name: str, shown: str | None = None) -> tuple[str, ...]:
    """The normalised path of an archive name, refusing what could leave dest or break the OS;
    `shown` is the name as messages give it."""
    shown = shown or _show(name)
    if "\x00" in name:
        raise _refuse(f"entry {shown} has a NUL byte in its name")
    if name.startswith("/"):
        raise _refuse(f"entry {shown} has an absolute path; paths must be relative to the repository")
    raw = name.split("/")
    if ".." in raw:
        raise _refuse(f"entry {shown} has a '..' component; paths must stay inside the repository")
    parts = tuple(p for p in raw if p not in ("", "."))
    if not name:
        raise _refuse("an entry has an empty name")
    if len(parts) > MAX_DEPTH:
        raise _refuse(f"entry {shown} is nested more than {MAX_DEPTH} directories deep")
    if any(len(os.fsencode(p)) > MAX_NAME_BYTES for p in parts):
        raise _refuse(f"entry {shown} has a path component longer than {MAX_NAME_BYTES} bytes")
    if len(os.fsencode("/".join(parts))) > MAX_PATH_BYTES:
        raise _refuse(f"entry {shown} has a path longer than {MAX_PATH_BYTES} bytes")
    return parts


def _common_top(names: Iterable[str]) -> str | None:
    """The first path component all names share, if they all lie below one (for messages)."""
    tops = set()
    for name in names:
        while name.startswith("./"):
            name = name[2:]
        first, sep, _rest = name.partition("/")
        if not (first and sep):
            return None
        tops.add(first)
        if len(tops) > 1:
            return None
    return tops.pop() if tops else None


def _file_mode(mode: int) -> int:
    """tar's data filter rule: no setuid/setgid/sticky, no group/other write, owner can read and
    write, and executable bits only if the owner's is set."""
    mode = (mode & 0o755) | 0o600
    if not mode & 0o100:
        mode &= ~0o111
    return mode


def _refuse(message: str) -> SubmissionError:
    """The student's error, on one line (names are escaped by _show, exception texts by _oneline)."""
    return SubmissionError(f"repository archive: {message}".replace("\n", " ").replace("\r", " "))


def _show(name: str | None, limit: int = 200) -> str:
    """An archive name for a one-line message: quoted, control characters escaped, truncated."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in (name or ""))
    if len(text) > limit:
        text = text[:limit] + "..."
    return f"'{text}'"


def _oneline(value: object) -> str:
    return " ".join(str(value).split())


def _size(n: int) -> str:
    for unit, name in ((1024**3, "GiB"), (1024**2, "MiB"), (1024, "KiB")):
        if n >= unit:
            return f"{n // unit} {name}" if n % unit == 0 else f"{n / unit:.1f} {name}"
    return f"{n} bytes"


def _prepare(dest: Path) -> bool:
    """Checks that dest is absent (then creates it: True) or an empty directory (False)."""
    try:
        if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
            raise GraderError(f"extraction target {dest} exists and is not a directory")
        if dest.is_dir():
            if any(dest.iterdir()):
                raise GraderError(f"extraction target {dest} is not empty")
            return False
        dest.mkdir(parents=True, mode=0o755)
        return True
    except OSError as err:
        raise GraderError(f"cannot prepare the extraction target {dest}: {err}") from err


def _clear(dest: Path, created: bool) -> None:
    """Puts dest back as found: removed if we created it, else emptied."""
    if created:
        if dest.is_dir() and not dest.is_symlink():
            _remove_tree(dest)
        return
    for child in dest.iterdir():
        if child.is_dir() and not child.is_symlink():
            _remove_tree(child)
        else:
            child.unlink()


def _remove_tree(path: Path) -> None:
    """rmtree that also gets through directories someone made read-only (never follows links)."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError:
        os.chmod(path, 0o700)
        for top, dirs, _files in os.walk(path, followlinks=False):
            for d in dirs:
                p = os.path.join(top, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o700)  # before os.walk descends into it
        shutil.rmtree(path)
