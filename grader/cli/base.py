"""What every `grader` command shares: the Typer app, the one handler that turns the project's
named errors (grader/errors.py) into an exit code and a one-line message, and the renderers.

A command is a declaration: its options, one call into an application service (grader/app.py
builds them), and what it prints of the result. It raises the named errors and never catches them:
`GraderError` and its kinds exit with their `exit_code` (ConfigError 2, EngineUnavailable 4, …),
`SubmissionError` with 1, each as `grader: <message>` on stderr.
"""

from __future__ import annotations

import signal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperGroup

from grader import report as report_mod
from grader.errors import GraderError, SubmissionError

if TYPE_CHECKING:
    from collections.abc import Callable

    from rich.console import Console

    from grader.app import App

_INTERRUPTED = "grader.interrupted"  # the key of an interrupt's message in the context's meta


class Commands(TyperGroup):
    """The group of `grader` commands, with the one error handler around every one of them (and
    around the callback that loads the settings)."""

    def invoke(self, ctx: Any) -> Any:  # a typer.Context (its click's, which typer vendors)
        try:
            return super().invoke(ctx)
        except (GraderError, SubmissionError) as exc:
            fail(exc)
        except KeyboardInterrupt:
            if ctx.meta.get(_INTERRUPTED):
                typer.echo(f"grader: {ctx.meta[_INTERRUPTED]}", err=True)
            raise typer.Exit(130) from None


def fail(exc: GraderError | SubmissionError) -> NoReturn:
    typer.echo(f"grader: {exc}", err=True)
    raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=Commands,
    help="Autograder for the course's Docker homework (counter-backend in three Dockerfile variants).",
    no_args_is_help=True,
    add_completion=False,
)


def root() -> App:
    """This process's composition root (grader/app.py)."""
    from grader.app import root as current

    return current()


def _sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def interruptible(ctx: typer.Context, message: str) -> None:
    """From here on `kill` (SIGTERM) interrupts the command like Ctrl-C does, and an interrupt exits
    130 saying `message` (what was cleaned up). Without it an interrupt exits 130 silently."""
    signal.signal(signal.SIGTERM, _sigterm)
    ctx.meta[_INTERRUPTED] = message  # shared with the group's context, where the handler reads it


class Format(StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"


class Lang(StrEnum):
    ru = "ru"
    en = "en"


def renderer(fmt: Format) -> Callable[[dict], str]:
    return {Format.text: report_mod.render_text, Format.json: report_mod.render_json,
            Format.markdown: report_mod.render_markdown}[fmt]


def progress(quiet: bool = False) -> Callable[[str], None]:
    """Progress lines on stderr (`· …`), or none."""
    return (lambda _m: None) if quiet else (lambda m: typer.echo(f"· {m}", err=True))


def stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)
