"""A job's workspace: a private directory, removed whatever happens (tempfile.TemporaryDirectory)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from types import TracebackType

from grader.errors import GraderError


class Workspace:
    """A private (0700) directory for one job under `base_dir`, removed on exit whatever happened,
    KeyboardInterrupt included, by tempfile.TemporaryDirectory: its rmtree never follows links and
    gets through directories made read-only (but before Python 3.11.8, making one writable again
    follows a link in it, CVE-2023-6597; nothing a job puts in its workspace is read-only):

        with Workspace(settings.work_dir, job_id) as ws:
            repo = extract_archive(archive, ws.path / "repo", ...)
    """

    def __init__(self, base_dir: Path, job_id: str) -> None:
        self.base_dir, self.job_id = Path(base_dir), job_id
        self.path: Path  # set on entering; still names the (removed) directory after exit
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> Workspace:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.job_id)[:64] or "job"
        try:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            self._dir = tempfile.TemporaryDirectory(prefix=f"job-{safe}-", dir=self.base_dir)
        except OSError as err:
            raise GraderError(f"cannot create a workspace under {self.base_dir} (GRADER_WORK_DIR): {err}") from err
        self.path = Path(self._dir.name)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        live, self._dir = self._dir, None
        try:
            if live is not None:
                live.cleanup()
        except OSError as err:
            if exc is None:
                raise GraderError(f"cannot remove the workspace {self.path}: {err}") from err
            exc.add_note(f"and the workspace {self.path} could not be removed: {err}")
