"""The one error handler of the `grader` command (grader/cli/base.py): each named error of
grader/errors.py exits with its code and one line `grader: <message>`, whatever command raised it;
an interrupt exits 130, saying what was cleaned up only where the command declared it."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from grader.cli.base import Commands, interruptible
from grader.errors import ConfigError, EngineDiskFull, EngineUnavailable, GraderError, SubmissionError


def _app(raised: BaseException, note: str | None = None) -> typer.Typer:
    app = typer.Typer(cls=Commands, add_completion=False)

    @app.callback()
    def _group() -> None:
        pass

    @app.command()
    def fails(ctx: typer.Context) -> None:
        typer.echo("before")
        if note is not None:
            interruptible(ctx, note)
        raise raised

    return app


@pytest.mark.parametrize("raised, code", [
    (ConfigError("bad option"), 2), (SubmissionError("no Dockerfile"), 1), (GraderError("base image missing"), 3),
    (EngineUnavailable("engine down"), 4), (EngineDiskFull("disk full"), 3),
])
def test_each_named_error_is_its_exit_code_and_one_line(raised, code):
    result = CliRunner().invoke(_app(raised), ["fails"])
    assert result.exit_code == code
    assert result.stdout == "before\n"
    assert result.stderr == f"grader: {raised}\n"


def test_an_error_in_the_callback_is_handled_the_same_way():
    app = typer.Typer(cls=Commands, add_completion=False)

    @app.callback()
    def _settings() -> None:
        raise ConfigError("GRADER_GROUPS must be a JSON list")

    @app.command()
    def anything() -> None:
        typer.echo("never")

    result = CliRunner().invoke(app, ["anything"])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", "grader: GRADER_GROUPS must be a JSON list\n")


def test_an_interrupt_says_what_was_cleaned_up_where_the_command_declared_it():
    declared = CliRunner().invoke(_app(KeyboardInterrupt(), note="interrupted; all removed"), ["fails"])
    assert (declared.exit_code, declared.stderr) == (130, "grader: interrupted; all removed\n")
    silent = CliRunner().invoke(_app(KeyboardInterrupt()), ["fails"])  # control: nothing declared, nothing said
    assert (silent.exit_code, silent.stderr) == (130, "")


def test_a_bug_is_not_dressed_as_a_named_error():
    """Anything else is our bug and keeps its traceback (not a one-line error with a made-up code)."""
    result = CliRunner().invoke(_app(ValueError("bug")), ["fails"])
    assert isinstance(result.exception, ValueError) and "grader:" not in result.stderr


def test_every_command_of_the_grader_is_under_the_handler():
    from grader.cli import app

    assert app.info.cls is Commands
    group = typer.main.get_command(app)
    assert isinstance(group, Commands)
    assert list(group.commands) == ["check", "gc", "validate", "doctor", "serve", "worker", "grade", "grade-group",
                                    "scoreboard", "extend", "status", "regrade", "similarity"]
