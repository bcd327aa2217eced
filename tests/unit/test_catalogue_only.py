"""Every word a student or an instructor reads comes from the message catalogue
(checks/messages/*.toml, ru and en): the templates hold markup and `w(...)` calls only, and no
Python module writes Russian of its own. A failure names the file and the words."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = sorted((ROOT / "grader" / "templates").glob("*.html"))
JINJA = re.compile(r"{[{%#].*?[}%#]}", re.S)
CYRILLIC = re.compile(r"[А-Яа-яЁё]")


def words_outside_tags(source: str) -> list[str]:
    """Words (2+ letters) a template shows that are not produced by a Jinja expression."""
    bare = JINJA.sub(" ", source)
    bare = re.sub(r"<(style|script)\b.*?</\1>", " ", bare, flags=re.S | re.I)
    bare = re.sub(r"<!--.*?-->", " ", bare, flags=re.S)
    bare = re.sub(r"<[^>]+>", " ", bare)  # tags and their attributes (class names, ids, URLs)
    bare = re.sub(r"""\s[\w-]+=("[^"]*"|'[^']*')""", " ", bare)  # an attribute a block puts into a tag
    bare = re.sub(r"&[a-z]+;|&#\d+;", " ", bare)  # entities: &nbsp; &middot;
    bare = re.sub(r"/[\w/.-]*", " ", bare)  # a link's path shown as its text
    return re.findall(r"[^\W\d_]{2,}", bare)


def sentences_in_tags(source: str) -> list[str]:
    """String literals inside Jinja tags that read as a sentence (words and a space), not a key."""
    literals = [s for tag in JINJA.findall(source) for _, s in re.findall(r"""(["'])(.*?)\1""", tag)]
    return [s for s in literals if re.search(r"[^\W\d_]{2,} [^\W\d_]{2,}", s) and "%" not in s]


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.name for t in TEMPLATES])
def test_a_template_holds_no_words_of_its_own(template: Path):
    source = template.read_text(encoding="utf-8")
    assert words_outside_tags(source) == [], f"{template.name}: put these words in checks/messages/pages.toml"
    assert sentences_in_tags(source) == [], f"{template.name}: a sentence inside a tag"


def test_the_template_scan_sees_a_word_and_a_sentence_when_there_is_one():
    """Control: the scan is not blind."""
    assert words_outside_tags('<p class="x">Queue of {{ n }}</p>') == ["Queue", "of"]
    assert words_outside_tags('<p>{{ w("queue_title") }} &middot; <a href="/queue">/queue</a></p>') == []
    assert sentences_in_tags('{{ "not graded yet" if x }}') == ["not graded yet"]
    assert sentences_in_tags('{{ w("queue_title") }}') == []


def _python_sources() -> list[Path]:
    return sorted(p for d in ("grader", "checks") for p in (ROOT / d).rglob("*.py"))


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def _russian(literal: str) -> bool:
    return bool(CYRILLIC.search(re.sub(r"\[[^\]]*\]", "", literal)))


def test_no_python_module_writes_russian_of_its_own():
    """Russian only in the catalogue: a sentence built in code would have no English twin and
    no plural forms."""
    found = [f"{p.relative_to(ROOT)}:{line}: {text[:60]!r}" for p in _python_sources()
             for line, text in _string_literals(p) if _russian(text)]
    assert found == []


def test_the_russian_scan_sees_russian_when_there_is_some(tmp_path: Path):
    probe = tmp_path / "probe.py"
    probe.write_text('"""Модуль."""\nMESSAGE = "не засчитано"\nSENTENCE = r"(?=[А-Я])"\n', encoding="utf-8")
    # neither the docstring nor a regular expression's letter class (grader/digest.py splits sentences so)
    assert [t for _, t in _string_literals(probe) if _russian(t)] == ["не засчитано"]
