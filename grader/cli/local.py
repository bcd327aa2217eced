"""The commands that grade on this machine's engine: check, gc, validate, doctor (grader/workbench.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from grader.cli.base import Format, Lang, app, interruptible, progress, renderer, root
from grader.errors import GraderError

EXIT_CODES = """Exit codes: 0 graded (whatever the score; see --fail-under), 1 the submission cannot be
graded as given (no Dockerfiles, unparsable, no source), 2 bad options or assignment file,
3 grader error (e.g. base image missing), 4 Docker engine or BuildKit CLI unavailable,
5 score below --fail-under, 130 interrupted by Ctrl-C or SIGTERM (everything started is removed)."""


@app.command(epilog=EXIT_CODES)
def check(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The student's repository: a directory or a git checkout.")],
    reference: Annotated[Path | None, typer.Option(
        help="The course's counter-backend source, built with the student's Dockerfiles when the "
             "repository holds no pyproject.toml next to them (earlier edition).")] = None,
    assignment: Annotated[Path | None, typer.Option(
        help="Assignment file (rubric, file names, probes). Default: checks/assignments/counter_backend.toml.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="Report format.")] = Format.text,
    lang: Annotated[Lang | None, typer.Option(help="Report language. Default: the assignment's (ru).")] = None,
    build_timeout: Annotated[float | None, typer.Option(
        help="Seconds before a build is stopped (default 600, or GRADER_BUILD_TIMEOUT_S).")] = None,
    docker_cli: Annotated[str | None, typer.Option(
        help="docker CLI used for BuildKit builds. "
             "Default: detect (docker with buildx, else /usr/bin/docker).")] = None,
    logs: Annotated[Path | None, typer.Option(help="Keep the full build logs in this directory.")] = None,
    keep_images: Annotated[bool, typer.Option(help="Keep the built images (tagged grader-<job>-<variant>).")] = False,
    fail_under: Annotated[float | None, typer.Option(help="Exit with 5 when the score is below this.")] = None,
    isolation: Annotated[bool | None, typer.Option(
        "--isolation/--no-isolation",
        help="Run containers on an internal network that cannot reach this host (needs root and iptables; "
             "default on, GRADER_ISOLATE_NETWORK). Off: port 8080 is published on 127.0.0.1, e.g. for a "
             "student's own machine.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines on stderr.")] = False,
    cache: Annotated[bool, typer.Option(
        "--cache/--no-cache", help="Reuse the verdict of an earlier grading of exactly these Dockerfiles and "
                                   "build contexts (GRADER_VERDICT_CACHE; never for a verdict an infrastructure "
                                   "problem touched).")] = True,
) -> None:
    """Grade a local repository: find, build, run and probe the three Dockerfile variants."""
    from grader.workbench import CheckOptions

    interruptible(ctx, "interrupted; containers and images of this run were removed")
    options = CheckOptions(reference=reference, assignment=assignment, lang=lang.value if lang else None,
                           build_timeout=build_timeout, docker_cli=docker_cli, logs=logs, keep_images=keep_images,
                           isolation=isolation, cache=cache)
    report, total = root().workbench.check(path, options, progress(quiet))
    sys.stdout.write(renderer(fmt)(report).rstrip("\n") + "\n")
    if fail_under is not None and total < fail_under:
        raise typer.Exit(5)


@app.command(epilog="Exit codes: 0 done, 3 grader error, 4 engine unavailable.")
def gc(
    older_than: Annotated[float | None, typer.Option(
        help="Seconds; leftovers younger than this are left alone (running jobs). Default GRADER_GC_AFTER_S, 3600.")]
    = None,
    cache_bytes: Annotated[int | None, typer.Option(
        help="Keep at most this much BuildKit cache, least recently used goes first. "
             "Default GRADER_BUILD_CACHE_BYTES, 10 GiB.")] = None,
) -> None:
    """Remove what crashed or killed runs left on the engine, and trim the build cache."""
    report = root().workbench.gc(older_than, cache_bytes)
    typer.echo(f"removed {report.containers} container(s), {report.images} image(s), {report.networks} network(s); "
               f"build cache: {report.cache_bytes_freed / 2**20:.0f} MiB freed")


@app.command()
def validate(
    file: Annotated[Path | None, typer.Argument(help="The assignment file. Default: GRADER_ASSIGNMENT_FILE, "
                                                     "else checks/assignments/counter_backend.toml.")] = None,
    solution: Annotated[Path | None, typer.Option(
        help="A repository holding the course's own solution. Default: the bundled reference "
             "(tests/fixtures/reference in a source checkout).")] = None,
    reference: Annotated[Path | None, typer.Option(help="Source to build Dockerfile-only solutions with.")] = None,
) -> None:
    """Check an assignment file and grade the course's own solution with it.

    Exit 0 only when the file is valid AND the solution gets full marks: run it after every rubric
    change, before students push."""
    bench = root().workbench
    rubric = bench.rubric(file)
    typer.echo(f"✓ {rubric.source}: valid ({len(rubric.variants)} variants, max {rubric.max_score:g} points)")
    repo, scored = bench.grade_solution(rubric, solution, reference)
    missing = [f"{v.name}: {c.id}" for v in scored.variants for c in v.checks if c.required and c.status != "pass"]
    if scored.score < scored.max_score:
        typer.echo(f"✗ the solution scores {scored.score:g}/{scored.max_score:g}; failing: {', '.join(missing)}",
                   err=True)
        raise typer.Exit(1)
    typer.echo(f"✓ the solution at {repo} scores {scored.score:g}/{scored.max_score:g}")


@app.command()
def doctor(
    docker_cli: Annotated[str | None, typer.Option(help="docker CLI to test.")] = None,
    service: Annotated[bool, typer.Option(
        "--service", help="Check the service instead: the GitLab token (scope, role on GRADER_GROUPS), the "
                          "database, the broker, the workers and the report URL. Exit 1 on any problem.")] = False,
) -> None:
    """Check that this machine can grade: engine, BuildKit CLI, base image (or, --service, the rest)."""
    if service:
        from grader.doctor import service_findings

        findings = service_findings(root().settings)
        for finding in findings:
            typer.echo(finding.line())
        if not all(f.ok for f in findings):
            raise typer.Exit(1)
        return
    health = root().workbench.doctor(docker_cli)
    typer.echo(f"engine: ok; BuildKit via {health.cli_path} ({health.cli_mode})")
    if not health.base_image_present:
        raise GraderError(f"base image {health.base_image} missing: run scripts/setup")
    typer.echo(f"base image {health.base_image}: present")
    typer.echo(f"containers and build steps run under cgroup {health.cgroup or '?'}: {health.ceiling}")
    for finding in health.walls:
        typer.echo(finding.line())
    if not all(f.ok for f in health.walls):
        raise typer.Exit(1)
