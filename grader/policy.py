"""The policy gate, between parsing and building: what a Dockerfile would make the engine fetch
or read on the student's behalf is refused before anything is sent to the engine.

Why a gate and not a wall: BuildKit inside dockerd fetches `ADD <url>` and git sources, the
frontend a `# syntax=` line names, and every FROM image, from the engine's own network namespace,
which is the host's; the walls around RUN steps and containers (per-job internal networks, INPUT
DROP on the bridges) do not apply to it. It also reads any image in its store for
`COPY --from=<image>` and `RUN --mount=from=<image>`: other students' images and the grader's own.
So those instructions are found here, each with its line, as a verdict (checks/policy.py), and a
refused variant is never built. The rules are data: the assignment's `[policy]`.

Variables are worked out as BuildKit does (ARG, ENV, the base image's ENV, the automatic platform
ARGs; no build args are ever passed). Docker's documented scoping and engine 20.10's code differ
in places, so a word is expanded under both readings; a value the gate cannot work out is itself
refused, and a source referring to any definition that looks like a URL is refused too.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile as buildkit_parser

from grader.assignment import Assignment, Policy
from grader.buildfile import directives, escape_char, prepare
from grader.errors import GraderError
from grader.expansion import Unclear, expand, platform_args
from grader.facts import PolicyFacts, PolicyFinding

__all__ = ["RULES", "Unclear", "allowed_bases", "expand", "frontend_allowed", "gate", "looks_remote", "review"]

# Every rule the gate applies: the reasons checks/policy.py may fail with.
RULES = ("frontend", "external_base", "remote_source", "copy_from_image", "mount_from_image", "mount_type",
         "flag_not_allowed", "onbuild", "unclear_value")
_REMOTE = (
    re.compile(r"^[a-z][a-z0-9+.-]*://", re.I),  # http://, https://, git://, ssh://, ...
    re.compile(r"^[\w.-]+@[\w.-]+:"),  # scp-like git: git@github.com:org/repo.git
    re.compile(r"^[\w-]+(\.[\w-]+)+(:\d+)?/\S*\.git(#\S*)?$", re.I),  # github.com/org/repo.git
    re.compile(r"^(github\.com|gitlab\.com|bitbucket\.org)/", re.I),  # what newer BuildKit treats as git
)
_REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")
_UNKNOWN = "\x00"  # stands for a value the gate could not work out; any word holding it is unclear
_HUB_PREFIXES = ("docker.io/library/", "index.docker.io/library/", "registry-1.docker.io/library/",
                 "docker.io/", "index.docker.io/", "library/")
_FETCH_FLAGS = ("checksum", "keep-git-dir")  # only mean something for a remote source: named by that finding
_HEREDOC_WORD = re.compile(r"\d*<<(-?)([\"']?)(\w+)\2")
EVIDENCE_LINES = 6  # of a long instruction, the first lines are enough to point at it


# -- entry points -----------------------------------------------------------------------------------
def allowed_bases(assignment: Assignment) -> tuple[str, ...]:
    return assignment.policy.allowed_base_images or (assignment.base_image,)


def gate(dockerfile: Path, assignment: Assignment, base_env: Mapping[str, Sequence[str]],
         copy_to: Path, cache_scope: str | None = None) -> PolicyFacts:
    """Reviews the student's file; when nothing is refused, writes the copy the engine builds.

    `base_env` holds the config Env (NAME=value) of each allowed base image, as the engine has it:
    ENV values of the base take part in variable expansion. `cache_scope` (one per grading) keeps
    the build's cache mounts apart from every other grading's (grader/buildfile.py)."""
    text = dockerfile.read_bytes().decode("utf-8")
    findings = review(text, assignment, base_env)
    if findings:
        return PolicyFacts(findings=findings)
    copy = prepare(text, cache_scope)
    if review(copy.text, assignment, base_env):  # what is sent is what was judged
        raise GraderError("the Dockerfile copy for the engine fails the policy its original passed "
                          "(grader bug in grader/buildfile.py)")
    copy_to.parent.mkdir(parents=True, exist_ok=True)
    copy_to.write_bytes(copy.text.encode("utf-8"))
    return PolicyFacts(changes=list(copy.changes), buildfile=copy_to)


def review(text: str, assignment: Assignment, base_env: Mapping[str, Sequence[str]] | None = None
           ) -> list[PolicyFinding]:
    """Everything in `text` the policy refuses, in line order; empty: the file may be built."""
    policy = assignment.policy
    found = _review_directives(text, policy)
    walk = _Walk(policy, allowed_bases(assignment), _env_maps(base_env or {}), escape_char(text),
                 text.removeprefix("\ufeff").split("\n"))
    for command in buildkit_parser.parse_string(text):
        found.extend(walk.visit(command))
    return sorted(found, key=lambda f: f.line)


def frontend_allowed(ref: str, allowed: Sequence[str]) -> bool:
    """`docker/dockerfile:1` allows `docker/dockerfile:1`, `:1.4`, `:1.4.3` and their digests."""
    name = _normalise(ref.split("@", 1)[0])
    return any(name == _normalise(a) or re.fullmatch(re.escape(_normalise(a)) + r"(\.\d+)+", name)
               for a in allowed)


def looks_remote(source: str) -> bool:
    """A URL or git repository, in any of the spellings some BuildKit version fetches."""
    text = source.strip()
    return any(p.search(text) for p in _REMOTE)


# -- directives -------------------------------------------------------------------------------------
def _review_directives(text: str, policy: Policy) -> list[PolicyFinding]:
    lines = text.removeprefix("\ufeff").split("\n")
    found = []
    for d in directives(text):
        if d.key == "syntax" and not frontend_allowed(d.value, policy.allowed_frontends):
            found.append(PolicyFinding("frontend", d.line, lines[d.line - 1].strip(),
                                       {"frontend": d.value, "allowed": ", ".join(policy.allowed_frontends)}))
    return found


# -- the walk over the instructions -----------------------------------------------------------------
@dataclass
class _Scope:
    """Variables in effect in a stage, under one reading of Docker's rules.

    documented: ENV beats an ARG of the same name, and only ENV passes to a stage built FROM this
    one. engine 20.10 (BuildKit 0.8): an ARG is added to the build state's environment, so the
    later of ARG and ENV wins, and ARGs pass to child stages too."""

    documented: bool
    env: dict[str, str] = field(default_factory=dict)
    args: dict[str, str] = field(default_factory=dict)

    def values(self) -> dict[str, str]:
        return {**self.args, **self.env}

    def child(self) -> _Scope:
        return _Scope(self.documented, dict(self.env), {} if self.documented else dict(self.args))

    def set_arg(self, name: str, value: str) -> None:
        if self.documented:
            self.args[name] = value
        else:
            self.env[name] = value


@dataclass
class _Stage:
    index: int
    name: str | None
    scopes: tuple[_Scope, _Scope]


class _Walk:
    def __init__(self, policy: Policy, bases: tuple[str, ...], base_env: dict[str, dict[str, str]],
                 escape: str, lines: list[str]) -> None:
        self.policy, self.bases, self.base_env, self.escape, self.lines = policy, bases, base_env, escape, lines
        self.meta: dict[str, str] = platform_args()  # what FROM lines see: automatic and global ARGs
        self.stages: list[_Stage] = []
        # Every value any variable is given anywhere: a fetch word referring to a name whose any
        # definition looks remote is refused, whatever the scoping rules turn out to be.
        self.definitions: dict[str, list[str]] = {}
        for env in base_env.values():
            for name, value in env.items():
                self.definitions.setdefault(name, []).append(value)

    def visit(self, c: buildkit_parser.Command) -> list[PolicyFinding]:
        cmd = c.cmd.upper()
        if cmd == "ONBUILD":
            # Its instructions run in a later build, in a scope the gate would have to guess.
            return [self._finding("onbuild", c)]
        found = self._flags(c, cmd)
        if cmd == "FROM":
            found += self._from(c)
        elif cmd == "ARG" and not self.stages:
            self._global_arg(c)
        elif cmd == "ARG":
            self._stage_arg(c)
        elif cmd == "ENV":
            self._env(c)
        elif cmd in ("ADD", "COPY"):
            found += self._sources(c, cmd)
        return found

    # -- variables ---------------------------------------------------------------------------------
    def _define(self, name: str, raw: str, value: str) -> None:
        self.definitions.setdefault(name, []).extend((raw, value))

    def _global_arg(self, c: buildkit_parser.Command) -> None:
        for word in c.value:
            name, eq, default = word.partition("=")
            if eq:
                value = self._expand_or_unknown(default, self.meta)
                self.meta[name] = value
                self._define(name, default, value)

    def _stage_arg(self, c: buildkit_parser.Command) -> None:
        for word in c.value:
            name, eq, default = word.partition("=")
            for scope in self.stages[-1].scopes:
                if eq:
                    value = self._expand_or_unknown(default, scope.values())
                    self._define(name, default, value)
                elif name in self.meta:
                    value = self.meta[name]
                else:
                    continue  # declared without a value: unset
                scope.set_arg(name, value)

    def _env(self, c: buildkit_parser.Command) -> None:
        pairs = list(zip(c.value[0::2], c.value[1::2], strict=False))
        for scope in self.stages[-1].scopes:
            before = scope.values()  # every pair of one ENV sees the values from before it
            for name, raw in pairs:
                value = self._expand_or_unknown(raw, before)
                scope.env[name] = value
                self._define(name, raw, value)

    def _expand_or_unknown(self, word: str, values: Mapping[str, str]) -> str:
        try:
            return expand(word, values, self.escape)
        except Unclear:
            return _UNKNOWN

    def _expansions(self, word: str, meta_only: bool = False) -> list[str]:
        """`word` under each reading of the rules; raises Unclear when one cannot be worked out."""
        maps = [self.meta] if meta_only or not self.stages else [s.values() for s in self.stages[-1].scopes]
        results = [expand(word, m, self.escape) for m in maps]
        if any(_UNKNOWN in r for r in results):
            raise Unclear(word)
        return results

    # -- FROM ----------------------------------------------------------------------------------------
    def _from(self, c: buildkit_parser.Command) -> list[PolicyFinding]:
        raw = c.value[0] if c.value else ""
        name = c.value[2].lower() if len(c.value) >= 3 and c.value[1].upper() == "AS" else None
        found: list[PolicyFinding] = []
        try:
            image = self._expansions(raw, meta_only=True)[0]  # FROM sees only the global ARGs
        except Unclear:
            image = None
            found.append(self._finding("unclear_value", c, word=raw))
        parent = self._stage(image, by_index=False) if image is not None else None  # FROM 0 is an image
        if parent is not None:
            scopes = (parent.scopes[0].child(), parent.scopes[1].child())
        else:
            env = self._base_env(image) if image is not None else None
            if image is not None and image.lower() != "scratch" and env is None:
                found.append(self._finding("external_base", c, image=image, expected=", ".join(self.bases)))
            scopes = (_Scope(True, dict(env or {})), _Scope(False, dict(env or {})))
        self.stages.append(_Stage(len(self.stages), name, scopes))
        return found

    def _stage(self, ref: str, by_index: bool = True) -> _Stage | None:
        """An earlier stage by name (BuildKit compares names case-insensitively) or by index."""
        if ref.isdigit() and by_index:
            index = int(ref)
            return self.stages[index] if index < len(self.stages) else None
        return next((s for s in self.stages if s.name is not None and s.name == ref.lower()), None)

    def _base_env(self, image: str) -> dict[str, str] | None:
        """The allowed base `image` is (its Env), or None when it is none of them."""
        for base in self.bases:
            if _normalise(image) == _normalise(base):
                return self.base_env.get(_normalise(base), {})
        return None

    # -- ADD / COPY --------------------------------------------------------------------------------
    def _sources(self, c: buildkit_parser.Command, cmd: str) -> list[PolicyFinding]:
        found = []
        for source in (s for s in c.value[:-1] if not _is_heredoc(s, c)):
            try:
                candidates = [source, *self._expansions(source)]
            except Unclear:
                return [self._finding("unclear_value", c, word=source)]
            candidates += [v for n in _REFERENCE.findall(source) for v in self.definitions.get(n, ())]
            remote = [s for s in candidates if looks_remote(s) and not self._url_allowed(s)]
            if remote:
                shown = next((s for s in candidates[1:] if s in remote), remote[0])
                found.append(self._finding("remote_source", c, cmd=cmd, source=shown.strip()))
                break
        return found

    def _url_allowed(self, source: str) -> bool:
        return any(source.strip().startswith(p) for p in self.policy.allowed_url_prefixes)

    # -- flags -------------------------------------------------------------------------------------
    def _flags(self, c: buildkit_parser.Command, cmd: str) -> list[PolicyFinding]:
        allowed = self.policy.flags_for(cmd)
        found = []
        for flag in c.flags:
            name, _, value = flag.removeprefix("--").partition("=")
            name = name.lower()
            if name not in allowed:
                if not (cmd == "ADD" and name in _FETCH_FLAGS and self._any_remote(c)):
                    found.append(self._finding("flag_not_allowed", c, cmd=cmd, flag=name))
            elif name == "from":
                found += self._stage_ref("copy_from_image", c, value)
            elif name == "mount":
                found += self._mount(c, value)
        return found

    def _any_remote(self, c: buildkit_parser.Command) -> bool:
        return bool(self.stages) and bool(self._sources(c, c.cmd.upper()))

    def _stage_ref(self, rule: str, c: buildkit_parser.Command, ref: str) -> list[PolicyFinding]:
        # Literal stage names only: some BuildKit versions expand variables here, some do not,
        # and a name that is no stage is an image from the engine's store.
        if "$" not in ref and self._stage(ref) is not None:
            return []
        return [self._finding(rule, c, ref=ref)]

    def _mount(self, c: buildkit_parser.Command, spec: str) -> list[PolicyFinding]:
        options = _mount_options(spec)
        kind = options.get("type", "bind")
        if "$" in kind or kind not in self.policy.allowed_mount_types:
            return [self._finding("mount_type", c, type=kind, allowed=", ".join(self.policy.allowed_mount_types))]
        if "from" in options:
            return self._stage_ref("mount_from_image", c, options["from"])
        return []

    def _finding(self, rule: str, c: buildkit_parser.Command, **params: str) -> PolicyFinding:
        own = self.lines[c.start_line - 1:c.end_line][:EVIDENCE_LINES]
        return PolicyFinding(rule, c.start_line, "\n".join(ln.rstrip() for ln in own), dict(params))


def _is_heredoc(word: str, c: buildkit_parser.Command) -> bool:
    """`<<EOF` in `COPY <<EOF /dest`: a document written in the file, not a source to fetch."""
    match = _HEREDOC_WORD.fullmatch(word)
    return match is not None and match.group(3) in {h.name for h in c.heredocs}


def _mount_options(spec: str) -> dict[str, str]:
    """`type=cache,target=/x` as BuildKit reads it (CSV, keys case-insensitive, bare keys = true)."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error:
        fields = spec.split(",")
    options = {}
    for item in fields:
        key, _, value = item.partition("=")
        options[key.strip().lower()] = value.strip()
    return options


def _normalise(ref: str) -> str:
    """Docker Hub's long spellings of an image name reduced to the short one."""
    for prefix in _HUB_PREFIXES:
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def _env_maps(base_env: Mapping[str, Sequence[str]]) -> dict[str, dict[str, str]]:
    return {_normalise(image): dict(item.partition("=")[::2] for item in env) for image, env in base_env.items()}
