"""Words worked out as BuildKit does before it acts on them: variables substituted and quotes
removed in ADD/COPY/FROM/ARG/ENV words, and the ARGs BuildKit sets by itself. Written here because
no Python library reproduces BuildKit's shell lexer (the `dockerfile` package parses but does
not expand), and the policy gate must see the value the engine would fetch, not its spelling."""

from __future__ import annotations

import platform
from collections.abc import Mapping


class Unclear(ValueError):
    """A variable expansion the gate cannot work out (an operator BuildKit versions differ on)."""


def platform_args() -> dict[str, str]:
    """The ARGs BuildKit sets by itself for FROM lines (and for `ARG NAME` without a value)."""
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(platform.machine(), platform.machine())
    values = {"PLATFORM": f"linux/{arch}", "OS": "linux", "ARCH": arch, "VARIANT": ""}
    return {f"{side}{key}": value for side in ("BUILD", "TARGET") for key, value in values.items()}


def expand(word: str, values: Mapping[str, str], escape: str = "\\") -> str:
    """`word` with variables substituted and quotes removed, as BuildKit expands ADD/COPY/FROM/ARG/
    ENV words: `$NAME`, `${NAME}`, `${NAME:-word}`, `${NAME:+word}`, `${NAME-word}`, `${NAME+word}`.
    Other operators (`#`, `%`, `/`, `?`) differ between BuildKit versions: Unclear."""
    return _Lexer(word, values, escape).word()


class _Lexer:
    def __init__(self, text: str, values: Mapping[str, str], escape: str) -> None:
        self.text, self.pos, self.values, self.escape = text, 0, values, escape

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def take(self) -> str:
        ch = self.peek()
        self.pos += 1
        return ch

    def word(self, stop: str = "") -> str:
        out = []
        while self.peek() and self.peek() != stop:
            ch = self.peek()
            if ch == "'":
                out.append(self._single())
            elif ch == '"':
                out.append(self._double())
            elif ch == "$":
                out.append(self._dollar())
            elif ch == self.escape:
                self.take()
                out.append(self.take())  # an escape at the very end is dropped
            else:
                out.append(self.take())
        if stop and not self.take():
            raise Unclear(f"no closing {stop}")
        return "".join(out)

    def _single(self) -> str:
        self.take()
        end = self.text.find("'", self.pos)
        if end < 0:
            raise Unclear("unterminated quote")
        out, self.pos = self.text[self.pos:end], end + 1
        return out

    def _double(self) -> str:
        self.take()
        out = []
        while self.peek() != '"':
            ch = self.peek()
            if not ch:
                raise Unclear("unterminated quote")
            if ch == "$":
                out.append(self._dollar())
                continue
            self.take()
            if ch == self.escape and self.peek() in ('"', "$", self.escape) and self.peek():
                ch = self.take()
            out.append(ch)
        self.take()
        return "".join(out)

    def _name(self) -> str:
        start = self.pos
        if self.peek().isdigit():
            while self.peek().isdigit():
                self.take()
        else:
            while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
                self.take()
        return self.text[start:self.pos]

    def _dollar(self) -> str:
        self.take()
        if self.peek() != "{":
            name = self._name()
            return self.values.get(name, "") if name else "$"
        self.take()
        name = self._name()
        if not name:
            raise Unclear("bad substitution")
        op = self.take()
        if op == "}":
            return self.values.get(name, "")
        if op == ":" and self.peek() in ("-", "+"):
            op += self.take()
        if op not in (":-", ":+", "-", "+"):
            raise Unclear(f"operator {op!r}")
        alternative = self.word(stop="}")
        value = self.values.get(name)
        if op == ":-":
            return value or alternative
        if op == ":+":
            return alternative if value else ""
        if op == "-":
            return alternative if value is None else value
        return alternative if value is not None else ""
