"""GitLab's repository archive (`git archive --format=tar.gz`: directories, files and symlinks under
`<project>-<sha>-<sha>/`) unpacked into a job's workspace by tarfile's `data` filter (PEP 706), its
headers listed and checked first. What is refused, and why: README.md, threat model."""

from __future__ import annotations

import gzip
import tarfile
import tempfile
import zlib
from pathlib import Path

from grader.errors import GraderError, SubmissionError
from grader.messages import refusal

if not hasattr(tarfile, "data_filter"):  # before 3.11.4 (Debian 12's 3.11.2): PEP 706's backport
    from backports import tarfile  # type: ignore[no-redef, import-untyped]

MAX_RATIO = 100  # unpacked bytes per archive byte: source code makes ~10, a file of zeros ~1000
RATIO_FLOOR = 16 * 1024**2  # an archive unpacking to less is no bomb, whatever its ratio
MAX_READ = 1024**2  # one header (pax records, a long name) may take this much; data is read in 16 KiB
HEADER_ALLOWANCE = 8 * 1024  # per entry (header blocks, pax records, padding), beyond the data it skips
_FILTERED = {tarfile.AbsolutePathError: "archive_path", tarfile.OutsideDestinationError: "archive_path",
             tarfile.SpecialFileError: "archive_special", tarfile.AbsoluteLinkError: "archive_link",
             tarfile.LinkOutsideDestinationError: "archive_link"}


def extract_archive(archive: bytes | Path, dest: Path, *, max_bytes: int, max_files: int, max_file_bytes: int) -> Path:
    """Extracts a tar.gz repository archive into `dest`, which must be empty or absent, and returns
    the repository root: the single top-level directory if there is exactly one, else `dest`. A
    hostile, oversized or corrupt archive raises SubmissionError with one line naming the entry,
    and leaves `dest` as it was (absent or empty): extraction goes to a staging directory first."""
    dest = Path(dest)
    if dest.is_symlink() or (dest.exists() and (not dest.is_dir() or any(dest.iterdir()))):
        raise GraderError(f"extraction target {dest} is not empty, or not a directory")
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".unpack-", dir=dest.parent) as staging:
            tree, path = Path(staging, "tree"), archive if isinstance(archive, Path) else Path(staging, "archive")
            if not isinstance(archive, Path):
                path.write_bytes(archive)  # the archive is read from a file, never held whole
            tree.mkdir()
            unpack = _Unpack(tree, max_bytes, max_files, max_file_bytes)
            with _Bounded(path) as stream, tarfile.TarFile(fileobj=stream, errorlevel=2) as tf:
                unpack.listing(tf, stream, path.stat().st_size)
                root = unpack.structure()
                stream.budget = stream.tell()  # extraction reads the same bytes again
                tf.extractall(tree, members=list(unpack.kinds.values()), filter=unpack.filter)
            tree.rename(dest)  # onto an empty directory too
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise _refusal("archive_corrupt", detail=" ".join(str(err).split())[:200]) from None
    except OSError as err:
        raise GraderError(f"cannot unpack the repository archive into {dest}: {err}") from err
    return dest.joinpath(*root)


class _Unpack:
    def __init__(self, tree: Path, max_bytes: int, max_files: int, max_file_bytes: int) -> None:
        self.tree, self.max_bytes, self.max_files, self.max_file_bytes = tree, max_bytes, max_files, max_file_bytes
        self.top = ""  # the first entry's first component (GitLab's top directory): names are shown below it
        self.kinds: dict[tuple[str, ...], tarfile.TarInfo] = {}  # the members, in order, by normalised path

    def listing(self, tf: tarfile.TarFile, stream: _Bounded, packed: int) -> None:
        """Checks each member as its header comes (caps, filter, a path twice), before its data is skipped."""
        total = 0
        for m in tf:
            self.top = self.top or m.name.split("/")[0]
            self.filter(m, str(self.tree))
            total, entry = total + m.size, self.show(m)
            if len(self.kinds) == self.max_files:
                raise _refusal("too_many_files", **entry, limit=self.max_files)
            if m.size > self.max_file_bytes:
                raise _refusal("archive_file_too_big", **entry, size=m.size / 2**20, limit=self.max_file_bytes / 2**20)
            if total > self.max_bytes:
                raise _refusal("archive_too_big", **entry, limit=self.max_bytes / 2**20)
            if total > max(MAX_RATIO * packed, RATIO_FLOOR):
                raise _refusal("archive_bomb", **entry, ratio=MAX_RATIO, size=packed / 2**20)
            if self.kinds.setdefault(tuple(p for p in m.name.split("/") if p not in ("", ".")), m) is not m:
                raise _refusal("archive_duplicate", **entry)
            stream.budget = min(tf.offset, total + HEADER_ALLOWANCE * len(self.kinds)) + HEADER_ALLOWANCE + MAX_READ
        if not self.kinds:
            raise _refusal("archive_empty")

    def structure(self) -> tuple[str, ...]:
        """Refuses an entry under a file or a link, and a symlink whose target, followed lexically, leaves the
        root or meets another link (a loop; where the filter's realpath is fooled: CVE-2025-4517, -4330)."""
        tops = {parts[:1] for parts in self.kinds if parts}
        root = tops.pop() if len(tops) == 1 and all(t.isdir() for t in map(self.kinds.get, tops) if t) else ()
        for parts, m in self.kinds.items():
            for above in (self.kinds.get(parts[:i]) for i in range(1, len(parts))):
                if above is not None and not above.isdir():
                    raise _refusal("archive_nested", **self.show(m), parent=self.show(above)["entry"])
            at, steps = list(parts[:-1]), [s for s in m.linkname.split("/") if s not in ("", ".")]
            for step in steps if m.issym() else ():
                if step == ".." and len(at) <= len(root):
                    raise _refusal("archive_link", **self.show(m))
                at = at[:-1] if step == ".." else [*at, step]
                if (hop := self.kinds.get(tuple(at))) is not None and hop.issym():
                    raise _refusal("archive_link_chain", **self.show(m))
        return root

    def filter(self, m: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        """tar's data filter, also refusing absolute names (it strips their '/'), '..', hard links, sparse files."""
        try:
            parts = [p for p in m.name.split("/") if p not in ("", ".")]
            if m.name.startswith("/"):
                raise tarfile.AbsolutePathError(m)
            if ".." in parts or not (parts or m.isdir()):  # a non-directory named "" or "." would replace dest
                raise tarfile.OutsideDestinationError(m, m.name)
            if m.islnk() or m.sparse is not None:  # neither comes from git; a sparse map is built in memory
                raise tarfile.SpecialFileError(m)
            return tarfile.data_filter(m, dest)
        except tarfile.FilterError as err:
            reason = _FILTERED.get(type(err), "archive_refused")
            raise _refusal(reason, **self.show(m), error=type(err).__name__) from None

    def show(self, m: tarfile.TarInfo) -> dict[str, str]:  # below GitLab's top directory: `app/main.py`
        return {"entry": _show((m.name.removeprefix(f"{self.top}/") if self.top else m.name) or m.name),
                "target": _show(m.linkname)}


class _Bounded(gzip.GzipFile):
    """The archive as tarfile reads it, decompressed: a read or a seek past `budget` is refused."""

    budget = HEADER_ALLOWANCE + MAX_READ

    def read(self, size: int | None = -1) -> bytes:
        self._within(self.tell() + size if size is not None and size >= 0 else -1)
        return super().read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        self._within(offset)  # tarfile seeks to absolute positions only
        return super().seek(offset, whence)

    def _within(self, end: int) -> None:
        if not 0 <= end <= self.budget:
            raise _refusal("archive_corrupt", detail=f"its tar headers unpack past {self.budget} bytes")


def _refusal(reason: str, **params: object) -> SubmissionError:
    """The student's error (checks/messages/refusal.toml); its message, for logs, is the English text."""
    return SubmissionError(refusal(SubmissionError(reason, reason, **params), "en"), reason, **params)


def _show(name: str) -> str:
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return text if len(text) <= 120 else f"{text[:60]}…{text[-60:]}"
