"""Advisory habits (checks/hygiene.py): .dockerignore, pip's cache, chained RUNs, variables across RUNs."""

from __future__ import annotations

import pytest

from checks import VARIANT_CHECKS
from grader import assignment as assignment_mod
from grader.dockerfile import parse_file, parse_text
from grader.facts import ContextFacts
from grader.messages import message
from tests.conftest import BROKEN
from tests.unit.factories import passing_variant

A = assignment_mod.load()
HYGIENE = ("dockerignore", "pip_no_cache", "layers_chained", "run_variables")
BASE = "FROM python:3.11.6-slim-bookworm\n"


def run(check_id: str, facts):
    return VARIANT_CHECKS[check_id](facts, A)


def broken(name: str, variant: str, **changes):
    filename = f"Dockerfile.{variant}"
    return passing_variant(variant, A, parsed=parse_file(BROKEN / name / filename, filename), **changes)


def dockerfile(text: str, variant: str = "single", **changes):
    return passing_variant(variant, A, parsed=parse_text(text, f"Dockerfile.{variant}"), **changes)


@pytest.mark.parametrize("variant", ["single", "multistage", "nonroot"])
@pytest.mark.parametrize("check_id", HYGIENE)
def test_reference_dockerfiles_pass_every_hygiene_check(variant, check_id):
    outcome = run(check_id, passing_variant(variant, A))

    assert outcome.status == "pass", outcome


@pytest.mark.parametrize("check_id", HYGIENE)
def test_every_hygiene_check_is_advisory_in_every_variant(check_id):
    for rubric in A.variants:
        assert check_id in rubric.advisory and check_id not in rubric.required


# dockerignore


def test_context_without_dockerignore_fails_with_a_command_to_see_it():
    context = ContextFacts(dockerignore=False, file_count=1840, size_bytes=52_400_000, unwanted=[".git", ".venv"])
    facts = passing_variant("single", A, dockerfile_path="counter-backend/Dockerfile.single", context=context)

    outcome = run("dockerignore", facts)

    assert (outcome.status, outcome.reason) == ("fail", "missing")
    assert (outcome.params["context"], outcome.params["files"], outcome.params["size"]) == (
        "counter-backend/", 1840, 52.4)
    command = next(e.text for e in outcome.evidence if e.kind == "command")
    assert command.endswith("-f - counter-backend") and "COPY . /ctx" in command
    assert any(".git, .venv" in e.text for e in outcome.evidence)


def test_dockerignore_that_lets_git_and_venv_through_is_ineffective_and_names_them():
    context = ContextFacts(dockerignore=True, file_count=1200, size_bytes=40_000_000, unwanted=[".git", ".venv"])

    outcome = run("dockerignore", passing_variant("single", A, context=context))

    assert (outcome.status, outcome.reason, outcome.params["names"]) == ("fail", "ineffective", ".git, .venv")
    assert ".git, .venv" in message("dockerignore", outcome, "ru")


def test_dockerignore_is_not_judged_on_the_course_reference_context():
    facts = passing_variant("single", A, context_is_reference=True,
                            context=ContextFacts(dockerignore=False, file_count=9, size_bytes=1000))

    assert run("dockerignore", facts).reason == "reference_context"


def test_dockerignore_is_skipped_when_the_context_was_not_inspected():
    outcome = run("dockerignore", passing_variant("single", A, context=None))

    assert (outcome.status, outcome.reason) == ("skip", "no_context")


# pip_no_cache


def test_pip_install_without_no_cache_dir_fails_on_its_line():
    outcome = run("pip_no_cache", broken("pip_cache_and_split_runs", "single"))

    assert (outcome.status, outcome.reason, outcome.params["line"]) == ("fail", "cached", 6)  # pip install poetry
    assert [e.line for e in outcome.evidence] == [6]
    assert message("pip_no_cache", outcome, "ru").startswith("Строка 6:")


@pytest.mark.parametrize("text", [
    BASE + "ENV PIP_NO_CACHE_DIR=1\nRUN pip install requests\n",
    BASE + "ENV PIP_NO_CACHE_DIR=off\nRUN pip install requests\n",  # pip: any boolean turns the cache off
    BASE + "ARG PIP_NO_CACHE_DIR=1\nRUN python -m pip install requests\n",
    BASE + "RUN PIP_NO_CACHE_DIR=1 pip install requests\n",
    BASE + "RUN pip --no-cache-dir install requests\n",
    BASE + "RUN pip3.11 install --no-cache requests && pip wheel --no-cache-dir -w w x\n",
    BASE + "RUN --mount=type=cache,target=/root/.cache/pip pip install requests\n",
    "FROM python:3.11.6-slim-bookworm AS base\nENV PIP_NO_CACHE_DIR=1\nFROM base\nRUN pip install requests\n",
    BASE + "RUN pipx install poetry\n",  # not pip
    # group 4 of the recipe: local wheels, no index: pip downloads and builds nothing, so "add
    # --no-cache-dir" would be false advice
    BASE + "RUN python -m pip install --isolated --no-index --no-deps --break-system-packages dist/*.whl "
           "dist/vendor/*.whl\n",
    BASE + "RUN pip install --no-index --find-links dist/vendor dist/*.whl && rm -rf dist\n",
])
def test_pip_without_a_cache_in_the_layer_passes(text):
    assert run("pip_no_cache", dockerfile(text)).status == "pass"


@pytest.mark.parametrize("text, line", [
    (BASE + "RUN pip install --no-cache-dir a && pip install b\n", 2),
    (BASE + "RUN python -m pip wheel --wheel-dir w x\n", 2),
    (BASE + "RUN pip install requests\nENV PIP_NO_CACHE_DIR=1\n", 2),  # set too late
    (BASE + "ENV PIP_NO_CACHE_DIR=1\nRUN pip install --isolated requests\n", 3),  # --isolated ignores PIP_*
    (BASE + "ENV PIP_NO_CACHE_DIR=\nRUN pip install requests\n", 3),
    (BASE + "RUN pip install --no-index dist/counter_backend-0.1.0.tar.gz\n", 2),  # builds a wheel: cached
    (BASE + "RUN pip install --no-index dist/*.whl && pip install poetry\n", 2),  # the second one downloads
    ("FROM python:3.11.6-slim-bookworm AS base\nARG PIP_NO_CACHE_DIR=1\nFROM base\nRUN pip install x\n", 4),
])
def test_pip_that_keeps_its_cache_fails_on_the_first_such_line(text, line):
    outcome = run("pip_no_cache", dockerfile(text))

    assert (outcome.status, outcome.params["line"]) == ("fail", line)


def test_dockerfile_without_pip_passes_with_nothing_to_check():
    assert run("pip_no_cache", dockerfile(BASE + "RUN echo hi\n")).reason == "no_pip"


# layers_chained


def test_consecutive_runs_fail_naming_the_lines():
    outcome = run("layers_chained", broken("pip_cache_and_split_runs", "single"))

    assert (outcome.status, outcome.reason, outcome.params["pairs"]) == ("fail", "consecutive", "12–13")
    assert [e.line for e in outcome.evidence] == [12, 13]
    assert "12–13" in message("layers_chained", outcome, "ru")


def test_three_runs_in_a_row_and_a_separate_pair_are_named_as_groups():
    text = BASE + "RUN a\nRUN b\n# a comment is no instruction\nRUN c\nCOPY x y\nRUN d\nRUN e\n"

    outcome = run("layers_chained", dockerfile(text))

    assert (outcome.params["pairs"], outcome.params["line"]) == ("2–3–5, 7–8", 2)


@pytest.mark.parametrize("text", [
    BASE + "RUN a\nWORKDIR /app\nRUN b\n",
    BASE + "RUN --mount=type=secret,id=t a\nRUN b\n",  # different flags: not simply one RUN
    BASE + 'RUN ["a"]\nRUN b\n',
    BASE + "RUN a\n" + BASE + "RUN b\n",  # different stages
])
def test_runs_that_cannot_simply_be_one_pass(text):
    assert run("layers_chained", dockerfile(text)).status == "pass"


# run_variables


def test_variable_set_in_one_run_and_used_in_the_next_fails_with_name_and_line():
    outcome = run("run_variables", broken("variable_across_runs", "multistage"))

    assert (outcome.status, outcome.params["name"], outcome.params["line"]) == ("fail", "packages", 18)
    assert outcome.evidence[0].line == 18 and "${packages}" in outcome.evidence[0].text
    assert message("run_variables", outcome, "en").startswith("Line 18: variable packages")


def test_variable_set_and_used_in_the_same_run_passes():
    text = BASE + "RUN packages=$(find dist -name '*.whl') && pip install --no-cache-dir $packages\nRUN echo done\n"

    assert run("run_variables", dockerfile(text)).status == "pass"


@pytest.mark.parametrize("check_id", ["pip_no_cache", "layers_chained", "run_variables"])
def test_dockerfile_checks_are_skipped_without_a_parse(check_id):
    assert run(check_id, passing_variant("single", A, parsed=None, parse_error="x")).status == "skip"
