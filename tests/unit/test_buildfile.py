"""grader/buildfile.py: the copy the engine builds keeps every line number of the student's file.

The copies are parsed back with BuildKit's parser (PyPI `dockerfile`); that engine 20.10 builds them
and runs the same script is shown in tests/integration/test_policy.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import dockerfile as buildkit_parser
import pytest

from grader.buildfile import DEFAULT_SHELL, directives, escape_char, lines_of, prepare

BASE = "FROM python:3.11.6-slim-bookworm\n"
REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "counter-backend"


def starts(text: str) -> list[tuple[str, int]]:
    return [(c.cmd.upper(), c.start_line) for c in buildkit_parser.parse_string(text)]


def command_at(text: str, line: int) -> buildkit_parser.Command:
    return next(c for c in buildkit_parser.parse_string(text) if c.start_line == line)


@pytest.mark.parametrize("name", ["Dockerfile.single", "Dockerfile.multistage", "Dockerfile.nonroot"])
def test_a_file_with_nothing_to_change_is_copied_byte_for_byte(name):
    text = (REFERENCE / name).read_text()

    assert prepare(text).text == text and prepare(text).changes == ()


# -- the syntax directive ---------------------------------------------------------------------------
def test_the_syntax_directive_becomes_an_empty_line():
    text = "# syntax=docker/dockerfile:1\n" + BASE + "RUN true\n"

    copy = prepare(text)

    assert copy.text == "\n" + BASE + "RUN true\n"
    assert starts(copy.text) == starts(text)
    assert [(c.kind, c.line, c.params) for c in copy.changes] == [
        ("syntax_removed", 1, {"frontend": "docker/dockerfile:1"})]


def test_an_escape_directive_below_it_moves_up_so_it_stays_a_directive():
    # An empty first line would end the directive block and silently drop the escape character.
    text = "# syntax=docker/dockerfile:1.4\n# escape=`\n" + BASE + "RUN echo a `\n  b\n"

    copy = prepare(text)

    assert lines_of(copy.text)[:2] == ["# escape=`", ""]
    assert escape_char(copy.text) == "`"
    assert starts(copy.text) == starts(text)


def test_a_syntax_comment_below_the_first_instruction_is_left_alone():
    text = BASE + "# syntax=docker/dockerfile:1\nRUN true\n"

    assert prepare(text).text == text
    assert directives(text) == []


def test_bom_and_crlf_are_kept():
    text = "\ufeff# syntax=docker/dockerfile:1\r\n" + BASE.replace("\n", "\r\n") + "RUN true\r\n"

    copy = prepare(text)

    assert copy.text == "\ufeff\r\n" + BASE.replace("\n", "\r\n") + "RUN true\r\n"
    assert starts(copy.text) == starts(text)


def test_line_numbers_count_newlines_only_as_buildkit_does():
    # A form feed is not a line break for BuildKit (str.splitlines would make it one).
    text = "FROM python:3.11.6-slim-bookworm\nLABEL note=\"a\x0cb\"\nRUN <<EOF\necho hi\nEOF\nRUN true\n"

    copy = prepare(text)

    assert starts(copy.text) == starts(text) == [("FROM", 1), ("LABEL", 2), ("RUN", 3), ("RUN", 6)]


# -- heredocs ---------------------------------------------------------------------------------------
def test_a_simple_heredoc_run_becomes_the_exec_form_the_shell_would_run():
    text = BASE + "RUN <<EOF\nset -e\necho \"hi $HOME\"\nEOF\nEXPOSE 8080\n"

    copy = prepare(text)

    run = command_at(copy.text, 2)
    assert run.json and list(run.value) == [*DEFAULT_SHELL, 'set -e\necho "hi $HOME"\n']
    assert lines_of(copy.text)[2:4] == ["", ""]  # the document's lines, now empty
    assert starts(copy.text) == starts(text)
    assert [(c.kind, c.line, c.params) for c in copy.changes] == [
        ("heredoc_rewritten", 2, {"word": "EOF", "shell": "/bin/sh -c"})]


def test_the_stages_shell_is_used_and_inherited_through_from_a_stage():
    text = ('FROM python:3.11.6-slim-bookworm AS base\nSHELL ["/bin/sh", "-eu", "-c"]\n'
            "FROM base AS build\nRUN <<EOF\necho one\nEOF\n" + BASE + "RUN <<EOF\necho two\nEOF\n")

    copy = prepare(text)

    assert list(command_at(copy.text, 4).value)[:3] == ["/bin/sh", "-eu", "-c"]
    assert list(command_at(copy.text, 8).value)[:2] == list(DEFAULT_SHELL)  # a fresh base: default shell


def test_flags_quoted_words_and_tab_stripping_are_kept():
    text = BASE + "RUN --mount=type=cache,target=/root/.cache <<-'END'\n\tpip --version\n\t\techo tab\nEND\n"

    run = command_at(prepare(text).text, 2)

    assert run.flags == ("--mount=type=cache,target=/root/.cache",)
    assert run.value[-1] == "pip --version\necho tab\n"  # <<- strips leading tabs


def test_a_crlf_heredoc_runs_without_carriage_returns():
    text = (BASE + "RUN <<EOF\necho hi\nEOF\n").replace("\n", "\r\n")

    copy = prepare(text)

    assert json.loads(lines_of(copy.text)[1].removeprefix("RUN ").rstrip("\r"))[-1] == "echo hi\n"
    assert starts(copy.text) == starts(text)


@pytest.mark.parametrize("shape", [
    "COPY <<EOF /app/notes.txt\nhello\nEOF\n",
    "RUN <<EOF bash\necho hi\nEOF\n",
    "RUN <<EOF\n#!/usr/bin/env python3\nprint(1)\nEOF\n",
    "RUN <<A <<B\necho a\nA\necho b\nB\n",
    "RUN cat <<EOF > /x\nhello\nEOF\n",
    "RUN 3<<EOF cat /dev/fd/3\nhello\nEOF\n",
])
def test_other_heredoc_shapes_are_left_as_written(shape):
    text = BASE + shape

    copy = prepare(text)

    assert copy.text == text and copy.changes == ()


def test_several_changes_keep_every_later_line_where_it_was():
    text = ("# syntax=docker/dockerfile:1\n" + BASE + "RUN <<EOF\na\nb\nEOF\nWORKDIR /app\n"
            "RUN <<EOF\nc\nEOF\nCOPY src ./src\n")

    copy = prepare(text)

    kept = [i for i, line in enumerate(lines_of(text)) if line.startswith(("WORKDIR", "COPY"))]
    assert [lines_of(copy.text)[i] for i in kept] == [lines_of(text)[i] for i in kept]
    assert [c.line for c in copy.changes] == [1, 3, 8]
    assert len(lines_of(copy.text)) == len(lines_of(text))


# -- cache mounts: one grading's own ------------------------------------------------------------------
def test_cache_mounts_get_an_id_of_the_gradings_own_keeping_their_target():
    text = (BASE + "RUN --mount=type=cache,target=/root/.cache/pip \\\n    pip --version \\\n && echo ok\n"
            "RUN --mount=type=cache,id=pip,target=/c,sharing=locked [\"sh\", \"-c\", \"ls /c\"]\nEXPOSE 8080\n")

    copy = prepare(text, cache_scope="grader-job1")

    first, second = command_at(copy.text, 2), command_at(copy.text, 5)
    assert first.flags == ("--mount=type=cache,target=/root/.cache/pip,id=grader-job1/root/.cache/pip",)
    assert first.value == ("pip --version  && echo ok",)
    assert second.flags == ("--mount=type=cache,target=/c,sharing=locked,id=grader-job1/pip",)
    assert second.json and list(second.value) == ["sh", "-c", "ls /c"]
    assert starts(copy.text) == starts(text) and copy.changes == ()  # nothing the student needs to hear


def test_a_heredoc_run_with_a_cache_mount_gets_both_changes():
    text = BASE + "RUN --mount=type=cache,target=/c <<EOF\nls /c\nEOF\n"

    run = command_at(prepare(text, cache_scope="s").text, 2)

    assert run.flags == ("--mount=type=cache,target=/c,id=s/c",) and run.json


@pytest.mark.parametrize("flag", ["--mount=type=bind,target=/x", "--mount=type=tmpfs,target=/t"])
def test_other_mounts_and_no_scope_leave_the_file_as_it_is(flag):
    text = BASE + f"RUN {flag} ls\nRUN --mount=type=cache,target=/c ls\n"

    assert prepare(text).text == text
    assert command_at(prepare(text, cache_scope="s").text, 2).flags == (flag,)
