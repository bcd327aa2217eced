"""`grader similarity` (issue 17): who copied whom, from directories (grader/workbench.py) or the
store (grader/instructor.py)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from grader.cli.base import app, root
from grader.errors import ConfigError


class SimilarityFormat(StrEnum):
    text = "text"
    json = "json"
    csv = "csv"


@app.command(epilog="Exit codes: 0 compared (whatever the scores), 1 no Dockerfile could be read in any "
                    "directory (or none is stored), 2 bad options or assignment file, 3 the store is unavailable.")
def similarity(
    dirs: Annotated[list[Path] | None, typer.Argument(
        help="Students' repositories: local directories or git checkouts. None: compare from the store.")] = None,
    group: Annotated[list[str] | None, typer.Option(
        help="Compare from the store: each project's latest graded submission under this group path "
             "(subgroups too); repeatable. Without DIRs or --group: the groups of GRADER_GROUPS, or every "
             "project when it lists none.")] = None,
    fmt: Annotated[SimilarityFormat, typer.Option("--format", help="Report format.")] = SimilarityFormat.text,
    top: Annotated[int | None, typer.Option(
        help="Show this many pairs. Default: 20 in text, every listed pair in json and csv.")] = None,
    base: Annotated[list[Path] | None, typer.Option(
        help="Another course file never counted as evidence (a Dockerfile, or a directory of them); "
             "repeatable. The assignment file's base files always are.")] = None,
    assignment: Annotated[Path | None, typer.Option(
        help="Assignment file whose similarity table says what to discount and when to flag. "
             "Default: checks/assignments/counter_backend.toml.")] = None,
) -> None:
    """Who copied whom: students' Dockerfiles compared pairwise, the course's skeleton discounted.

    Prints the top pairs with scores, the matching lines side by side and who pushed first. A high
    score is a reason to look, not a verdict."""
    from grader.similarity.render import to_csv, to_json, to_text

    if dirs and group:
        raise ConfigError("give DIRs or --group, not both")
    parts = root()
    found = (parts.workbench.compare_dirs(dirs, assignment, base or ()) if dirs
             else parts.instructor.compare_stored(group or (), assignment, base or ()))
    if fmt == SimilarityFormat.text:
        sys.stdout.write(to_text(found.pairs, found.threshold, 20 if top is None else top, found.problems))
    else:
        shown = found.pairs if top is None else found.pairs[:top]
        sys.stdout.write(to_json(shown, found.threshold, found.problems) if fmt == SimilarityFormat.json
                         else to_csv(shown))
