"""The `grader` command: declarations over the application services the composition root builds
(grader/app.py), one error handler for all of them (grader/cli/base.py).

    local.py       check, gc, validate, doctor   (this machine's engine: grader/workbench.py)
    serving.py     serve, worker                 (the service's processes)
    instructor.py  grade, grade-group, scoreboard, extend, status, regrade (grader/instructor.py)
    similarity.py  similarity

The modules are imported in the order their commands are listed in `grader --help`.
"""

from __future__ import annotations

# isort: off
# Importing a module registers its commands; `grader --help` lists them in this order.
from grader.cli import local, serving, instructor, similarity  # noqa: F401
# isort: on
from grader.cli.base import app, fail
from grader.config import get_settings


@app.callback()
def _load_settings() -> None:
    """Bad GRADER_* settings are one clear line before any command runs."""
    get_settings()


__all__ = ["app", "fail"]
