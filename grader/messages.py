"""The message catalogue (checks/messages/*.toml): every student-facing sentence in ru and en."""

from __future__ import annotations

import tomllib
from functools import lru_cache

from grader import plugins
from grader.checkapi import Outcome
from grader.errors import SubmissionError
from grader.facts import Note

CATALOGUE = plugins.folder() / "messages"


class _Value:
    """A placeholder's value, written the way the report's language writes it: a decimal comma in
    Russian (`0,3 с`), plural forms through the `plural:` spec (`{files:plural:файл,файла,файлов}`
    is `21 файл`, `3 файла`, `25 файлов`; English takes `one,other`). A `code` span in a sentence (the
    catalogue's, or a tool's such as hadolint's) is rendered as code; text in one stays inert."""

    def __init__(self, value: object, lang: str) -> None:
        self.value = value
        self.lang = lang

    def __format__(self, spec: str) -> str:
        v = self.value
        if spec.startswith("plural:"):
            forms = spec.removeprefix("plural:").split(",")
            return f"{number(v, self.lang)} {plural(v, forms, self.lang)}" if _numeric(v) else str(v)
        if _numeric(v):
            return number(v, self.lang, spec)
        return format(v, spec) if spec and isinstance(v, str) else str(v)


def _numeric(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def number(x: object, lang: str, spec: str = "") -> str:
    """`x` as the language writes it: 4.5 → "4,5" in Russian; `spec` is a format spec (".1f", "g")."""
    if not _numeric(x):
        return str(x)
    text = format(x, spec) if spec else (f"{x:g}" if isinstance(x, float) and x == int(x) else str(x))
    return text.replace(".", ",") if lang == "ru" else text


def plural(n: object, forms: list[str], lang: str) -> str:
    """The word form for `n`: Russian one/few/many (1 файл, 2 файла, 5 файлов; a fraction takes the
    "few" form: 1,5 балла), English one/other."""
    if not forms:
        return ""
    if not _numeric(n):
        return forms[-1]
    value = float(n)  # type: ignore[arg-type]  # _numeric: an int or a float
    if lang == "ru" and len(forms) >= 3:
        if value != int(value):
            return forms[1]
        k = int(value)
        if k % 10 == 1 and k % 100 != 11:
            return forms[0]
        if 2 <= k % 10 <= 4 and not 12 <= k % 100 <= 14:
            return forms[1]
        return forms[2]
    return forms[0] if value == 1 else forms[-1]


class _Blank(dict):
    """Placeholders filled from an outcome's params, localised; a missing one shows as "?"."""

    def __init__(self, params: dict, lang: str) -> None:
        super().__init__({k: _Value(v, lang) for k, v in params.items() if v is not None})
        self.lang = lang

    def __missing__(self, key: str) -> _Value:
        return _Value("?", self.lang)


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
    params = _Blank(outcome.params, lang)
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
    return entry[lang].format_map(_Blank(item, lang))


def note(n: Note, lang: str) -> str:
    """A discovery note (checks/messages/discovery.toml) in `lang`."""
    entry = catalogue()["discovery"].get(n.key)
    if entry is None:
        return n.key
    return entry[lang].format_map(_Blank(n.params, lang))


def refusal(exc: SubmissionError, lang: str) -> str:
    """Why a submission cannot be graded, in `lang` (checks/messages/refusal.toml); never a server path."""
    entry = catalogue()["refusal"].get(exc.reason or "")
    if entry is None:
        return str(exc)
    params = _Blank(exc.params, lang)
    notes = exc.params.get("notes")
    if isinstance(notes, list):
        params["details"] = _Value("; ".join(note(n, lang) for n in notes), lang)
    return entry[lang].format_map(params)


def text(section: str, key: str, lang: str, **params: object) -> str:
    """A sentence or label of the reports, statuses and pages (checks/messages/report.toml,
    status.toml, pages.toml) in `lang`, its placeholders filled like a check's."""
    entry = catalogue()[section][key]
    return entry[lang].format_map(_Blank(params, lang))
