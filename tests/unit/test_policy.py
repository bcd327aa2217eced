"""The policy gate (grader/policy.py) and its check (checks/policy.py), on real Dockerfile text.

Every refusal has its allowed twin next to it, so a gate that refused everything (or nothing)
fails here. The engine-side proof (canaries never contacted) is tests/integration/test_policy.py.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from checks import VARIANT_CHECKS
from checks.hints import build_hint
from grader.assignment import Policy, load
from grader.dockerfile import parse_text
from grader.engine import BuildCli, private_docker_config
from grader.errors import ConfigError
from grader.facts import BuildfileChange, PolicyFacts, PolicyFinding
from grader.messages import message
from grader.policy import RULES, Unclear, expand, frontend_allowed, gate, looks_remote, review
from tests.unit.factories import BASE_ENV, passing_variant
from tests.unit.test_assignment import DEFAULT_TEXT, edited, write

A = load()
BASE = "FROM python:3.11.6-slim-bookworm\n"
ENV = {A.base_image: BASE_ENV}  # the official image's Env: PYTHON_GET_PIP_URL is a URL
REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "counter-backend"


def rules(text: str, assignment=A) -> list[tuple[str, int]]:
    return [(f.rule, f.line) for f in review(text, assignment, ENV)]


# -- what is refused, and its allowed twin --------------------------------------------------------
REFUSED = {
    "add http": (BASE + "ADD http://127.0.0.1:8000/loot.txt /loot.txt\n", "remote_source", 2),
    "add https, checksum": (BASE + "ADD --checksum=sha256:" + "0" * 64 + " https://example.org/x /x\n",
                            "remote_source", 2),
    "add git@": (BASE + "ADD git@github.com:course/counter.git /src\n", "remote_source", 2),
    "add .git, keep-git-dir": (BASE + "ADD --keep-git-dir=true https://gitlab.example/c/counter.git /src\n",
                               "remote_source", 2),
    "add git://": (BASE + "ADD git://10.0.0.1/counter /src\n", "remote_source", 2),
    "add host/path.git": (BASE + "ADD gitlab.example.edu/course/counter.git /src\n", "remote_source", 2),
    "add json form": (BASE + 'ADD ["http://169.254.169.254/latest/meta-data/", "/x"]\n', "remote_source", 2),
    "copy url": (BASE + "COPY https://example.org/x /x\n", "remote_source", 2),
    "syntax other": ("# syntax=127.0.0.1:5000/frontend\n" + BASE, "frontend", 1),
    "syntax unspaced": ("#syntax=docker/dockerfile-upstream:master\n" + BASE, "frontend", 1),
    "syntax with bom": ("\ufeff# syntax = evil/frontend:1\n" + BASE, "frontend", 1),
    "syntax after escape": ("# escape=`\n# syntax=evil/frontend\n" + BASE, "frontend", 2),
    "from registry": ("FROM 127.0.0.1:5000/x\n", "external_base", 1),
    "from other tag": ("FROM python:3.12-slim\n", "external_base", 1),
    "from digest": ("FROM python:3.11.6-slim-bookworm@sha256:" + "a" * 64 + "\n", "external_base", 1),
    "from number": (BASE + "FROM 0\n", "external_base", 2),  # an image named "0", not stage 0
    "from later stage": ("FROM later\nFROM python:3.11.6-slim-bookworm AS later\n", "external_base", 1),
    "copy from image": (BASE + "COPY --from=grader:latest /app /stolen\n", "copy_from_image", 2),
    "copy from other job": ("FROM python:3.11.6-slim-bookworm AS build\nFROM python:3.11.6-slim-bookworm\n"
                            "COPY --from=grader-0123456789ab-nonroot /app/dist /app/dist\n", "copy_from_image", 3),
    "copy from variable": ("FROM python:3.11.6-slim-bookworm AS build\nARG S=build\nCOPY --from=${S} /a /b\n",
                           "copy_from_image", 3),
    "copy from index ahead": (BASE + "COPY --from=1 /a /b\nFROM python:3.11.6-slim-bookworm\n",
                              "copy_from_image", 2),
    "mount from image": (BASE + "RUN --mount=type=bind,from=grader:latest,target=/m ls /m\n", "mount_from_image", 2),
    "mount cache from image": (BASE + "RUN --mount=type=cache,from=alpine,target=/c ls\n", "mount_from_image", 2),
    "mount secret": (BASE + "RUN --mount=type=secret,id=token cat /run/secrets/token\n", "mount_type", 2),
    "mount ssh": (BASE + "RUN --mount=type=ssh git ls-remote git@h:x\n", "mount_type", 2),
    "mount type variable": (BASE + "ARG T=secret\nRUN --mount=type=$T,id=x true\n", "mount_type", 3),
    "run network": (BASE + "RUN --network=host python -V\n", "flag_not_allowed", 2),
    "run security": (BASE + "RUN --security=insecure python -V\n", "flag_not_allowed", 2),
    "from platform": ("FROM --platform=linux/arm64 python:3.11.6-slim-bookworm\n", "flag_not_allowed", 1),
    "copy link": (BASE + "COPY --link . .\n", "flag_not_allowed", 2),
    "add checksum, local": (BASE + "ADD --checksum=sha256:" + "0" * 64 + " file.tar /x\n", "flag_not_allowed", 2),
    "onbuild": (BASE + "ONBUILD ADD http://127.0.0.1/x /x\n", "onbuild", 2),
    "unclear operator": (BASE + "ARG U=xhttp://h/x\nADD ${U#x} /x\n", "unclear_value", 3),
}
ALLOWED = {
    "add http": BASE + "ADD loot.txt /loot.txt\n",
    "add https, checksum": BASE + "ADD --chown=1000:1000 archive.tar.gz /x\n",
    "add git@": BASE + "COPY counter.git/ /src\n",  # a local directory of that name
    "syntax other": "# syntax=docker/dockerfile:1\n" + BASE,
    "syntax unspaced": "#syntax=docker/dockerfile:1.4\n" + BASE,
    "syntax with bom": "\ufeff# syntax = docker.io/docker/dockerfile:1.4.3@sha256:" + "b" * 64 + "\n" + BASE,
    "syntax after an instruction": BASE + "# syntax=evil/frontend\n",  # a comment, not a directive
    "from registry": "FROM docker.io/library/python:3.11.6-slim-bookworm\n",
    "from other tag": "ARG V=3.11.6\nFROM python:${V}-slim-bookworm AS base\nFROM base\n",
    "from number": BASE.replace("\n", " AS b\n") + "FROM b\n",
    "copy from image": BASE.replace("\n", " AS build\n") + BASE + "COPY --from=build /app/dist /app/dist\n",
    "copy from index": BASE + BASE + "COPY --from=0 /app/dist /app/dist\n",
    "copy from, any case": BASE.replace("\n", " AS Build\n") + BASE + "COPY --from=BUILD /a /b\n",
    "mount from stage": BASE.replace("\n", " AS build\n") + BASE + "RUN --mount=from=build,target=/b ls /b\n",
    "mount cache": BASE + "RUN --mount=type=cache,target=/root/.cache/pip pip --version\n",
    "mount tmpfs, bind": BASE + "RUN --mount=type=tmpfs,target=/t --mount=target=/ctx ls /ctx\n",
    "healthcheck": BASE + "HEALTHCHECK --interval=5s --timeout=3s CMD python -c 1\n",
    "heredoc copy": BASE + "COPY <<EOF /app/url.txt\nhttp://example.org/\nEOF\n",
    "quoted local": BASE + "ARG F=notes.txt\nCOPY \"$F\" /notes.txt\n",
    "scratch": "FROM scratch\n",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_the_gate_refuses_with_the_line_and_the_rule(case):
    text, rule, line = REFUSED[case]

    assert rules(text)[:1] == [(rule, line)]


@pytest.mark.parametrize("case", sorted(ALLOWED))
def test_the_gate_lets_the_allowed_twin_through(case):
    assert rules(ALLOWED[case]) == []


@pytest.mark.parametrize("name", ["Dockerfile.single", "Dockerfile.multistage", "Dockerfile.nonroot"])
def test_the_reference_solution_passes_the_gate(name):
    assert rules((REFERENCE / name).read_text()) == []


def test_a_remote_source_with_fetch_flags_is_one_finding_not_three():
    text = BASE + "ADD --checksum=sha256:" + "0" * 64 + " --keep-git-dir=true https://h/x.git /x\n"

    assert rules(text) == [("remote_source", 2)]


def test_every_finding_of_a_file_is_reported_in_line_order():
    text = "# syntax=evil/f\nFROM 127.0.0.1:5000/x\nADD http://h/x /x\nRUN --network=host true\n"

    assert rules(text) == [("frontend", 1), ("external_base", 2), ("remote_source", 3), ("flag_not_allowed", 4)]


# -- variables: what BuildKit would make of them ------------------------------------------------
SMUGGLED = {
    "global arg in FROM": "ARG REG=127.0.0.1:5000\nFROM ${REG}/python:3.11.6-slim-bookworm\n",
    "arg built url": BASE + "ARG HOST=127.0.0.1:8000\nARG URL=http://${HOST}/loot\nADD ${URL} /loot\n",
    "env url": BASE + "ENV U=http://127.0.0.1:8000/x\nADD $U /loot\n",
    "alternative value": BASE + "ARG X=1\nADD ${X:+http://127.0.0.1/} /loot\n",
    "default value": BASE + "ADD ${NOPE:-http://127.0.0.1/} /loot\n",
    "pieces": BASE + "ARG A=http: B=//127.0.0.1/x\nADD ${A}${B} /loot\n",
    "base image env": BASE + "ADD ${PYTHON_GET_PIP_URL} /get-pip.py\n",
    "global redeclared": "ARG U=http://127.0.0.1/x\n" + BASE + "ARG U\nADD $U /loot\n",
    "through a child stage": BASE.replace("\n", " AS a\n") + "ENV U=http://127.0.0.1/x\nFROM a\nADD $U /loot\n",
    "quoted default": BASE + 'ARG U="http://127.0.0.1/x"\nADD $U /loot\n',
    "platform arg": BASE + "ARG TARGETOS\nADD ${TARGETOS:+http://127.0.0.1/} /loot\n",
}


@pytest.mark.parametrize("case", sorted(SMUGGLED))
def test_values_smuggled_through_variables_are_resolved_before_deciding(case):
    found = review(SMUGGLED[case], A, ENV)

    assert [f.rule for f in found][:1] in (["remote_source"], ["external_base"])
    assert "127.0.0.1" in found[0].params.get("source", found[0].params.get("image", "")) or case == "base image env"


def test_the_message_names_what_the_variables_made_of_the_source():
    found = review(SMUGGLED["arg built url"], A, ENV)

    assert found[0].params == {"cmd": "ADD", "source": "http://127.0.0.1:8000/loot"}
    assert found[0].text == "ADD ${URL} /loot"


def test_variables_holding_local_paths_stay_allowed():
    text = BASE + "ARG APP=/app\nENV SRC=src\nWORKDIR ${APP}\nCOPY ${SRC} ${APP}/src\nCOPY --chown=${UID:-1000} a b\n"

    assert rules(text) == []


@pytest.mark.parametrize(("word", "values", "expected"), [
    ("$A/x", {"A": "a"}, "a/x"),
    ("${A}x", {"A": "a"}, "ax"),
    ("${A:-d}", {"A": ""}, "d"),
    ("${A-d}", {"A": ""}, ""),
    ("${A-d}", {}, "d"),
    ("${A:+alt}", {"A": "1"}, "alt"),
    ("${A:+alt}", {"A": ""}, ""),
    ("${A+alt}", {"A": ""}, "alt"),
    ("'$A'", {"A": "a"}, "$A"),
    ('"$A b"', {"A": "a"}, "a b"),
    ('"\\$A"', {"A": "a"}, "$A"),
    ("\\$A", {"A": "a"}, "$A"),
    ("${A:-${B}}", {"B": "b"}, "b"),
    ("$", {}, "$"),
    ("$UNSET", {}, ""),
])
def test_expand_works_words_out_as_buildkit_does(word, values, expected):
    assert expand(word, values) == expected


def test_expand_with_a_backtick_escape():
    assert expand("`$A", {"A": "a"}, escape="`") == "$A"
    assert expand("\\$A", {"A": "a"}, escape="`") == "\\a"


@pytest.mark.parametrize("word", ["${A#x}", "${A%x}", "${A/x/y}", "${A:?x}", "${A", "${}", "'open"])
def test_expand_refuses_what_buildkit_versions_disagree_on(word):
    with pytest.raises(Unclear):
        expand(word, {"A": "xa"})


@pytest.mark.parametrize(("source", "remote"), [
    ("http://h/x", True), ("HTTPS://h/x", True), ("git://h/r", True), ("ssh://git@h/r", True),
    ("git@github.com:o/r.git", True), ("github.com/o/r", True), ("gitlab.example.edu/o/r.git#main", True),
    ("src", False), ("./counter.git", False), ("dist/*.whl", False), ("127.0.0.1:8000/x", False),
])
def test_looks_remote(source, remote):
    assert looks_remote(source) is remote


@pytest.mark.parametrize(("ref", "allowed"), [
    ("docker/dockerfile:1", True), ("docker/dockerfile:1.4", True), ("docker/dockerfile:1.4.3", True),
    ("docker.io/docker/dockerfile:1", True), ("docker/dockerfile:1@sha256:" + "c" * 64, True),
    ("docker/dockerfile:10", False), ("docker/dockerfile:1-labs", False), ("docker/dockerfile-upstream:1", False),
    ("evil/dockerfile:1", False), ("127.0.0.1:5000/docker/dockerfile:1", False),
])
def test_frontend_allowed(ref, allowed):
    assert frontend_allowed(ref, ("docker/dockerfile:1",)) is allowed


# -- the policy is data -----------------------------------------------------------------------------
def test_an_allowed_url_prefix_lets_that_host_through_and_no_other():
    course = replace(A, policy=replace(A.policy, allowed_url_prefixes=("https://files.example.edu/course/",)))

    assert rules(BASE + "ADD https://files.example.edu/course/data.csv /d\n", course) == []
    assert rules(BASE + "ADD https://files.example.edu.evil.net/course/x /d\n", course) == [("remote_source", 2)]


def test_allowed_base_images_replace_the_base_image():
    other = replace(A, policy=replace(A.policy, allowed_base_images=("python:3.12-slim",)))

    assert rules("FROM python:3.12-slim\n", other) == []
    assert rules(BASE, other) == [("external_base", 1)]
    assert review(BASE, other)[0].params["expected"] == "python:3.12-slim"


def test_allowed_flags_and_mount_types_are_the_assignments():
    loose = replace(A, policy=replace(A.policy, allowed_mount_types=("bind", "secret"),
                                      allowed_flags=(("RUN", ("mount", "network")),)))

    assert rules(BASE + "RUN --network=none --mount=type=secret,id=x true\n", loose) == []
    assert rules(BASE + "RUN --mount=type=cache,target=/c true\n", loose) == [("mount_type", 2)]
    assert rules(BASE + "COPY --from=0 a b\n", loose) == [("flag_not_allowed", 2)]


def test_the_default_assignment_writes_the_defaults_out():
    assert A.policy == replace(Policy(), allowed_base_images=(A.base_image,))


def test_an_assignment_without_a_policy_table_gets_the_safe_defaults(tmp_path):
    start, end = DEFAULT_TEXT.index("[policy]\n"), DEFAULT_TEXT.index("[[probes]]")
    a = load(write(tmp_path, DEFAULT_TEXT[:start] + DEFAULT_TEXT[end:]))

    assert a.policy == Policy()
    assert rules("FROM 127.0.0.1:5000/x\n", a) == [("external_base", 1)]
    assert rules(BASE + "ADD http://h/x /x\n", a) == [("remote_source", 2)]
    assert rules(BASE, a) == []  # empty allowed_base_images: the base image


@pytest.mark.parametrize(("old", "new", "complaint"), [
    ("allowed_mount_types = [", "allowed_mount_type = [", "unknown keys"),
    ("allowed_url_prefixes = []", 'allowed_url_prefixes = ["https://files.example.edu"]', r"must be http\(s\)://HOST/"),
    ('allowed_mount_types = ["bind",', 'allowed_mount_types = ["nfs", "bind",', "unknown"),
    ('ADD = ["chown", "chmod"]', 'ADDD = ["chown"]', "unknown instructions"),
])
def test_a_broken_policy_table_is_a_config_error(tmp_path, old, new, complaint):
    with pytest.raises(ConfigError, match=complaint):
        load(write(tmp_path, edited(old, new)))


# -- gate(): refused files are never copied, allowed ones are ---------------------------------------
def test_gate_writes_the_copy_only_for_an_allowed_file(tmp_path):
    good, bad = tmp_path / "Dockerfile.single", tmp_path / "Dockerfile.bad"
    good.write_text("# syntax=docker/dockerfile:1\n" + BASE + "RUN <<EOF\necho hi\nEOF\n")
    bad.write_text(BASE + "ADD http://127.0.0.1/x /x\n")

    passed = gate(good, A, ENV, tmp_path / "logs" / "single.Dockerfile")
    refused = gate(bad, A, ENV, tmp_path / "logs" / "bad.Dockerfile")

    assert passed.findings == [] and passed.buildfile == tmp_path / "logs" / "single.Dockerfile"
    assert [c.kind for c in passed.changes] == ["syntax_removed", "heredoc_rewritten"]
    assert passed.buildfile.read_text().startswith("\nFROM python")
    assert refused.buildfile is None and not (tmp_path / "logs" / "bad.Dockerfile").exists()


# -- the check: one verdict, the line, both languages ------------------------------------------------
CHECK = VARIANT_CHECKS["build_policy"]


def policy_variant(policy: PolicyFacts | None):
    return passing_variant("single", A, policy=policy)


def test_the_check_fails_with_the_first_finding_and_lists_the_others():
    findings = [PolicyFinding("remote_source", 7, "ADD http://h/x /x", {"cmd": "ADD", "source": "http://h/x"}),
                PolicyFinding("flag_not_allowed", 9, "RUN --network=host true", {"cmd": "RUN", "flag": "network"})]

    outcome = CHECK(policy_variant(PolicyFacts(findings=findings)), A)

    assert (outcome.status, outcome.reason, outcome.params["line"]) == ("fail", "remote_source", 7)
    assert [e.line for e in outcome.evidence] == [7, 9]
    en, ru = message("build_policy", outcome, "en"), message("build_policy", outcome, "ru")
    assert en.startswith("Line 7: ADD http://h/x: the engine would download this") and "Line 9: the --network" in en
    assert ru.startswith("Строка 7: ADD http://h/x") and "Строка 9: флаг --network" in ru


def test_the_check_passes_and_says_what_the_built_copy_changed():
    changes = [BuildfileChange("syntax_removed", 1, {"frontend": "docker/dockerfile:1"}),
               BuildfileChange("heredoc_rewritten", 5, {"word": "EOF", "shell": "/bin/sh -c"})]

    outcome = CHECK(policy_variant(PolicyFacts(changes=changes)), A)

    assert outcome.status == "pass"
    text = message("build_policy", outcome, "en")
    assert "Line 1: the '# syntax=docker/dockerfile:1' line was not passed" in text
    assert "Line 5: this engine does not understand heredocs, so RUN <<EOF was run as the same script through " \
           "/bin/sh -c" in text


@pytest.mark.parametrize(("changes", "reason"), [
    ({"dockerfile_path": None}, "no_dockerfile"), ({"parsed": None}, "not_parsed"), ({"policy": None}, "not_attempted"),
])
def test_the_check_is_skipped_when_the_gate_was_not_reached(changes, reason):
    outcome = CHECK(passing_variant("single", A, **changes), A)

    assert (outcome.status, outcome.reason) == ("skip", reason)


@pytest.mark.parametrize("rule", RULES)
def test_every_rule_is_declared_and_has_a_sentence_with_the_line_in_both_languages(rule):
    params = {"line": 4, "cmd": "ADD", "source": "http://h/x", "frontend": "f", "allowed": "a", "image": "i",
              "expected": "e", "ref": "r", "type": "t", "flag": "network", "word": "$W"}
    # a rubric without base_image: otherwise that check reports a foreign FROM, and this one skips
    rubric = replace(A, variants=tuple(replace(v, required=tuple(c for c in v.required if c != "base_image"))
                                       for v in A.variants))
    outcome = CHECK(policy_variant(PolicyFacts(findings=[PolicyFinding(rule, 4, "X", params)])), rubric)

    assert rule in CHECK.reasons and rule in CHECK.item_reasons
    for lang, word in (("en", "Line 4"), ("ru", "Строка 4")):
        text = message("build_policy", outcome, lang)
        assert text.startswith(word) and "?" not in text.replace("?)", ""), text


def test_build_policy_is_required_right_after_parsed_in_every_variant():
    for variant in A.variants:
        assert variant.required[variant.required.index("parsed") + 1] == "build_policy"


def test_the_engines_heredoc_parse_error_gets_its_own_hint():
    log = ("#2 DONE 0.0s\nfailed to solve with frontend dockerfile.v0: failed to create LLB definition: "
           "dockerfile parse error line 3: unknown instruction: HELLO\n")

    assert build_hint(log, False, None, A).key == "heredoc_unsupported"


# -- defence in depth for what is still built ---------------------------------------------------------
def test_builds_get_no_build_args_entitlements_or_secrets_of_ours(tmp_path):
    cli = BuildCli("/usr/bin/docker", "builtin")

    cmd = cli.command(tmp_path / "single.Dockerfile", tmp_path / "ctx", "tag", tmp_path / "iid", {"grader.job": "j"})

    given = {arg.split("=", 1)[0] for arg in cmd if arg.startswith("--")}
    assert given == {"--progress", "--iidfile", "--label"}  # no --build-arg, --allow, --secret, --ssh, --pull
    assert cli.env(tmp_path)["DOCKER_CONFIG"] == str(tmp_path)


def test_a_builds_docker_config_is_empty_but_for_the_cli_plugins(tmp_path, monkeypatch):
    host = tmp_path / "host-config"
    (host / "cli-plugins").mkdir(parents=True)
    (host / "config.json").write_text('{"auths": {"registry.example": {"auth": "dXNlcjpzZWNyZXQ="}}}')
    monkeypatch.setenv("DOCKER_CONFIG", str(host))

    private = private_docker_config("job1")
    try:
        assert [p.name for p in private.iterdir()] == ["cli-plugins"]
        assert (private / "cli-plugins").resolve() == (host / "cli-plugins").resolve()
    finally:
        shutil.rmtree(private)


def test_a_foreign_base_image_is_one_failure_base_images_and_the_policy_says_why_nothing_was_built():
    from grader.dockerfile import parse_text
    from tests.unit.factories import passing_variant
    parsed = parse_text("FROM python:3.12-slim\nRUN echo\n", "Dockerfile.single")
    finding = PolicyFinding("external_base", 1, "FROM python:3.12-slim", {"image": "python:3.12-slim"})
    outcome = CHECK(passing_variant("single", A, parsed=parsed, policy=PolicyFacts(findings=[finding])), A)
    assert (outcome.status, outcome.reason) == ("skip", "base_refused")
    # control: a foreign image in a stage the final one does not need is the policy's own failure
    unused = parse_text("FROM python:3.12-slim AS old\nFROM python:3.11.6-slim-bookworm\n", "Dockerfile.single")
    outcome = CHECK(passing_variant("single", A, parsed=unused, policy=PolicyFacts(findings=[finding])), A)
    assert (outcome.status, outcome.reason) == ("fail", "external_base")


def test_a_url_made_of_args_is_shown_with_the_lines_that_made_it():
    from tests.conftest import FIXTURES
    text = (FIXTURES / "hostile" / "policy_arg_url" / "Dockerfile.single").read_text()
    parsed = parse_text(text, "Dockerfile.single")
    facts = passing_variant("single", A, parsed=parsed, policy=PolicyFacts(findings=review(text, A, {})),
                            build=None, image=None, runtime=None)
    outcome = CHECK(facts, A)
    assert (outcome.reason, outcome.params["line"]) == ("remote_source", 15)
    assert outcome.params["source"] == "http://127.0.0.1:47125/loot.txt"
    assert [(e.line, e.text) for e in outcome.evidence] == [
        (15, "ADD ${LOOT_URL} /loot.txt"), (13, "ARG LOOT_HOST=127.0.0.1:47125"),
        (14, "ARG LOOT_URL=http://${LOOT_HOST}/loot.txt")]
