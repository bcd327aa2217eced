"""The `grader` command."""

from __future__ import annotations

import json
import os
import signal
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from grader import assignment as assignment_mod
from grader import report as report_mod
from grader.config import get_settings
from grader.errors import ConfigError, GraderError, SubmissionError

if TYPE_CHECKING:
    from datetime import timedelta

    from fastapi import FastAPI

    from grader.config import Settings
    from grader.store import Store

EXIT_CODES = """Exit codes: 0 graded (whatever the score; see --fail-under), 1 the submission cannot be
graded as given (no Dockerfiles, unparsable, no source), 2 bad options or assignment file,
3 grader error (e.g. base image missing), 4 Docker engine or BuildKit CLI unavailable,
5 score below --fail-under, 130 interrupted by Ctrl-C or SIGTERM (everything started is removed)."""

app = typer.Typer(
    help="Autograder for the course's Docker homework (counter-backend in three Dockerfile variants).",
    no_args_is_help=True,
    add_completion=False,
)


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


class Lang(StrEnum):
    ru = "ru"
    en = "en"


def _fail(exc: Exception | str, code: int) -> None:
    typer.echo(f"grader: {exc}", err=True)
    raise typer.Exit(code)


@app.callback()
def _load_settings() -> None:
    """Bad GRADER_* settings are one clear line before any command runs."""
    try:
        get_settings()
    except ConfigError as exc:
        _fail(exc, exc.exit_code)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@app.command(epilog=EXIT_CODES)
def check(
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
    from grader.engine import Engine
    from grader.messages import refusal
    from grader.pipeline import grade_report
    from grader.verdict_cache import VerdictCache

    settings = get_settings().model_copy()
    if build_timeout is not None:
        settings.build_timeout_s = build_timeout
    if docker_cli is not None:
        settings.docker_cli = docker_cli
    settings.keep_images = keep_images or settings.keep_images
    if isolation is not None:
        settings.isolate_network = isolation
    progress = (lambda _m: None) if quiet else (lambda m: typer.echo(f"· {m}", err=True))
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` cleans up like Ctrl-C does
    try:
        rubric = assignment_mod.load(assignment or settings.assignment_file)
        if reference is not None and not reference.is_dir():
            raise ConfigError(f"--reference {reference}: not a directory")
        engine = Engine(settings)
        verdicts = VerdictCache(settings.work_dir / "verdicts") if cache and settings.verdict_cache else None
        report, total = grade_report(path, rubric, settings, engine, lang.value if lang else rubric.language,
                                     reference=reference and reference.resolve(), log_dir=logs, progress=progress,
                                     cache=verdicts, source=str(path))
        engine.trim_cache(settings.build_cache_bytes)  # a laptop has no worker doing it periodically
    except SubmissionError as exc:
        _fail(refusal(exc, lang.value if lang else rubric.language), SubmissionError.exit_code)
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("grader: interrupted; containers and images of this run were removed", err=True)
        raise typer.Exit(130) from None
    render = {Format.text: report_mod.render_text, Format.json: report_mod.render_json,
              Format.markdown: report_mod.render_markdown}[fmt]
    sys.stdout.write(render(report).rstrip("\n") + "\n")
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
    from grader.engine import Engine

    settings = get_settings()
    try:
        report = Engine(settings).gc(settings.gc_after_s if older_than is None else older_than,
                                     settings.build_cache_bytes if cache_bytes is None else cache_bytes)
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    typer.echo(f"removed {report.containers} container(s), {report.images} image(s), {report.networks} network(s); "
               f"build cache: {report.cache_bytes_freed / 2**20:.0f} MiB freed")


BUNDLED_SOLUTION = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reference"


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
    from grader.engine import Engine
    from grader.pipeline import grade

    settings = get_settings()
    try:
        rubric = assignment_mod.load(file or settings.assignment_file)
        typer.echo(f"✓ {rubric.source}: valid ({len(rubric.variants)} variants, max {rubric.max_score:g} points)")
        repo = solution or BUNDLED_SOLUTION
        if not repo.is_dir():
            raise ConfigError(f"no solution to grade at {repo}: pass --solution DIR (the course's own solution)")
        facts, scored = grade(repo, rubric, settings, Engine(settings), reference=reference and reference.resolve())
    except (GraderError, SubmissionError) as exc:
        _fail(exc, getattr(exc, "exit_code", 1))
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
    from grader.engine import Engine

    settings = get_settings().model_copy()
    if service:
        from grader.doctor import service_findings

        findings = service_findings(settings)
        for finding in findings:
            typer.echo(finding.line())
        if not all(f.ok for f in findings):
            raise typer.Exit(1)
        return
    settings.docker_cli = docker_cli or settings.docker_cli
    try:
        rubric = assignment_mod.load(settings.assignment_file)  # the rubric this worker grades by
        engine = Engine(settings)
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    typer.echo(f"engine: ok; BuildKit via {engine.cli.path} ({engine.cli.mode})")
    if not engine.has_image(rubric.base_image):
        _fail(GraderError(f"base image {rubric.base_image} missing: run scripts/setup"), 3)
    typer.echo(f"base image {rubric.base_image}: present")
    parent = engine.cgroup_parent(rubric.base_image)
    typer.echo(f"containers and build steps run under cgroup {parent or '?'}: {_ceiling(parent)}")
    from grader.doctor import build_wall_findings

    walls = build_wall_findings(settings, settings.iptables)
    for finding in walls:
        typer.echo(finding.line())
    if not all(f.ok for f in walls):
        raise typer.Exit(1)


# -- the service -----------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one core each; on SQLite they take "
                                                     "turns writing).")] = 1,
) -> None:
    """Serve the GitLab webhook (POST /webhooks/gitlab) and the report pages.

    Point a GitLab project, group or system webhook at http://HOST:PORT/webhooks/gitlab with the
    secret token GRADER_WEBHOOK_SECRET and the "Push events" trigger.
    """
    import uvicorn

    from grader.doctor import serving_problems

    settings = get_settings()
    try:
        settings.require("webhook_secret", "gitlab_url", "gitlab_token")
        problems, warnings = serving_problems(settings, host)
        if problems:
            raise ConfigError("\n".join(f"grader: {p}" for p in problems).removeprefix("grader: "))
        for warning in warnings:
            typer.echo(f"grader: warning: {warning}", err=True)
        application = serve_app() if workers == 1 else None
        if application is None:
            _startup_checks(settings).close()  # a one-line error here, not one per worker process
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    # With several, each worker process builds its own app (its own database pool, push writer and
    # broker client) from the factory, and uvicorn restarts one that dies.
    uvicorn.run(application or "grader.cli:serve_app", factory=application is None, workers=workers, host=host,
                port=port, log_level="info", server_header=False)  # no banner


def serve_app() -> FastAPI:
    """The webhook and pages app, as each `grader serve` worker process makes it (from GRADER_* settings)."""
    from grader.tasks import broker_ready, enqueue_push, notify
    from grader.web import create_app

    settings = get_settings()
    # notify: a push to a branch that is not graded gets a `skipped` status saying so, so the
    # student is never left waiting in silence
    return create_app(settings, _startup_checks(settings), enqueue_push, ready=broker_ready, notify=notify)


def _startup_checks(settings: Settings) -> Store:
    """What would otherwise fail every job later: the assignment file, and a database this
    grader can use (reachable, not of a newer schema); the open store. ConfigError says what to fix."""
    from grader.assignment import load
    from grader.store import Store

    load(settings.assignment_file)
    return Store(settings.database_url)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Gradings at once on this machine (each builds and runs).")] = 1,
    beat: Annotated[bool, typer.Option(
        "--beat/--no-beat", help="Also run the periodic reconciler (re-sends what the broker lost, delivers due "
                                 "posts every GRADER_RECONCILE_S). Safe on several workers at once.")] = True,
) -> None:
    """Start a Celery worker that grades submissions (extra arguments go to celery worker)."""
    settings = get_settings()
    try:
        settings.require("gitlab_url", "gitlab_token")
        _startup_checks(settings).close()  # each worker process opens its own
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    schedule = settings.work_dir / f"beat-{settings.instance}"  # beat's own bookkeeping, per instance
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    extra = ["--beat", f"--schedule={schedule}"] if beat else []
    # A fresh interpreter, not this one: BuildKit's parser (the `dockerfile` package, Go inside) is
    # loaded here by now, and a Go runtime inherited through fork() hangs the pool's children in
    # their first big parse (tests/unit/test_worker_start.py shows it). Celery's main process then
    # never loads it; each pool process loads its own.
    argv = [sys.executable, "-m", "celery", "-A", "grader.tasks", "worker", "--loglevel=INFO",
            f"--concurrency={concurrency}", *extra, *ctx.args]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


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
    from grader.tasks import service

    try:
        svc = service()
        ref = svc.gitlab.project(project)
        branch = ref.default_branch or "main"
        commit = svc.gitlab.commit_sha(ref.id, sha or branch)
        if post:
            sub_id, created = svc.record(ref, commit, branch)
            if not created:
                svc.store.requeue([sub_id])
            typer.echo(f"· grading {ref.path_with_namespace} at {commit[:12]} (submission {sub_id})", err=True)
            svc.grade(sub_id, post=True)
            for _ in range(10):  # one post per submission and kind goes out per pass, in order
                if not svc.deliver_due():
                    break
            stored = svc.store.get(sub_id)
            report = stored.report if stored is not None else None
        else:
            typer.echo(f"· grading {ref.path_with_namespace} at {commit[:12]} (dry run: nothing recorded or posted)",
                       err=True)
            report = svc.grade_commit(ref.id, commit, f"grade-{ref.id}-{commit[:12]}")
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    except SubmissionError as exc:
        _fail(exc, exc.exit_code)
    if report is None:
        _fail(GraderError("the submission was not graded (taken over by a worker, or superseded)"), 3)
        return
    render = {Format.text: report_mod.render_text, Format.json: report_mod.render_json,
              Format.markdown: report_mod.render_markdown}[fmt]
    sys.stdout.write(render(report).rstrip("\n") + "\n" if report.get("variants") else f"{report.get('error')}\n")


@app.command(name="grade-group")
def grade_group(
    group: Annotated[str, typer.Argument(help="The GitLab group (id or full path); subgroups included.")],
) -> None:
    """Queue every project of a group for grading at the head of its default branch."""
    from rich.progress import track

    from grader.tasks import enqueue, service

    try:
        svc = service()
        projects = svc.gitlab.group_projects(group)
        queued = skipped = 0
        for ref in track(projects, description=f"queueing {len(projects)} project(s)", console=_stderr()):
            try:
                commit = svc.gitlab.commit_sha(ref.id, ref.default_branch or "main")
            except (GraderError, SubmissionError) as exc:  # an empty project has no commit: say so, go on
                typer.echo(f"  skipped {ref.path_with_namespace}: {exc}", err=True)
                skipped += 1
                continue
            sub_id, created = svc.record(ref, commit, ref.default_branch or "main")
            if created:
                enqueue(sub_id)
                queued += 1
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    typer.echo(f"queued {queued}, already graded or queued {len(projects) - queued - skipped}, skipped {skipped}")


def _stderr():
    from rich.console import Console

    return Console(stderr=True)


@app.command()
def scoreboard(
    fmt: Annotated[str, typer.Option("--format", help="json (versioned schema) or csv.")] = "json",
) -> None:
    """Print the scoreboard: one row per student with best, latest and on-time scores."""
    from grader.history import board as build
    from grader.scoreboard import to_csv
    from grader.store import Store

    settings = get_settings()
    if fmt not in ("json", "csv"):
        _fail(ConfigError(f"--format {fmt}: use json or csv"), 2)
    try:
        board = build(settings, Store(settings.database_url))
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    sys.stdout.write(to_csv(board) if fmt == "csv" else json.dumps(board, ensure_ascii=False, indent=2) + "\n")


@app.command()
def extend(
    who: Annotated[str, typer.Argument(help="The student as the scoreboard names them, or a project path "
                                            "(devops-2026/ivanov-docker).")],
    until: Annotated[str | None, typer.Option(help="The student's deadline, ISO 8601 with an offset: "
                                                   "2026-12-08T23:59:00+03:00.")] = None,
    reason: Annotated[str | None, typer.Option(help="Why (shown to instructors).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Take the extension back.")] = False,
) -> None:
    """Give one student (or project) a later deadline; the scoreboard's final score follows it.

    Kept in the database, it wins over GRADER_EXTENSIONS_FILE for that student or project; a
    project's extension wins over its student's. Pushes already graded are judged again by it
    on the scoreboard at once (by their push time); nothing is rebuilt. With WHO alone it
    prints the extension in force."""
    from grader.deadlines import check_later, parse_until
    from grader.store import Store

    settings = get_settings()
    try:
        store = Store(settings.database_url)
        if remove:
            if not store.remove_extension(who):
                _fail(ConfigError(f"{who} has no extension granted with `grader extend`"), 2)
            typer.echo(f"{who}: extension removed; the course's deadline applies")
            return
        if until is None:
            granted = store.extensions().get(who.strip().strip("/").lower() if "/" in who else who.strip())
            typer.echo(f"{who}: until {granted[0].isoformat()}" + (f" ({granted[1]})" if granted[1] else "")
                       if granted else f"{who}: no extension granted with `grader extend`")
            return
        deadline = parse_until(until, "--until")
        check_later(deadline, settings.deadline, "--until")
        store.set_extension(who, deadline, reason)
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    typer.echo(f"{who}: deadline {deadline.isoformat()}" + (f" ({reason})" if reason else ""))


@app.command()
def status() -> None:
    """What to look at on a deadline night: workers, queue, failures, undelivered posts.

    Workers answering (and whether their engine does), queue length and the longest wait,
    submissions by state, the latest ungradable ones and the posts not delivered yet.
    Exit code 1 when the broker does not answer or no worker does (nothing is being graded)."""
    from datetime import UTC, datetime

    import redis

    from grader.store import Store

    settings = get_settings()
    try:
        store = Store(settings.database_url)
        counts, failures, oldest = store.status_counts(), store.recent_failures(5), store.oldest_queued_at()
        abandoned = store.abandoned_posts(5)
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    queued: int | str  # its length, or why the broker did not say
    try:
        queued = redis.Redis.from_url(settings.broker_url, socket_timeout=3).llen("celery")
    except redis.RedisError as exc:
        queued = f"broker unreachable ({exc})"
        healthy = False
    else:
        line = _workers_line()
        typer.echo(line)
        healthy = not line.startswith("workers: none")
    typer.echo(f"broker queue: {queued}")
    if oldest is not None:
        typer.echo(f"longest wait: {_minutes(datetime.now(UTC) - oldest)} (queued since {oldest:%Y-%m-%d %H:%M} UTC)")
    typer.echo("submissions: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for sub in failures:
        typer.echo(f"  ungradable #{sub.id} {sub.project_path}@{sub.sha[:8]}: {sub.error}")
    for post in abandoned:
        typer.echo(f"  not delivered ({post.kind} of submission #{post.submission_id}): {post.last_error}")
    if not healthy:  # for monitoring and scripts: nothing is being graded right now
        raise typer.Exit(1)


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
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Grade the selection here and print `student old -> new`; write and post nothing.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask before regrading more than one group.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="text or json (with --dry-run).")] = "text",
) -> None:
    """Grade again (e.g. after a rubric change): by default the latest push of each selected project.

    The previous grade stays on the scoreboard until the new one exists, and stays for good if the
    regrade fails; a new comment is posted only when the verdict changed (else the status is updated).
    """
    from grader.store import Store
    from grader.tasks import grade_submission

    if not (project or group or all_ or stuck):
        _fail(ConfigError("say what to regrade: --project PATH, --group PATH, --all or --stuck"), 2)
    settings = get_settings()
    try:
        store = Store(settings.database_url)
        if stuck:
            # The worker takes a queued one, or a running one this old, exactly once (Store.start).
            ids = store.select_stuck(settings.stale_after)
        else:
            ids = store.select_for_regrade(project_path=project, group_prefix=group, latest_only=not all_pushes)
    except GraderError as exc:
        _fail(exc, exc.exit_code)
    if not ids and not stuck:
        _fail(ConfigError("nothing matches: no graded push of " + (project or group or "any project")
                          + " (check the path: `grader scoreboard` lists the projects)"), 1)
    if dry_run:
        _regrade_preview(store, ids, fmt)
        return
    paths = [sub.project_path for sub in map(store.get, ids) if sub is not None]
    groups = {path.rsplit("/", 1)[0] for path in paths}
    if len(groups) > 1 and not yes:
        if not sys.stdin.isatty():
            _fail(ConfigError(f"this regrades {len(ids)} submission(s) in {len(groups)} groups: pass --yes "
                              "(or try --dry-run first)"), 2)
        typer.confirm(f"Regrade {len(ids)} submission(s) in {len(groups)} groups?", abort=True)
    if not stuck:
        ids = store.requeue(ids)
    for sub_id in ids:
        grade_submission.delay(sub_id)
    typer.echo(f"{'sent again' if stuck else 'requeued'} {len(ids)} submission(s)")


def _regrade_preview(store: Store, ids: list[int], fmt: str) -> None:
    """Each selected submission graded here, its old and new score printed; nothing written."""
    from grader.tasks import service

    rows = []
    svc = service()
    for sub_id in ids:
        sub = store.get(sub_id)
        if sub is None:
            continue
        try:
            new = svc.grade_commit(sub.project_id, sub.sha, f"preview-{sub.id}")["score"]
        except GraderError as exc:
            typer.echo(f"  {sub.student}: cannot grade now ({exc})", err=True)
            new = None
        rows.append({"student": sub.student, "project": sub.project_path, "old_score": sub.score, "new_score": new})
        if fmt != "json":
            typer.echo(f"{sub.student} {_score(sub.score)} -> {_score(new)}")
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")


def _score(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _workers_line() -> str:
    from grader.tasks import app as celery_app

    names = sorted(name for reply in celery_app.control.ping(timeout=1.5) for name in reply)
    if not names:
        return "workers: none answering (nothing is being graded: start one, see docs/operating.md)"
    from grader import heartbeat

    settings = get_settings()
    engines = heartbeat.workers_of(settings.broker_url, settings.instance) or {}
    shown = [f"{n}: engine not answering, takes no jobs" if engines.get(n) is False else n for n in names]
    return f"workers: {len(names)} answering ({', '.join(shown)})"


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def _ceiling(parent: str | None, root: Path = Path("/sys/fs/cgroup")) -> str:
    """The memory/pids ceiling of the engine's cgroup parent, read from this machine's cgroup
    tree (v1: one tree per controller; v2: one unified tree). Unknown for a remote engine."""
    unknown = "ceiling unknown (a remote engine, or its cgroup is not visible here)"
    if parent is None:
        return unknown
    rel = parent.lstrip("/")
    v2 = (root / "cgroup.controllers").is_file()
    memory_file = root / rel / "memory.max" if v2 else root / "memory" / rel / "memory.limit_in_bytes"
    pids_file = root / rel / "pids.max" if v2 else root / "pids" / rel / "pids.max"
    try:
        raw, pids = memory_file.read_text().strip(), pids_file.read_text().strip()
        memory = 2**63 if raw == "max" else int(raw)
    except (OSError, ValueError):
        return unknown
    if memory >= 2**62:
        return "NO memory ceiling for builds: start the engine with scripts/setup (docs/operating.md)"
    return f"memory ceiling {memory / 2**30:.1f} GiB, pids {pids}"


# -- similarity between students' Dockerfiles (issue 17) ---------------------------------------------
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
    from grader.similarity import compare, load_config
    from grader.similarity.render import to_csv, to_json, to_text

    if dirs and group:
        _fail(ConfigError("give DIRs or --group, not both"), 2)
    settings = get_settings()
    try:
        rubric = assignment_mod.load(assignment or settings.assignment_file)
        config = load_config(rubric, base or ())
    except ConfigError as exc:
        _fail(exc, exc.exit_code)
    if dirs:
        from grader.similarity.local import records_from_dirs

        records, problems = records_from_dirs(dirs, rubric)
        if not records:
            _fail("no Dockerfile could be read: " + "; ".join(problems), SubmissionError.exit_code)
        pairs, index = compare(records, config)
    else:
        from grader.similarity import stored
        from grader.store import Store

        groups = group or settings.groups
        try:
            index, subs = stored.load(Store(settings.database_url), config, groups)
        except GraderError as exc:
            _fail(exc, exc.exit_code)
        if not subs:
            where = ", ".join(groups) if groups else "any project"
            _fail(f"no graded submission with stored Dockerfiles under {where} (submissions graded before "
                  "schema version 3 have none until regraded)", SubmissionError.exit_code)
        pairs, problems = index.pairs(), []
    problems += [f"{record.id}: {reason}" for record, reason in index.skipped]
    if fmt == SimilarityFormat.text:
        sys.stdout.write(to_text(pairs, config.threshold, 20 if top is None else top, problems))
    else:
        shown = pairs if top is None else pairs[:top]
        sys.stdout.write(to_json(shown, config.threshold, problems) if fmt == SimilarityFormat.json
                         else to_csv(shown))


if __name__ == "__main__":
    app()
