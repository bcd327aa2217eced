"""The commands that run the service: serve (webhook and pages) and worker (Celery), both from
the composition root's parts (grader/app.py)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from grader.cli.base import app, root
from grader.errors import ConfigError


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one core each; on SQLite they take "
                                                     "turns writing).")] = 1,
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log", help="Log every request (off: at hundreds of pushes a second it is most of "
                                             "the log and some of the CPU; GitLab lists every delivery and its "
                                             "answer under the hook's Recent events, and refused deliveries are "
                                             "logged either way).")] = False,
) -> None:
    """Serve the GitLab webhook (POST /webhooks/gitlab) and the report pages.

    Point a GitLab project, group or system webhook at http://HOST:PORT/webhooks/gitlab with the
    secret token GRADER_WEBHOOK_SECRET and the "Push events" trigger.
    """
    import uvicorn

    from grader.doctor import serving_problems

    parts = root()
    parts.settings.require("webhook_secret", "gitlab_url", "gitlab_token")
    problems, warnings = serving_problems(parts.settings, host)
    if problems:
        raise ConfigError("\n".join(f"grader: {p}" for p in problems).removeprefix("grader: "))
    for warning in warnings:
        typer.echo(f"grader: warning: {warning}", err=True)
    application = parts.web() if workers == 1 else None
    if application is None:
        parts.check_startup()  # a one-line error here, not one per worker process
        parts.close()
    # With several, each worker process builds its own app (its own database pool, push writer and
    # broker client) from the factory, and uvicorn restarts one that dies.
    uvicorn.run(application or "grader.app:web_app", factory=application is None, workers=workers, host=host,
                port=port, log_level="info", server_header=False, access_log=access_log)  # no banner


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(
    ctx: typer.Context,
    concurrency: Annotated[int, typer.Option(help="Gradings at once on this machine (each builds and runs).")] = 1,
    beat: Annotated[bool, typer.Option(
        "--beat/--no-beat", help="Also run the periodic reconciler (re-sends what the broker lost, delivers due "
                                 "posts every GRADER_RECONCILE_S). Safe on several workers at once.")] = True,
) -> None:
    """Start a Celery worker that grades submissions (extra arguments go to celery worker)."""
    parts = root()
    settings = parts.settings
    settings.require("gitlab_url", "gitlab_token")
    parts.check_startup()
    parts.close()  # each worker process opens its own
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
