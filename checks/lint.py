"""hadolint's findings (facts.lint), narrowed to what the course teaches, as advice with line numbers.

Raw hadolint output is not shown: most of it is noise for a student, and some of it contradicts
the course's own recipe. Each finding is either advice in the course's words (ADVICE), dropped
for a stated reason (IGNORED, COVERED_BY, info/style levels), or, when hadolint calls it a warning
or an error and nobody here has judged it yet, passed on as hadolint's own message.
"""

from __future__ import annotations

import re

from checks import Evidence, Outcome, failed, passed, skipped, variant_check
from grader.assignment import Assignment
from grader.dockerfile import ParsedDockerfile
from grader.facts import LintFinding, VariantFacts

# Codes with advice of their own in messages/lint.toml ([hadolint], key = code), reported at any
# hadolint level: DL3059 is only "info" to hadolint, but layers are a lesson of the course.
ADVICE = frozenset({
    "DL3006",  # FROM without a tag
    "DL3007",  # FROM ...:latest
    "DL3025",  # CMD/ENTRYPOINT in shell form
    "DL4003",  # several CMD: only the last counts
    "DL4004",  # several ENTRYPOINT: only the last counts
    "DL3002",  # the last USER is root
    "DL3042",  # pip install without --no-cache-dir: the cache stays in the layer
    "DL3059",  # consecutive RUN: a layer each
    "DL3020",  # ADD for local files instead of COPY
    "DL3045",  # COPY to a relative path without WORKDIR
    "DL3000",  # relative WORKDIR
    "DL3003",  # cd in RUN instead of WORKDIR
    "DL4006",  # a pipe in RUN without pipefail
    "DL3022",  # COPY --from a stage that does not exist
    "DL3064",  # a secret-looking name in ARG/ENV: kept in the image config and history
    "SC2034",  # a variable set in RUN and unused there: the course's "gone in the next RUN" mistake
})

# Never reported, whatever the level.
IGNORED = frozenset({
    # "Pin versions in pip install": the course's recipe itself installs `poetry setuptools wheel`
    # unpinned, and the final stage installs local wheel files; hadolint flags both.
    "DL3013",
    # "Pin versions in apt-get install": Debian drops old package versions from its mirrors, so
    # pinned builds break within weeks; the course does not ask for it.
    "DL3008",
    # Unquoted $var / $(...) in RUN: installing "every wheel found in dist" relies on word
    # splitting (`pip install $(find dist -name '*.whl')`); quoting it, as hadolint suggests,
    # would hand pip one nonexistent file name.
    "SC2086",
    "SC2046",
    # "Non-numeric user-id": `USER app` is the course's recipe.
    "DL3066",
})

# hadolint could not parse the file, and then reports nothing else. BuildKit's parser (the
# `parsed` check) is the authority on syntax; hadolint's lags behind it (e.g. heredocs).
UNPARSED = "DL1000"

# Codes another check judges more precisely: when the variant's rubric (required or advisory)
# has that check, the student hears it once, from that check. runs_as_root is there because that
# rubric wants root: "do not run as root" would contradict it. Another course's rubric without
# those checks still gets the advice from here.
COVERED_BY = {
    "DL3006": ("base_image",),
    "DL3007": ("base_image",),
    "DL3025": ("exec_form",),
    "DL3002": ("final_user_nonroot", "runs_as_root"),
    "DL3042": ("pip_no_cache",),
    "DL3059": ("layers_chained",),
    "SC2034": ("run_variables",),
    "DL3064": ("no_secrets",),
}

REPORTED_LEVELS = ("error", "warning")  # for codes nobody here has judged; info and style are noise
MAX_LISTED = 5  # advice items in the message; the evidence shows the same lines
MAX_MESSAGE = 160  # characters of hadolint's own message kept for an unjudged code

_UNUSED = re.compile(r"^(\S+) appears unused")
# `cd` as a command of a chained RUN, and its argument.
_CD = re.compile(r"(?:^|&&|\|\||;)\s*cd(?:\s+(\S+))?\s*(?=&&|\|\||;|$)")
# cd targets that leave a directory rather than enter one: the lecture's `&& cd / && rm -rf /build`
# steps out of the build directory it removes in the same RUN, which no WORKDIR can do.
_LEAVING = {"/", "..", "-", "~", None}


@variant_check("hadolint", reads=("lint", "parsed", "policy"),
               reasons=("findings", "no_dockerfile", "not_run", "ok", "unparsed"),
               item_reasons=ADVICE | {"other", "more"})
def hadolint(v: VariantFacts, a: Assignment) -> Outcome:
    if v.dockerfile_path is None:
        return skipped("no_dockerfile")
    if v.lint is None:
        return skipped("not_run")
    unparsed = next((f for f in v.lint if f.code == UNPARSED), None)
    if unparsed is not None:
        return skipped("unparsed", line=unparsed.line)
    covered = _covering_checks(v.name, a)
    # A line the policy gate refused is build_policy's to explain (hadolint would call `ADD ${URL}`
    # "ADD for a local file"): one mistake, one message.
    refused = {f.line for f in v.policy.findings} if v.policy is not None else set()
    items, seen = [], set()
    for finding in v.lint:
        if finding.line in refused:
            continue
        item = _item(finding, v.parsed, covered, a)
        if item is not None and (finding.code, finding.line) not in seen:
            seen.add((finding.code, finding.line))
            items.append(item)
    if not items:
        return passed("ok")
    listed = items[:MAX_LISTED]
    evidence = _evidence(v.parsed, [i["line"] for i in listed])
    if len(items) > MAX_LISTED:
        listed.append({"reason": "more", "rest": len(items) - MAX_LISTED})
    return failed("findings", evidence, count=len(items), items=listed)


def _covering_checks(variant: str, a) -> set[str]:
    rubric = next((r for r in a.variants if r.name == variant), None)
    return set(rubric.required + rubric.advisory) if rubric else set()


def _item(f: LintFinding, parsed: ParsedDockerfile | None, covered: set[str], a) -> dict | None:
    """The advice for one finding as {"reason": key in [hadolint], **placeholders}, or None."""
    if f.code in IGNORED or covered.intersection(COVERED_BY.get(f.code, ())):
        return None
    item = {"reason": f.code, "code": f.code, "line": f.line}
    if f.code == "DL3025" and _cmd_at(parsed, f.line) == "HEALTHCHECK":
        return None  # a shell-form HEALTHCHECK is fine: it is not PID 1
    if f.code == "DL3003":
        cd = _cd_line(parsed, f.line)
        if cd is None:
            return None  # every cd of that RUN leaves a directory: "use WORKDIR" would be false advice
        item["line"] = cd  # the cd's own physical line of a chained RUN
    if f.code in ("DL3006", "DL3007"):
        item["base"] = a.base_image
    if f.code == "SC2034":
        match = _UNUSED.match(f.message)
        if match:
            item["name"] = match.group(1)
            return item
    elif f.code in ADVICE:
        return item
    if f.level not in REPORTED_LEVELS:
        return None
    message = f.message.strip().splitlines()[0] if f.message.strip() else ""
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - 1] + "…"
    return {"reason": "other", "code": f.code, "line": f.line, "message": message}


def _cd_line(parsed: ParsedDockerfile | None, line: int) -> int | None:
    """The physical line of the first `cd` into a directory in the RUN at `line` (hadolint names the
    RUN's first line); None when every cd there leaves one (`cd /`, `cd ..`)."""
    ins = parsed.instruction_at(line) if parsed is not None else None
    if ins is None:
        return line
    if all(m.group(1) in _LEAVING for m in _CD.finditer(ins.command)):
        return None
    for offset, text in enumerate(ins.physical):
        if any(m.group(1) not in _LEAVING for m in _CD.finditer(text.rstrip("\\ "))):
            return ins.line + offset
    return line


def _cmd_at(parsed: ParsedDockerfile | None, line: int) -> str | None:
    for stage in parsed.stages if parsed else ():
        if stage.line == line:
            return "FROM"
        for ins in stage.instructions:
            if ins.line <= line <= ins.end_line:
                return ins.cmd
    return None


def _evidence(parsed: ParsedDockerfile | None, lines: list[int]) -> tuple[Evidence, ...]:
    """The Dockerfile text at each line (once per line, in file order), as the parser read it."""
    if parsed is None:
        return ()
    found: dict[int, Evidence] = {}
    for stage in parsed.stages:
        if stage.line in lines:
            alias = f" AS {stage.name}" if stage.name else ""
            found.setdefault(stage.line, Evidence("dockerfile", f"FROM {stage.base}{alias}", stage.line))
        for ins in stage.instructions:
            for line in lines:
                if line == ins.line:
                    found.setdefault(line, Evidence.at(ins))
                elif ins.line < line <= ins.end_line and len(ins.physical) > line - ins.line:
                    # a sub-command's own physical line of a chained RUN, as written
                    found.setdefault(line, Evidence.at(ins, line, ins.physical[line - ins.line].strip()))
    return tuple(found[line] for line in sorted(found))
