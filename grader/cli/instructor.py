"""The instructor's commands over the service's store and GitLab (grader/instructor.py): grade,
grade-group, scoreboard, extend, status, regrade."""

from __future__ import annotations

import getpass
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from grader.cli.base import Format, app, progress, renderer, root, stderr
from grader.errors import ConfigError


@app.command()
def grade(
    project: Annotated[str, typer.Argument(help="The GitLab project: id, namespace/path or URL.")],
    sha: Annotated[str | None, typer.Option(help="Commit to grade. Default: the head of the default branch.")] = None,
    post: Annotated[bool, typer.Option("--post/--no-post", help="Post the status and report to the commit.")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Report format.")] = Format.text,
) -> None:
    """Grade one GitLab project now, on this machine, and print the report.

    Without --post nothing is written anywhere: not the database, not GitLab (a queued webhook job
    for the same commit is left alone). With --post the grade is recorded and posted to the commit.
    """
    report = root().instructor.grade_now(project, sha, post=post, progress=progress())
    sys.stdout.write(renderer(fmt)(report).rstrip("\n") + "\n" if report.get("variants")
                     else f"{report.get('error')}\n")


@app.command(name="grade-group")
def grade_group(
    group: Annotated[str, typer.Argument(help="The GitLab group (id or full path); subgroups included.")],
) -> None:
    """Queue every project of a group for grading at the head of its default branch."""
    from rich.progress import track

    queueing = root().instructor.queue_group(group)
    for project in track(queueing, description=f"queueing {len(queueing)} project(s)", console=stderr()):
        if project.skipped is not None:
            typer.echo(f"  skipped {project.path}: {project.skipped}", err=True)
    typer.echo(f"queued {queueing.queued}, already graded or queued {queueing.known}, skipped {queueing.skipped}")


@app.command()
def scoreboard(
    fmt: Annotated[str, typer.Option("--format", help="json (versioned schema) or csv.")] = "json",
) -> None:
    """Print the scoreboard: one row per student with best, latest and on-time scores."""
    from grader.scoreboard import to_csv

    if fmt not in ("json", "csv"):
        raise ConfigError(f"--format {fmt}: use json or csv")
    board = root().instructor.scoreboard()
    sys.stdout.write(to_csv(board) if fmt == "csv" else json.dumps(board, ensure_ascii=False, indent=2) + "\n")


@app.command()
def extend(
    who: Annotated[str, typer.Argument(help="The student as the scoreboard names them, or a project path "
                                            "(devops-2026/ivanov-docker).")],
    until: Annotated[str | None, typer.Option(help="The student's deadline, ISO 8601 with an offset: "
                                                   "2026-12-08T23:59:00+03:00.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (shown to instructors; kept in the history of each "
                                                    "of the student's submissions with your name).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Take the extension back.")] = False,
) -> None:
    """Give one student (or project) a later deadline; the scoreboard's final score follows it.

    Kept in the database, it wins over GRADER_EXTENSIONS_FILE for that student or project; a
    project's extension wins over its student's. Pushes already graded are judged again by it
    on the scoreboard at once (by their push time); nothing is rebuilt. With WHO alone it
    prints the extension in force."""
    instructor = root().instructor
    if remove:
        instructor.remove_extension(who, actor=_actor())
        typer.echo(f"{who}: extension removed; the course's deadline applies")
    elif until is None:
        granted = instructor.extension(who)
        typer.echo(f"{who}: until {granted[0].isoformat()}" + (f" ({granted[1]})" if granted[1] else "")
                   if granted else f"{who}: no extension granted with `grader extend`")
    else:
        deadline = instructor.extend(who, until, reason, actor=_actor())
        typer.echo(f"{who}: deadline {deadline.isoformat()}" + (f" ({reason})" if reason else ""))


@app.command()
def status() -> None:
    """What to look at on a deadline night: workers, queue, failures, undelivered posts.

    Workers answering (and whether their engine does), queue length and the longest wait,
    submissions by state, the latest ungradable ones and the posts not delivered yet.
    Exit code 1 when the broker does not answer or no worker does (nothing is being graded)."""
    now = root().instructor.status()
    if now.workers is not None:
        typer.echo(now.workers)
    typer.echo(f"broker queue: {now.queued}")
    if now.oldest is not None:
        typer.echo(f"longest wait: {_minutes(datetime.now(UTC) - now.oldest)} "
                   f"(queued since {now.oldest:%Y-%m-%d %H:%M} UTC)")
    typer.echo("submissions: " + ", ".join(f"{k} {v}" for k, v in sorted(now.counts.items())))
    for sub in now.failures:
        typer.echo(f"  ungradable #{sub.id} {sub.project_path}@{sub.sha[:8]}: {sub.error}")
    for post in now.abandoned:
        typer.echo(f"  not delivered ({post.kind} of submission #{post.submission_id}): {post.last_error}")
    if not now.healthy:  # for monitoring and scripts: nothing is being graded right now
        raise typer.Exit(1)


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


@app.command()
def regrade(
    project: Annotated[str | None, typer.Option(help="Only this project (path with namespace).")] = None,
    group: Annotated[str | None, typer.Option(help="Only projects under this group path.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every project.")] = False,
    stuck: Annotated[bool, typer.Option(
        "--stuck", help="Queue again what the database says is queued, or running longer than a job can "
                        "take (after Redis lost its data, or a restore). Harmless if they are still queued.")] = False,
    all_pushes: Annotated[bool, typer.Option(
        "--all-pushes", help="Every graded push, not only each project's latest (history, e.g. for on-time scores).")
    ] = False,
    reason: Annotated[str | None, typer.Option(
        help="Why you regrade: recorded in each submission's history with your name.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Grade the selection here and print `student old -> new`; write and post nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before regrading more than one group.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="text or json (with --dry-run).")] = "text",
) -> None:
    """Grade again (e.g. after a rubric change): by default the latest push of each selected project.

    The previous grade stays on the scoreboard until the new one exists, and stays for good if the
    regrade fails; a new comment is posted only when the verdict changed (else the status is updated).
    """
    if not (project or group or all_ or stuck):
        raise ConfigError("say what to regrade: --project PATH, --group PATH, --all or --stuck")
    instructor = root().instructor
    ids = instructor.select(project=project, group=group, all_pushes=all_pushes, stuck=stuck)
    if dry_run:
        _preview(ids, fmt)
        return
    groups = instructor.groups_of(ids)
    if len(groups) > 1 and not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"this regrades {len(ids)} submission(s) in {len(groups)} groups: pass --yes "
                              "(or try --dry-run first)")
        typer.confirm(f"Regrade {len(ids)} submission(s) in {len(groups)} groups?", abort=True)
    sent = instructor.regrade(ids, stuck=stuck, reason=reason, actor=_actor())
    typer.echo(f"{'sent again' if stuck else 'requeued'} {sent} submission(s)")


def _preview(ids: list[int], fmt: str) -> None:
    """`student old -> new` per submission (or JSON rows), graded here; nothing written."""
    rows = []
    for row in root().instructor.preview(ids):
        if row.error is not None:
            typer.echo(f"  {row.student}: cannot grade now ({row.error})", err=True)
        rows.append(row.row())
        if fmt != "json":
            typer.echo(f"{row.student} {_score(row.old_score)} -> {_score(row.new_score)}")
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _actor() -> str:
    """Who regrades, for the submissions' history: GRADER_ACTOR (e.g. set by a wrapper), else the login."""
    try:
        return os.environ.get("GRADER_ACTOR") or getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid (a container)
        return f"uid {os.getuid()}"
