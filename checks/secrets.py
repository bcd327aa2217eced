"""No secrets in build arguments, ENV or the image: they stay in its config and history for good.

Looks at names (ARG/ENV called *_TOKEN, *_PASSWORD, ...) and at values shaped like well-known
tokens, in the Dockerfile, the image config's Env and the image history (where BuildKit records
the build arguments of every RUN step). An outcome names what it found and where, never a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from grader.assignment import Assignment
from grader.dockerfile import Instruction
from grader.facts import VariantFacts

REDACTED = "***"

# One word of a NAME_LIKE_THIS that makes it a secret: DB_PASSWORD, GITLAB_TOKEN, DBPASSWORD, ...
_SECRET_WORD = re.compile(r"[A-Z0-9]*(PASSWORD|PASSWD|PASSPHRASE|TOKEN|SECRET|CREDENTIAL|APIKEY)S?|CREDS")
# KEY is a secret after most words (API_KEY, SSH_KEY, PRIVATE_KEY), but not after these.
_PUBLIC_KEY_WORDS = {"GPG", "PGP", "PUBLIC", "PUB", "CACHE", "SORT", "PRIMARY", "FOREIGN", "PARTITION", "ROUTING"}
# A last word that makes the variable about a secret rather than the secret itself:
# POSTGRES_PASSWORD_FILE=/run/secrets/db is the right way, TOKEN_URL is an address.
_SAFE_LAST_WORDS = {"FILE", "PATH", "DIR", "URL", "URI", "ENDPOINT", "HOST", "NAME", "ID", "TYPE", "LENGTH", "LEN",
                    "SIZE", "TTL", "EXPIRY", "EXPIRES", "ENABLED", "HEADER", "FIELD", "MODE", "ALGORITHM", "VERSION"}

# (label shown instead of the value, pattern of the value)
_TOKEN_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("glpat-…", re.compile(r"\bgl(?:pat|dt|rt|ptt|cbt|oas|soat)-[0-9A-Za-z_-]{20,}")),
    ("github_pat_…", re.compile(r"\bgithub_pat_[0-9A-Za-z_]{22,}")),
    ("ghp_…", re.compile(r"\bgh[pousr]_[0-9A-Za-z]{36,}")),
    ("AKIA…", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("PRIVATE KEY", re.compile(r"-----BEGIN[A-Z ]*PRIVATE KEY-----(?:.*?-----END[A-Z ]*PRIVATE KEY-----|.*)",
                               re.DOTALL)),
    ("user:***@", re.compile(r"(?<=://)[^\s/:@$]+:(?!\$)[^\s/@]+(?=@)")),  # https://user:password@host
)

_HISTORY_RUN_ARGS = re.compile(r"^(?:RUN\s+)?\|(\d+)\s+(.*)$", re.DOTALL)  # RUN |2 A=b C=d /bin/sh -c ...
_HISTORY_ENV_ARG = re.compile(r"^(?:/bin/sh -c #\(nop\)\s+)?(ENV|ARG)\s+(.*)$", re.DOTALL)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_secret_name(name: str) -> bool:
    words = [w for w in name.upper().split("_") if w]
    if not words or words[-1] in _SAFE_LAST_WORDS:
        return False
    for i, word in enumerate(words):
        if _SECRET_WORD.fullmatch(word):
            return True
        if word in ("KEY", "KEYS") and i > 0 and words[i - 1] not in _PUBLIC_KEY_WORDS:
            return True
        if word in ("PWD", "PAT") and i > 0:  # MYSQL_PWD, GITLAB_PAT; PWD alone is the working directory
            return True
    return False


def _token_matches(text: str) -> list[tuple[str, str]]:
    """(label, matched value) for every token-shaped value in `text`."""
    return [(label, m.group(0)) for label, shape in _TOKEN_SHAPES for m in shape.finditer(text)]


@dataclass
class _Finding:
    label: str  # the variable's name, or the kind of token: what the student is told
    line: int | None = None
    evidence: list[Evidence] = field(default_factory=list)


class _Findings:
    def __init__(self) -> None:
        self.by_key: dict[str, _Finding] = {}
        self.values: dict[str, str] = {}  # every secret value seen -> its finding, to scrub and to merge

    def add(self, key: str, label: str, line: int | None, evidence: Evidence) -> None:
        found = self.by_key.setdefault(key, _Finding(label))
        if found.line is None:
            found.line = line
        if evidence not in found.evidence:
            found.evidence.append(evidence)

    def keep_value(self, value: str | None, key: str) -> None:
        value = (value or "").strip().strip("\"'")
        if len(value) >= 3:
            self.values.setdefault(value, key)

    def key_for(self, token: str) -> str:
        """A token overlapping a value already found (in it, or around it) belongs to that finding."""
        return next((key for value, key in self.values.items() if token in value or value in token),
                    "value:" + token)

    def scrub(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


def _name_key(name: str) -> str:
    return "name:" + name.upper()


def _pairs(ins: Instruction) -> list[tuple[str, str | None]]:
    """(name, value or None) of an ARG or ENV instruction."""
    if ins.cmd == "ENV":
        return list(zip(ins.args[0::2], ins.args[1::2], strict=False))
    return [(name, value if eq else None) for name, eq, value in (a.partition("=") for a in ins.args)]


def _dockerfile(parsed, found: _Findings, declared: dict[str, int]) -> None:
    instructions = list(parsed.preamble) + [ins for stage in parsed.stages for ins in stage.instructions]
    for ins in instructions:
        if ins.cmd not in ("ARG", "ENV"):
            for label, token in _token_matches(ins.original):
                key = found.key_for(token)
                found.keep_value(token, key)
                found.add(key, label, ins.line, Evidence.at(ins))
            continue
        for name, value in _pairs(ins):
            declared.setdefault(name.upper(), ins.line)
            shown = Evidence("dockerfile", f"{ins.cmd} {name}" if value is None else f"{ins.cmd} {name}={REDACTED}",
                             ins.line)
            if is_secret_name(name):
                found.keep_value(value, _name_key(name))
                found.add(_name_key(name), name, ins.line, shown)
                continue
            for _label, token in _token_matches(value or ""):
                key = found.key_for(token)
                found.keep_value(token, key)
                found.add(key, name, ins.line, shown)


def _image(image, found: _Findings, declared: dict[str, int]) -> None:
    for entry in image.env:
        name, _, value = entry.partition("=")
        shown = Evidence("observed", f"image config Env: {name}={REDACTED}")
        if is_secret_name(name):
            found.keep_value(value, _name_key(name))
            found.add(_name_key(name), name, declared.get(name.upper()), shown)
        for _label, token in _token_matches(value):
            key = found.key_for(token)
            found.keep_value(token, key)
            found.add(key, name, declared.get(name.upper()), shown)
    for entry in image.history:
        for name, value in _history_pairs(entry):
            if is_secret_name(name):
                found.keep_value(value, _name_key(name))
                found.add(_name_key(name), name, declared.get(name.upper()),
                          Evidence("observed", f"image history: {name}={REDACTED}"))
        for label, token in _token_matches(entry):
            key = found.key_for(token)
            found.keep_value(token, key)
            what = f"{found.by_key[key].label}={REDACTED}" if key.startswith("name:") else label
            found.add(key, label, None, Evidence("observed", f"image history: {what}"))


def _history_pairs(entry: str) -> list[tuple[str, str | None]]:
    """The build arguments of a RUN step (`|2 A=b C=d /bin/sh -c ...`) or the names of an ENV/ARG step."""
    run = _HISTORY_RUN_ARGS.match(entry.strip())
    if run:
        words = run.group(2).split()[: int(run.group(1))]
    else:
        env_arg = _HISTORY_ENV_ARG.match(entry.strip())
        words = env_arg.group(2).split() if env_arg else []
    pairs = []
    for word in words:
        name, eq, value = word.partition("=")
        if _NAME.fullmatch(name):
            pairs.append((name, value if eq else None))
    return pairs


@variant_check("no_secrets", reads=("parsed", "image"), reasons=("found", "image", "not_parsed", "ok", "several"))
def no_secrets(v: VariantFacts, a: Assignment) -> Outcome:
    if v.parsed is None:
        return skipped("not_parsed")
    found = _Findings()
    declared: dict[str, int] = {}  # NAME -> first ARG/ENV line, to place what the image shows
    _dockerfile(v.parsed, found, declared)
    if v.image is not None:
        _image(v.image, found, declared)
    if not found.by_key:
        return passed("ok")
    findings = sorted(found.by_key.values(), key=lambda f: (f.line is None, f.line or 0))
    labels = list(dict.fromkeys(found.scrub(f.label) for f in findings))
    evidence = [Evidence(e.kind, found.scrub(e.text), e.line) for f in findings for e in f.evidence]
    if v.image is not None:
        evidence.append(Evidence("command", "docker history --no-trunc <image>"))
    first = findings[0]
    params = dict(name=labels[0], names=", ".join(labels), count=len(labels), line=first.line)
    if first.line is None:
        return failed("image", tuple(evidence), **params)
    return failed("found" if len(labels) == 1 else "several", tuple(evidence), **params)
