"""The message catalogue (checks/messages/*.toml): every student-facing sentence in ru and en."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path

from grader.checkapi import Outcome
from grader.errors import SubmissionError
from grader.facts import Note

CATALOGUE = Path(__file__).resolve().parent.parent / "checks" / "messages"


class _Blank(dict):
    def __missing__(self, key: str) -> str:
        return "?"


@lru_cache(maxsize=1)
def catalogue() -> dict:
    """All files merged; one file per check module keeps each module's wording next to its peers."""
    merged: dict = {}
    for path in sorted(CATALOGUE.glob("*.toml")):
        for key, entry in tomllib.loads(path.read_text(encoding="utf-8")).items():
            if key in merged:
                raise ValueError(f"{path.name}: [{key}] is already defined in another messages file")
            merged[key] = entry
    return merged


def title(check_id: str, lang: str) -> str:
    return catalogue().get(check_id, {}).get("title", {}).get(lang, check_id)


def message(check_id: str, outcome: Outcome, lang: str) -> str:
    entry = catalogue().get(check_id, {}).get(outcome.reason) or catalogue()["common"].get(outcome.reason)
    if entry is None:
        return f"{check_id}: {outcome.reason}"
    params = _Blank({k: v for k, v in outcome.params.items() if v is not None})
    text = entry[lang].format_map(params)
    for item in outcome.params.get("items") or ():
        text += " " + _item(check_id, item, lang)
    hint = outcome.params.get("hint")
    if hint:
        text += f" {title('hints', lang)}: " + catalogue()["hints"][hint][lang].format_map(params)
    return text


def _item(check_id: str, item: dict, lang: str) -> str:
    """One entry of an outcome's `items` (a list of {"reason": key, **params}): a sentence of its own,
    looked up under the same check id, e.g. one piece of advice per hadolint finding."""
    entry = catalogue().get(check_id, {}).get(item["reason"]) or catalogue()["common"].get(item["reason"])
    if entry is None:
        return f"{check_id}: {item['reason']}"
    return entry[lang].format_map(_Blank({k: v for k, v in item.items() if v is not None}))


def note(n: Note, lang: str) -> str:
    """A discovery note (checks/messages/discovery.toml) in `lang`."""
    entry = catalogue()["discovery"].get(n.key)
    if entry is None:
        return n.key
    return entry[lang].format_map(_Blank({k: v for k, v in n.params.items() if v is not None}))


def refusal(exc: SubmissionError, lang: str) -> str:
    """Why a submission cannot be graded, in `lang` (checks/messages/refusal.toml); never a server path."""
    entry = catalogue()["refusal"].get(exc.reason or "")
    if entry is None:
        return str(exc)
    params = _Blank({k: v for k, v in exc.params.items() if v is not None})
    notes = exc.params.get("notes")
    if isinstance(notes, list):
        params["details"] = "; ".join(note(n, lang) for n in notes)
    return entry[lang].format_map(params)
