"""CONTRIBUTING.md's worked example is true: its check and messages, exactly as printed, register,
judge, and speak both languages."""

from __future__ import annotations

import re
import tomllib
import types
from pathlib import Path

import pytest

import checks
import grader.messages as messages_mod
from grader import assignment as assignment_mod
from grader.dockerfile import parse_text
from grader.messages import message
from tests.unit.factories import passing_variant

GUIDE = (Path(__file__).resolve().parents[2] / "CONTRIBUTING.md").read_text(encoding="utf-8")
A = assignment_mod.load()


def block(lang: str) -> str:
    [code] = re.findall(rf"```{lang}\n(.*?)```", GUIDE, re.S)
    return code


@pytest.fixture
def example(monkeypatch):
    """The guide's check registered for this test only, with its messages in the catalogue."""
    registry = checks.VARIANT_CHECKS  # the decorator's registry (grader.checkapi), re-exported
    before = dict(registry)
    module = types.ModuleType("checks.healthcheck")
    exec(compile(block("python"), "CONTRIBUTING.md", "exec"), module.__dict__)  # noqa: S102 - our own doc
    merged = {**messages_mod.catalogue(), **tomllib.loads(block("toml"))}
    monkeypatch.setattr(messages_mod, "catalogue", lambda: merged)
    yield registry["healthcheck"]
    registry.clear()
    registry.update(before)


def test_the_guides_check_registers_with_its_declared_reasons(example):
    assert example.reads == ("parsed",) and example.reasons == {"ok", "missing", "not_parsed"}
    for reason in example.reasons - {"not_parsed"}:
        assert messages_mod.catalogue()["healthcheck"][reason].keys() == {"ru", "en"}


def test_the_guides_check_judges_and_names_the_line(example):
    without = example(passing_variant("single", A), A)
    assert (without.status, without.reason) == ("fail", "missing")
    text = ("FROM python:3.11.6-slim-bookworm AS base\nHEALTHCHECK CMD python -c 'print(1)'\n"
            "FROM base\nRUN echo\n")
    with_one = example(passing_variant("single", A, parsed=parse_text(text, "Dockerfile.single")), A)
    assert (with_one.status, with_one.params["line"]) == ("pass", 2)  # inherited through FROM base
    assert message("healthcheck", with_one, "ru").startswith("Строка 2:")
    assert message("healthcheck", with_one, "en").startswith("Line 2:")
