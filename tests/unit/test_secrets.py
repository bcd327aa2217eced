"""no_secrets (checks/secrets.py): finds secrets by name and by shape, and never repeats their values."""

from __future__ import annotations

from dataclasses import replace

import pytest

from checks import VARIANT_CHECKS
from checks.secrets import is_secret_name
from grader import assignment as assignment_mod
from grader.dockerfile import parse_file, parse_text
from grader.messages import message
from tests.conftest import BROKEN
from tests.unit.factories import BASE_ENV, image_history, passing_variant

A = assignment_mod.load()
BASE = "FROM python:3.11.6-slim-bookworm\n"
FIXTURE_TOKEN = "glpat-FAKEfakeFAKEfake0000"  # in tests/fixtures/broken/secret_in_env/Dockerfile.single


def run(facts):
    return VARIANT_CHECKS["no_secrets"](facts, A)


def built(text: str, env: list[str] | None = None, history: list[str] | None = None):
    """Facts of `text` built and inspected: the image holds the base Env plus `env`, and `history`."""
    parsed = parse_text(text, "Dockerfile.single")
    facts = passing_variant("single", A, parsed=parsed)
    image = replace(facts.image, env=BASE_ENV + (env or []),
                    history=history if history is not None else image_history(parsed))
    return replace(facts, image=image)


def assert_never_shown(outcome, value: str) -> None:
    assert value not in repr(outcome)
    for lang in ("ru", "en"):
        assert value not in message("no_secrets", outcome, lang)


def secret_in_env_fixture():
    parsed = parse_file(BROKEN / "secret_in_env" / "Dockerfile.single", "Dockerfile.single")
    facts = passing_variant("single", A, parsed=parsed)
    # what the engine reports for that image: the token in the config Env and in the history
    image = replace(facts.image, env=BASE_ENV + [f"GITLAB_TOKEN={FIXTURE_TOKEN}"], history=image_history(parsed))
    return replace(facts, image=image)


@pytest.mark.parametrize("variant", ["single", "multistage", "nonroot"])
def test_reference_with_the_official_base_image_config_passes(variant):
    facts = passing_variant(variant, A)
    assert any(e.startswith("GPG_KEY=") for e in facts.image.env)  # the base's public key id is there

    outcome = run(facts)

    assert (outcome.status, outcome.reason) == ("pass", "ok")


def test_token_in_env_fails_with_its_name_and_line():
    outcome = run(secret_in_env_fixture())

    assert (outcome.status, outcome.reason) == ("fail", "found")
    assert (outcome.params["name"], outcome.params["line"], outcome.params["count"]) == ("GITLAB_TOKEN", 14, 1)
    assert [e.text for e in outcome.evidence if e.kind == "dockerfile"] == ["ENV GITLAB_TOKEN=***"]
    assert {e.text for e in outcome.evidence if e.kind == "observed"} == {
        "image config Env: GITLAB_TOKEN=***", "image history: GITLAB_TOKEN=***"}


def test_the_secret_value_appears_nowhere_in_the_outcome_or_its_messages():
    outcome = run(secret_in_env_fixture())

    assert outcome.status == "fail"
    assert_never_shown(outcome, FIXTURE_TOKEN)
    assert_never_shown(outcome, "FAKEfakeFAKEfake0000")


def test_message_names_the_line_and_recommends_secret_mounts():
    outcome = run(secret_in_env_fixture())

    for lang in ("ru", "en"):
        text = message("no_secrets", outcome, lang)
        assert "14" in text and "GITLAB_TOKEN" in text and "RUN --mount=type=secret" in text


def test_build_argument_recorded_by_buildkit_in_the_history_is_found_at_its_arg_line():
    text = BASE + "ARG GITLAB_TOKEN\nRUN echo building\n"
    history = ["ARG GITLAB_TOKEN", "RUN |1 GITLAB_TOKEN=s3cr3t-value /bin/sh -c echo building # buildkit"]

    outcome = run(built(text, history=history))

    assert (outcome.reason, outcome.params["name"], outcome.params["line"]) == ("found", "GITLAB_TOKEN", 2)
    assert "image history: GITLAB_TOKEN=***" in [e.text for e in outcome.evidence]
    assert_never_shown(outcome, "s3cr3t-value")


@pytest.mark.parametrize("line, value", [
    ("RUN git clone https://oauth2:glpat-AbCdEfGhIjKlMnOpQrSt@gitlab.example.com/x.git .",
     "glpat-AbCdEfGhIjKlMnOpQrSt"),
    ("RUN curl -H 'Authorization: token ghp_0123456789abcdefghijABCDEFGHIJ012345' https://api.github.com",
     "ghp_0123456789abcdefghijABCDEFGHIJ012345"),
    ("RUN pip install git+https://x:github_pat_11ABCDEFG0123456789_abcdefghijklmnop@github.com/a/b",
     "github_pat_11ABCDEFG0123456789_abcdefghijklmnop"),
    ("LABEL aws=AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE"),
    ("RUN printf '-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAA\\n"
     "-----END OPENSSH PRIVATE KEY-----' > /root/.ssh/id_ed25519", "b3BlbnNzaC1rZXktdjEAAAA"),
    ("RUN pip install --index-url https://student:hunter2hunter@pypi.example.com/simple x", "hunter2hunter"),
])
def test_token_shaped_values_are_found_on_their_line_and_redacted(line, value):
    outcome = run(built(BASE + "WORKDIR /app\n" + line + "\n"))

    assert (outcome.status, outcome.params["line"]) == ("fail", 3)
    assert [e.line for e in outcome.evidence if e.kind == "dockerfile"] == [3]
    assert "***" in outcome.evidence[0].text
    assert_never_shown(outcome, value)


@pytest.mark.parametrize("name", [
    "GITLAB_TOKEN", "DB_PASSWORD", "MYSQL_PWD", "API_KEY", "APIKEY", "AWS_SECRET_ACCESS_KEY", "PRIVATE_KEY",
    "SSH_PRIVATE_KEY", "DOCKER_CREDENTIALS", "SECRET_KEY_BASE", "gitlab_token", "DBPASSWORD", "GITLAB_PAT",
    "CI_JOB_TOKEN", "REGISTRY_PASSWD",
])
def test_secret_looking_names_are_secrets(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "KEYBOARD", "PIP_NO_CACHE_DIR", "PYTHONDONTWRITEBYTECODE", "GPG_KEY", "PUBLIC_KEY", "POSTGRES_PASSWORD_FILE",
    "TOKENIZERS_PARALLELISM", "PWD", "TOKEN_URL", "KEY", "PORT", "PYTHON_GET_PIP_SHA256", "DEBIAN_FRONTEND",
    "AWS_ACCESS_KEY_ID", "MONKEY",
])
def test_ordinary_names_are_not_secrets(name):
    assert not is_secret_name(name)


def test_secret_named_arg_without_a_value_still_fails():
    # the value comes with --build-arg and BuildKit writes it into the history of every RUN
    outcome = run(built(BASE + "ARG NPM_TOKEN\n"))

    assert (outcome.reason, outcome.params["line"]) == ("found", 2)
    assert outcome.evidence[0].text == "ARG NPM_TOKEN"


def test_global_arg_before_from_is_found_on_its_line():
    text = "ARG DB_PASSWORD=topsecretvalue\n" + BASE + "RUN echo hi\n"

    outcome = run(built(text))

    assert (outcome.params["name"], outcome.params["line"]) == ("DB_PASSWORD", 1)
    assert_never_shown(outcome, "topsecretvalue")


def test_several_secrets_are_counted_and_the_first_line_given():
    text = BASE + "ENV APP_MODE=prod DB_PASSWORD=pa55word-123\nARG GITLAB_TOKEN=glpat-ZZZZZZZZZZZZZZZZZZZZ\n"

    outcome = run(built(text))

    assert (outcome.reason, outcome.params["count"], outcome.params["line"]) == ("several", 2, 2)
    assert outcome.params["names"] == "DB_PASSWORD, GITLAB_TOKEN"
    assert_never_shown(outcome, "pa55word-123")
    assert_never_shown(outcome, "glpat-ZZZZZZZZZZZZZZZZZZZZ")


def test_secret_only_in_the_image_is_reported_without_a_dockerfile_line():
    outcome = run(built(BASE + "RUN echo hi\n", env=["VAULT_TOKEN=hvs.not-from-this-file"]))

    assert (outcome.reason, outcome.params["names"], outcome.params["line"]) == ("image", "VAULT_TOKEN", None)
    assert_never_shown(outcome, "hvs.not-from-this-file")


def test_secret_mounted_with_buildkit_passes():
    text = BASE + ("RUN --mount=type=secret,id=gitlab_token "
                   "GITLAB_TOKEN=$(cat /run/secrets/gitlab_token) pip install --no-cache-dir x\n")
    history = image_history(parse_text(text, "x"))
    assert "GITLAB_TOKEN=$(cat" in history[-1]  # the history shows the command, not a value

    assert run(built(text, history=history)).status == "pass"


def test_secrets_check_is_skipped_without_a_parse():
    assert run(passing_variant("single", A, parsed=None, parse_error="x")).status == "skip"


def test_no_secrets_is_advisory_in_every_variant():
    for rubric in A.variants:
        assert "no_secrets" in rubric.advisory and "no_secrets" not in rubric.required


def test_several_secrets_are_one_scored_verdict_not_a_grader_error():
    from grader.scoring import score
    from tests.unit.factories import passing_submission

    facts = passing_submission(A)
    parsed = parse_text("FROM python:3.11.6-slim-bookworm\nENV API_TOKEN=abc123def456 DB_PASSWORD=hunter2hunter2\n",
                        "Dockerfile.single")
    facts.variants["single"] = passing_variant("single", A, parsed=parsed)
    check = next(c for c in score(facts, A).variants[0].checks if c.id == "no_secrets")
    assert (check.status, check.outcome.reason) == ("warn", "several")
