"""The message catalogue (checks/messages/*.toml) against the checks and hints that use it."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest

import checks
from checks import GLOBAL_CHECKS, VARIANT_CHECKS, failed
from checks.hints import LOG_HINTS
from grader.assignment import LANGUAGES
from grader.messages import CATALOGUE, catalogue, message, title

CHECKS_DIR = Path(checks.__file__).parent
ALL_CHECK_IDS = sorted(VARIANT_CHECKS) + sorted(GLOBAL_CHECKS)
# Sections that are not a check's own: shared reasons, build hints, and the words of reports, statuses and pages.
SHARED = {"common", "hints", "discovery", "refusal", "report", "status", "pages"}


def entries() -> list[tuple[str, str, dict]]:
    """(section, key, {lang: text}) for every message in the catalogue."""
    return [(section, key, entry) for section, table in catalogue().items()
            for key, entry in table.items()]


def placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def hint_keys_in_code() -> set[str]:
    """Every hint key checks/hints.py can produce: LOG_HINTS and literal Hint("key", ...) calls."""
    keys = {key for _, key in LOG_HINTS}
    tree = ast.parse((CHECKS_DIR / "hints.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Hint"
                and node.args and isinstance(node.args[0], ast.Constant)):
            keys.add(node.args[0].value)
    return keys


def reasons_in_code() -> dict[str | None, set[str]]:
    """Reasons passed to passed()/failed()/skipped(), by the registered check id around them
    (None for helpers outside a registered check, e.g. a decorator shared by several)."""
    found: dict[str | None, set[str]] = {}
    for path in sorted(CHECKS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        owner = {}
        for fn in ast.walk(tree):
            if isinstance(fn, ast.FunctionDef):
                for deco in fn.decorator_list:
                    if (isinstance(deco, ast.Call) and isinstance(deco.func, ast.Name)
                            and deco.func.id in ("variant_check", "global_check")):
                        for node in ast.walk(fn):
                            owner[id(node)] = deco.args[0].value
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("passed", "failed", "skipped")):
                continue
            if node.args and isinstance(node.args[0], ast.Constant):
                reason = node.args[0].value
            elif not node.args and node.func.id == "passed":
                reason = "ok"
            else:
                continue
            found.setdefault(owner.get(id(node)), set()).add(reason)
    return found


def test_the_registries_are_not_empty():
    # guards the tests below against passing vacuously
    assert len(VARIANT_CHECKS) >= 15
    assert "size_comparison" in GLOBAL_CHECKS


@pytest.mark.parametrize("check_id", ALL_CHECK_IDS)
def test_every_registered_check_has_a_title_in_every_language(check_id):
    titles = catalogue().get(check_id, {}).get("title", {})

    for lang in LANGUAGES:
        assert titles.get(lang, "").strip(), f"[{check_id}] has no {lang} title"
        assert title(check_id, lang) != check_id


def test_every_catalogue_entry_has_exactly_ru_and_en():
    broken = [f"{section}.{key}: {sorted(entry)}" for section, key, entry in entries()
              if not isinstance(entry, dict) or set(entry) != set(LANGUAGES)
              or not all(isinstance(entry[lang], str) and entry[lang].strip() for lang in LANGUAGES)]

    assert entries(), f"{CATALOGUE} is empty"
    assert broken == []


def test_every_catalogue_entry_has_the_same_placeholders_in_both_languages():
    mismatched = [f"{section}.{key}: ru {sorted(placeholders(entry['ru']))} "
                  f"en {sorted(placeholders(entry['en']))}"
                  for section, key, entry in entries()
                  if placeholders(entry["ru"]) != placeholders(entry["en"])]

    assert mismatched == []


def test_every_placeholder_is_a_plain_name():
    # format_map fills names from the outcome's params; {0} or {x.y} would never be filled
    odd = [f"{section}.{key}: {field}" for section, key, entry in entries()
           for lang in LANGUAGES for field in placeholders(entry[lang])
           if not field.isidentifier()]

    assert odd == []


def test_every_catalogue_section_belongs_to_a_check():
    sections = set(catalogue())

    assert sections - SHARED <= set(ALL_CHECK_IDS), "a section whose check no longer exists"


def test_every_hint_the_code_can_give_has_a_message():
    keys = hint_keys_in_code()
    hints = catalogue()["hints"]

    assert {"poetry_export", "empty_variable", "server_in_run"} <= keys  # the scan found them
    assert sorted(keys - set(hints)) == []


def test_hints_have_a_title_for_the_prefix():
    assert set(catalogue()["hints"]["title"]) == set(LANGUAGES)


SPECS = [*VARIANT_CHECKS.values(), *GLOBAL_CHECKS.values()]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_every_reason_a_check_declares_has_a_message_in_both_languages(spec):
    def entry(reason: str) -> dict:
        return catalogue().get(spec.id, {}).get(reason) or catalogue()["common"].get(reason) or {}

    missing = [reason for reason in sorted(spec.reasons | spec.item_reasons)
               if not all(entry(reason).get(lang, "").strip() for lang in LANGUAGES)]

    assert spec.reasons, f"{spec.id} declares no reasons"
    assert missing == []


def test_every_reason_written_in_a_check_is_declared_by_it():
    found = reasons_in_code()
    undeclared = [f"{check_id}: {reason}" for check_id, reasons in found.items() if check_id
                  for reason in sorted(reasons)
                  if reason not in (VARIANT_CHECKS.get(check_id) or GLOBAL_CHECKS[check_id]).reasons]

    assert found.get("http_contract", set()) >= {"ok", "probe"}  # the scan found them
    assert undeclared == []


def test_reasons_returned_by_shared_helpers_are_declared_by_some_check():
    shared = reasons_in_code().get(None, set())
    declared = set().union(*(spec.reasons for spec in SPECS))

    assert "not_parsed" in shared
    assert sorted(shared - declared) == []


def test_message_fills_the_placeholders_in_the_requested_language():
    outcome = failed("several", count=3)

    assert message("single_stage", outcome, "en").startswith("The single variant must be built in one stage; 3 stages")
    assert "3" in message("single_stage", outcome, "ru")
    assert message("single_stage", outcome, "ru") != message("single_stage", outcome, "en")


def test_message_falls_back_to_a_common_reason():
    assert message("offline_install", failed("one_stage"), "en") == "Only one stage: nothing to check."


def test_message_appends_the_hint_with_its_title():
    outcome = failed("error", code=1, hint="poetry_export")

    text = message("built", outcome, "en")

    assert text.startswith("The build failed (exit code 1).")
    assert text.endswith("Hint: Poetry 2.x has no export command. Pin poetry==1.8.5 or install "
                         "poetry-plugin-export.")


def test_message_appends_each_item_of_the_outcome_from_the_same_section():
    outcome = failed("findings", count=2, items=[{"reason": "DL3000", "line": 2},
                                                 {"reason": "other", "line": 5, "code": "DL3014", "message": "Use -y"}])

    text = message("hadolint", outcome, "en")

    assert text == ("hadolint findings (2): Line 2: WORKDIR with a relative path. Use an absolute path, e.g. /app. "
                    "Line 5: DL3014: Use -y")
    assert message("hadolint", outcome, "ru").startswith("Замечания hadolint (2): Строка 2: WORKDIR")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_every_check_has_a_typed_signature(spec):
    """fn(facts, assignment) -> Outcome with the facts of its registry: mypy then checks what the
    check reads from them (a check taking untyped parameters reads anything unchecked)."""
    import inspect
    import typing

    from grader.assignment import Assignment
    from grader.checkapi import Outcome
    from grader.facts import SubmissionFacts, VariantFacts

    hints = typing.get_type_hints(spec.fn)
    first, second = list(inspect.signature(spec.fn).parameters)[:2]
    facts = VariantFacts if spec.id in VARIANT_CHECKS else SubmissionFacts
    assert (hints.get(first), hints.get(second), hints.get("return")) == (facts, Assignment, Outcome)
