"""Build logs kept per submission, so an instructor answering a grade dispute can read what the
engine printed: `GRADER_WORK_DIR/logs/<workspace>/<variant>.build.log` (a workspace is
`sub-<id>`), each capped like every build log (head and tail), replaced by the next grading of
the same submission, and removed GRADER_BUILD_LOGS_KEEP_DAYS after it was written (0: none kept).
The reconciler prunes them with the engine's garbage (grader/reconciler.py)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

LOGS = "logs"


def directory(work_dir: Path, workspace: str, keep_days: float) -> Path | None:
    """A fresh, private directory for this grading's logs; None when none are kept."""
    if keep_days <= 0:
        return None
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", workspace)[:64] or "job"
    path = Path(work_dir) / LOGS / safe
    shutil.rmtree(path, ignore_errors=True)  # a regrade's logs replace the last grading's
    path.mkdir(parents=True, mode=0o700)
    return path


def prune(work_dir: Path, keep_days: float, now: float | None = None) -> int:
    """Removes the submissions' log directories last written more than `keep_days` ago; how many."""
    root = Path(work_dir) / LOGS
    if not root.is_dir():
        return 0
    cutoff = (now if now is not None else time.time()) - max(keep_days, 0) * 86400
    removed = 0
    for entry in root.iterdir():
        try:
            if entry.is_dir() and not entry.is_symlink() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        except OSError:  # gone meanwhile (another worker's prune)
            continue
    return removed
