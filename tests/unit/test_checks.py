"""Each check as a pure function of facts: the broken fixtures fail it, the reference passes it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from checks import GLOBAL_CHECKS, VARIANT_CHECKS
from checks.hints import build_hint, failed_step
from grader import assignment as assignment_mod
from grader.dockerfile import parse_file, parse_text
from grader.facts import BuildFacts, ContentsFacts, ContextFacts, RuntimeFacts
from grader.scoring import score
from tests.conftest import BROKEN
from tests.unit.factories import passing_submission, passing_variant

A = assignment_mod.load()


def broken(name: str, variant: str, **changes):
    filename = f"Dockerfile.{variant}"
    parsed = parse_file(BROKEN / name / filename, filename)
    return passing_variant(variant, A, parsed=parsed, **changes)


def run(check_id: str, facts):
    return VARIANT_CHECKS[check_id](facts, A)


@pytest.mark.parametrize("variant", ["single", "multistage", "nonroot"])
def test_reference_passes_every_check_its_variant_requires(variant):
    rubric = A.variant(variant)
    for check_id in rubric.required + rubric.advisory:
        outcome = run(check_id, passing_variant(variant, A))
        assert outcome.status == "pass", (check_id, outcome)


@pytest.mark.parametrize("fixture, variant, check_id, reason, line", [
    ("final_from_build", "multistage", "final_stage_isolated", "from_stage", 14),
    ("final_from_build", "multistage", "copies_only_dist", "nothing", None),
    ("copies_build_dir", "multistage", "copies_only_dist", "too_much", 16),
    ("install_from_index", "multistage", "offline_install", "from_index", 17),
    ("second_stage_commented", "multistage", "multi_stage", "one", None),
    ("user_without_switch", "nonroot", "final_user_nonroot", "no_user", None),
    ("user_root_again", "nonroot", "final_user_nonroot", "root", 23),
    ("wrong_base_image", "single", "base_image", "wrong", 4),
    ("git_clone", "single", "source_from_context", "fetched", 7),
    ("shell_form_cmd", "single", "exec_form", "shell", 15),
])
def test_broken_fixture_fails_its_check_with_the_line(fixture, variant, check_id, reason, line):
    outcome = run(check_id, broken(fixture, variant))
    assert (outcome.status, outcome.reason) == ("fail", reason)
    assert outcome.params.get("line") == line
    if line:
        assert any(e.line == line for e in outcome.evidence)


def test_single_variant_with_two_stages_fails_single_stage():
    outcome = run("single_stage", passing_variant("single", A, parsed=passing_variant("multistage", A).parsed))
    assert (outcome.status, outcome.params["count"]) == ("fail", 2)


def test_structure_checks_are_skipped_not_failed_without_a_parse():
    facts = passing_variant("multistage", A, parsed=None, parse_error="x")
    for check_id in ("base_image", "multi_stage", "copies_only_dist", "exec_form", "user_created"):
        assert run(check_id, facts).status == "skip"


def test_base_image_resolved_from_arg_passes():
    parsed = parse_text("ARG BASE=python:3.11.6-slim-bookworm\nFROM ${BASE}\n", "Dockerfile.single")
    assert run("base_image", passing_variant("single", A, parsed=parsed)).status == "pass"


def test_docker_io_prefix_is_the_same_base_image():
    parsed = parse_text("FROM docker.io/library/python:3.11.6-slim-bookworm\n", "Dockerfile.single")
    assert run("base_image", passing_variant("single", A, parsed=parsed)).status == "pass"


def test_copying_sources_from_the_context_into_the_final_stage_fails():
    parsed = parse_text("FROM python:3.11.6-slim-bookworm AS build\nRUN pip wheel -w /app/dist x\n"
                        "FROM python:3.11.6-slim-bookworm\n"
                        "COPY --from=build /app/dist /app/dist\nCOPY src /app/src\n", "x")
    outcome = run("copies_only_dist", passing_variant("multistage", A, parsed=parsed))
    assert (outcome.status, outcome.reason, outcome.params["line"]) == ("fail", "from_context", 5)


def test_an_alias_and_one_working_stage_fails_multi_stage_once_not_four_times():
    parsed = parse_file(BROKEN / "second_stage_commented" / "Dockerfile.multistage", "x")
    aliased = parse_text("FROM python:3.11.6-slim-bookworm AS base\n"
                         + "\n".join(parsed.lines).replace("FROM python:3.11.6-slim-bookworm AS build",
                                                            "FROM base AS build"), "x")
    facts = passing_variant("multistage", A, parsed=aliased)
    outcomes = {c: run(c, facts) for c in ("multi_stage", "final_stage_isolated", "copies_only_dist",
                                           "offline_install", "final_image_clean")}
    assert outcomes["multi_stage"].status == "fail"
    assert {c: o.status for c, o in outcomes.items() if c != "multi_stage"} == dict.fromkeys(
        ("final_stage_isolated", "copies_only_dist", "offline_install", "final_image_clean"), "skip")


def test_process_running_as_root_fails_nonroot_even_with_a_user_in_the_file():
    facts = passing_variant("nonroot", A, runtime=replace(passing_variant("nonroot", A).runtime, uid=0))
    assert run("runtime_nonroot", facts).reason == "root"
    assert run("final_user_nonroot", facts).status == "pass"  # the file alone looks right


def test_image_config_user_root_fails_final_user_nonroot():
    facts = passing_variant("nonroot", A, image=replace(passing_variant("nonroot", A).image, user="0:0"))
    assert run("final_user_nonroot", facts).reason == "image_root"


def test_single_variant_must_run_as_root():
    facts = passing_variant("single", A, runtime=replace(passing_variant("single", A).runtime, uid=1000))
    outcome = run("runs_as_root", facts)
    assert (outcome.status, outcome.params["uid"]) == ("fail", 1000)


def test_unknown_uid_fails_the_user_checks():
    facts = passing_variant("multistage", A, runtime=replace(passing_variant("multistage", A).runtime, uid=None))
    assert run("user_checked", facts).reason == "unknown"


def test_http_contract_names_the_failing_probe():
    runtime = passing_variant("single", A).runtime
    probes = list(runtime.probes)
    probes[1] = replace(probes[1], status=200, body='{"count": 0}', passed=False)
    outcome = run("http_contract", passing_variant("single", A, runtime=replace(runtime, probes=probes)))
    assert outcome.reason == "probe"
    assert outcome.params["method"] == "POST" and "201" in outcome.params["expected"]


def test_server_that_never_listens_is_not_ready_with_the_reason():
    runtime = RuntimeFacts(started=True, ready=False, error="no HTTP answer within 30 s", log_tail="listening on 9000")
    outcome = run("http_contract", passing_variant("single", A, runtime=runtime))
    assert outcome.reason == "not_ready" and outcome.params["port"] == 8080
    assert outcome.evidence[0].text == "listening on 9000"


def test_build_timeout_with_server_in_run_points_at_the_line():
    facts = broken("server_in_run", "single", build=BuildFacts(False, 60.0, timed_out=True, log_tail="#11 ..."))
    outcome = run("built", facts)
    assert (outcome.reason, outcome.params["hint"], outcome.params["line"]) == ("timeout", "server_in_run", 15)


def test_empty_variable_hint_names_the_variable_and_the_line():
    hint = build_hint("ERROR: You must give at least one requirement to install", False,
                      parse_file(BROKEN / "variable_across_runs" / "Dockerfile.multistage", "x"), A)
    assert (hint.key, hint.name, hint.line) == ("empty_variable", "packages", 18)


@pytest.mark.parametrize("log, key", [
    ("The requested command export does not exist.", "poetry_export"),
    ("[Errno 2] No such file or directory: '/app/README.md'", "readme_missing"),
    ("[Errno 2] No such file or directory: '/app/dist/constraints.txt'", "dist_missing"),
    ("#3 [internal] load metadata for docker.io/library/python:3.12\n#3 ERROR: failed to do request", "base_image"),
    ("/bin/sh: 1: git: not found", "git_clone"),
    ("#3 [internal] load metadata for docker.io/library/python:3.12-slim\n#3 sha256:282c\n"
     "#3 ERROR: failed to do request: Head ...: no such host", "base_image"),
])
def test_build_log_messages_map_to_hints(log, key):
    assert build_hint(log, False, None, A).key == key


def test_unrecognised_failure_has_no_hint():
    assert build_hint("something odd", False, parse_text("FROM x\nRUN a=1 && echo $a\n", "x"), A) is None


def test_failed_step_excerpt_keeps_only_the_failing_step():
    log = "#5 [2/3] RUN ok\n#5 DONE 0.1s\n#6 [3/3] RUN bad\n#6 sha256:abc\n#6 0.2 boom\n#6 ERROR: exit code: 1\n"
    assert failed_step(log) == "#6 [3/3] RUN bad\n#6 0.2 boom\n#6 ERROR: exit code: 1"


def test_size_comparison_needs_all_images_and_smaller_multistage():
    facts = passing_submission(A)
    assert GLOBAL_CHECKS["size_comparison"](facts, A).status == "pass"
    bigger = replace(facts.variants["multistage"].image, size_bytes=10**10)
    facts.variants["multistage"] = replace(facts.variants["multistage"], image=bigger)
    outcome = GLOBAL_CHECKS["size_comparison"](facts, A)
    assert (outcome.reason, outcome.params["names"]) == ("not_smaller", "multistage")
    facts.variants["single"] = replace(facts.variants["single"], image=None)
    assert GLOBAL_CHECKS["size_comparison"](facts, A).reason == "missing"


def test_listing_separates_poetry_from_sources_and_ignores_installed_packages():
    from checks.stages import leftovers
    contents = ContentsFacts(paths=[
        "/usr/local/bin/poetry",
        "/usr/local/lib/python3.11/dist-packages/poetry-1.8.5.dist-info",
        "/app/src/counter_backend",
        "/app/pyproject.toml",
        "/usr/lib/python3/dist-packages/somepkg/pyproject.toml",
    ])
    tools, sources = leftovers(passing_variant("multistage", A, contents=contents), A)
    assert tools == ["/usr/local/bin/poetry", "/usr/local/lib/python3.11/dist-packages/poetry-1.8.5.dist-info"]
    assert sources == ["/app/src/counter_backend", "/app/pyproject.toml"]


def test_poetry_left_in_the_final_image_fails_final_image_clean():
    contents = ContentsFacts(paths=["/usr/local/bin/poetry", "/app/src/counter_backend"])
    outcome = run("final_image_clean", passing_variant("multistage", A, contents=contents))
    assert (outcome.status, outcome.reason) == ("fail", "leftovers")
    assert "/usr/local/bin/poetry" in outcome.params["poetry"]
    assert "/app/src/counter_backend" in outcome.evidence[0].text


def test_final_image_clean_is_skipped_for_one_stage_and_without_a_listing():
    assert run("final_image_clean", passing_variant("single", A)).reason == "one_stage"
    assert run("final_image_clean", passing_variant("multistage", A, contents=None)).reason == "not_run"


def test_server_listening_elsewhere_is_named_in_the_http_verdict():
    runtime = RuntimeFacts(started=True, ready=False, error="no HTTP answer", listening_ports=[8000])
    outcome = run("http_contract", passing_variant("single", A, runtime=runtime))
    assert (outcome.reason, outcome.params["ports"]) == ("wrong_port", "8000")


def test_server_ignoring_port_from_the_environment_fails_port_honoured():
    ignored = RuntimeFacts(started=True, ready=False, listening_ports=[8080])
    outcome = run("port_honoured", passing_variant("single", A, port_runtime=ignored))
    assert (outcome.status, outcome.params["ports"], outcome.params["port"]) == ("fail", "8080", 9090)
    assert run("port_honoured", passing_variant("single", A)).status == "pass"
    assert run("port_honoured", passing_variant("single", A, port_runtime=None)).status == "skip"


def test_oversize_image_fails_built_with_its_size_and_the_limit():
    build = BuildFacts(False, 12.0, exit_code=0, oversize_limit=2 * 1024**3)
    image = replace(passing_variant("single", A).image, size_bytes=3 * 1024**3)
    outcome = run("built", passing_variant("single", A, build=build, image=image))
    assert (outcome.reason, outcome.params["size_mib"], outcome.params["limit_mib"]) == ("too_big", 3072, 2048)


def test_container_killed_for_memory_says_so():
    runtime = RuntimeFacts(started=True, ready=False, oom_killed=True, memory_limit_bytes=512 * 2**20, exit_code=137)
    outcome = run("http_contract", passing_variant("single", A, runtime=runtime))
    assert (outcome.reason, outcome.params["limit_mib"]) == ("oom", 512)


def test_variables_every_run_sees_are_not_reported_as_lost():
    parsed = parse_text("FROM x\nENV APP=/app\nRUN export PATH=/opt/bin:$PATH APP=/srv\nRUN echo $PATH $APP\n", "x")
    assert build_hint("", False, parsed, A) is None


def test_uid_checks_are_skipped_when_the_process_died_before_it_could_be_read():
    runtime = RuntimeFacts(started=True, ready=False, oom_killed=True, exited_early=True)
    pairs = [("single", "runs_as_root"), ("nonroot", "runtime_nonroot"), ("multistage", "user_checked")]
    for variant, check_id in pairs:
        assert run(check_id, passing_variant(variant, A, runtime=runtime)).reason == "exited"


def test_a_listening_but_silent_server_is_told_apart_from_a_wrong_port():
    runtime = RuntimeFacts(started=True, ready=False, error="no HTTP answer within 5 s", listening_ports=[8080])
    assert run("http_contract", passing_variant("single", A, runtime=runtime)).reason == "silent"


@pytest.mark.parametrize("log, key", [
    ("#7 ERROR: executor failed running [/bin/sh -c python hog.py]: exit code: 137", "build_killed"),
    ("/bin/sh: 1: Cannot fork", "build_pids"),
])
def test_build_steps_stopped_by_the_engine_limits_are_explained(log, key):
    assert build_hint(log, False, None, A).key == key


def test_oversized_build_context_is_a_verdict_naming_its_size():
    build = BuildFacts(False, 0.0, context_refused=True)
    context = ContextFacts(dockerignore=False, file_count=30_000, size_bytes=900 * 2**20, unwanted=[".git"])
    outcome = run("built", passing_variant("single", A, build=build, context=context))
    assert (outcome.reason, outcome.params["size_mib"], outcome.params["files"]) == ("context_too_big", 900, 30_000)


FIXTURE_DOCKERFILES = sorted(p for p in (BROKEN.parent).glob("*/*/**/*") if p.is_file()
                             and p.name.lower().startswith("dockerfile") and p.suffix != ".toml")


@pytest.mark.parametrize("path", FIXTURE_DOCKERFILES, ids=lambda p: str(p.relative_to(BROKEN.parent)))
def test_every_check_on_every_fixture_dockerfile_returns_a_declared_reason(path):
    # scoring refuses undeclared reasons (grader error): run the whole rubric over each real file
    try:
        parsed = parse_file(path, path.name)
    except Exception:  # noqa: BLE001 - an unparsable fixture is the parsed check's business
        return
    for variant in ("single", "multistage", "nonroot"):
        facts = passing_submission(A)
        facts.variants[variant] = passing_variant(variant, A, parsed=parsed)
        score(facts, A)


LECTURE_BUILD = """FROM python:3.11.6-slim-bookworm AS base
FROM base AS build
SHELL ["/bin/sh", "-eu", "-c"]
WORKDIR /build
COPY pyproject.toml poetry.lock README.md ./
COPY src ./src
RUN python -m pip install --no-cache-dir --break-system-packages poetry==1.8.5 \\
 && poetry build --format wheel \\
 && mkdir -p /app && mv dist /app/dist
FROM base AS final
WORKDIR /app
"""


@pytest.mark.parametrize("copy, reason", [
    ("COPY --from=build /build/dist ./dist", "ok"),
    ("COPY --from=build /app/dist/ dist/", "ok"),
    ("COPY --from=1 /build/dist /wheels", "ok"),
    ("COPY --from=build /build ./", "too_much"),
    ("COPY --from=build /build/src ./src", "too_much"),
    ("COPY --from=build / ./", "too_much"),
])
def test_copies_only_dist_follows_where_the_sources_went(copy, reason):
    parsed = parse_text(LECTURE_BUILD + copy + "\n", "x")
    outcome = run("copies_only_dist", passing_variant("multistage", A, parsed=parsed))
    assert outcome.reason == reason, outcome


def test_a_copy_of_a_directory_without_sources_is_judged_by_what_the_image_holds():
    parsed = parse_text(LECTURE_BUILD + "COPY --from=build /app/ ./\n", "x")
    clean = run("copies_only_dist", passing_variant("multistage", A, parsed=parsed))
    assert (clean.status, clean.reason) == ("pass", "ok_clean")
    dirty = run("copies_only_dist", passing_variant("multistage", A, parsed=parsed,
                                                    contents=ContentsFacts(paths=["/usr/local/bin/poetry"])))
    assert (dirty.status, dirty.reason, dirty.params["found"]) == ("fail", "too_much_found", "/usr/local/bin/poetry")
    assert run("copies_only_dist", passing_variant("multistage", A, parsed=parsed, contents=None)).reason == "not_run"


def test_lecture_layout_final_stage_over_a_bare_alias_is_isolated_and_multi_stage():
    parsed = parse_text(LECTURE_BUILD + "COPY --from=build /app/dist ./dist\n", "x")
    facts = passing_variant("multistage", A, parsed=parsed)
    assert run("final_stage_isolated", facts).reason == "ok_alias"
    multi = run("multi_stage", facts)
    assert (multi.status, multi.params["count"]) == ("pass", 2)
    # control: the same final stage FROM build is not isolated, and says what it inherits
    inherits = parse_text(LECTURE_BUILD.replace("FROM base AS final", "FROM build AS final")
                          + "COPY --from=build /app/dist ./dist\n", "x")
    contents = ContentsFacts(paths=["/usr/local/bin/poetry", "/build/src/counter_backend"])
    outcome = run("final_stage_isolated", passing_variant("multistage", A, parsed=inherits, contents=contents))
    assert (outcome.status, outcome.reason, outcome.params["via"]) == ("fail", "from_stage", "build")
    assert {"reason": "found_in_image", "found": "/usr/local/bin/poetry, /build/src/counter_backend"} \
        in outcome.params["items"]


def test_a_final_stage_over_an_alias_built_from_the_build_stage_is_not_isolated():
    parsed = parse_text(LECTURE_BUILD.replace("FROM base AS final", "FROM build AS runtime\nFROM runtime AS final")
                        + "COPY --from=build /app/dist ./dist\n", "x")
    outcome = run("final_stage_isolated", passing_variant("multistage", A, parsed=parsed))
    assert (outcome.reason, outcome.params["stage"], outcome.params["via"]) == ("from_stage", "runtime", "build")


def test_an_alias_and_one_working_stage_is_not_multi_stage_but_is_single():
    parsed = parse_text(LECTURE_BUILD.replace("FROM base AS final\nWORKDIR /app\n", ""), "x")
    multi = run("multi_stage", passing_variant("multistage", A, parsed=parsed))
    assert (multi.status, multi.reason, multi.params["stage"], multi.params["working"]) == ("fail", "one", "build", 1)
    single = run("single_stage", passing_variant("single", A, parsed=parsed))
    assert (single.status, single.reason) == ("pass", "ok_alias")


def test_a_stage_nothing_needs_is_not_counted():
    parsed = parse_text("FROM python:3.11.6-slim-bookworm AS old\nRUN pip install poetry\n"
                        "FROM python:3.11.6-slim-bookworm\nCOPY . .\nRUN pip install .\n", "x")
    assert run("single_stage", passing_variant("single", A, parsed=parsed)).reason == "ok"


def test_evidence_names_the_sub_command_on_its_own_line():
    parsed = parse_text("FROM python:3.11.6-slim-bookworm AS b\nRUN echo a \\\n && pip wheel x \\\n && echo c\n"
                        "FROM python:3.11.6-slim-bookworm\nCOPY --from=b /dist /dist\n"
                        "RUN echo one \\\n && pip install --no-cache-dir /dist/*.whl\n", "x")
    outcome = run("offline_install", passing_variant("multistage", A, parsed=parsed))
    assert (outcome.reason, outcome.params["line"]) == ("from_index", 8)
    assert outcome.evidence[0].text == "&& pip install --no-cache-dir /dist/*.whl"


def test_pip_cache_in_a_build_stage_that_is_thrown_away_is_no_advice():
    parsed = parse_text("FROM python:3.11.6-slim-bookworm AS b\nRUN pip wheel -w /dist x\n"
                        "FROM python:3.11.6-slim-bookworm\nCOPY --from=b /dist /dist\n"
                        "RUN pip install --no-cache-dir --no-index /dist/*.whl\n", "x")
    assert run("pip_no_cache", passing_variant("multistage", A, parsed=parsed)).status == "pass"
    shipped = parse_text("FROM python:3.11.6-slim-bookworm\nRUN echo a \\\n && pip install x\n", "x")
    outcome = run("pip_no_cache", passing_variant("single", A, parsed=shipped))
    assert (outcome.status, outcome.params["line"]) == ("fail", 3)  # control, on pip's own line


@pytest.mark.parametrize("user, created, reason", [
    ("USER ${USER}", True, "ok"),
    ("USER 1001", True, "ok"),
    ("USER 1001:1001", True, "ok"),
    ("USER nobody", True, "other_user"),
    ("USER nobody", False, "missing"),
    ("USER 1001", False, "missing"),
    ("USER root", True, "ok"),  # root is final_user_nonroot's verdict, said once
])
def test_user_created_requires_the_user_the_final_stage_switches_to(user, created, reason):
    make = ('RUN addgroup --gid "${GID}" "${USER}" \\\n && adduser --disabled-password --gecos "" --home "${HOME}" '
            '--ingroup "${USER}" --uid "${UID}" "${USER}"\n') if created else ""
    text = ("FROM python:3.11.6-slim-bookworm AS b\nFROM python:3.11.6-slim-bookworm\nARG USER=user\nARG HOME=/app\n"
            "ARG UID=1001\nARG GID=1001\n" + make + "COPY --from=b /dist /dist\n" + user + "\n")
    assert run("user_created", passing_variant("nonroot", A, parsed=parse_text(text, "x"))).reason == reason


def test_useradd_counts_as_creating_the_user():
    text = "FROM python:3.11.6-slim-bookworm\nRUN useradd --create-home -u 1001 -s /bin/sh app\nUSER app\n"
    outcome = run("user_created", passing_variant("nonroot", A, parsed=parse_text(text, "x")))
    assert (outcome.status, outcome.params["user"]) == ("pass", "app")


def test_user_held_in_an_arg_is_resolved_in_the_message_and_evidence():
    text = "FROM python:3.11.6-slim-bookworm\nARG USER=root\nUSER ${USER}\n"
    outcome = run("final_user_nonroot", passing_variant("nonroot", A, parsed=parse_text(text, "x")))
    assert (outcome.reason, outcome.params["user"]) == ("root", "root")
    assert [e.line for e in outcome.evidence][:2] == [3, 2]


def test_a_copy_source_kept_out_by_dockerignore_is_named_with_the_fix():
    log = '#9 ERROR: failed to compute cache key: "/README.md" not found: not found'
    parsed = parse_file(BROKEN.parent / "reference" / "counter-backend" / "Dockerfile.single", "x")
    hint = build_hint(log, False, parsed, A, ["README.md", "docs/x.md"])
    assert (hint.key, hint.name, hint.line) == ("dockerignore_excludes", "README.md", 7)
    assert build_hint(log, False, parsed, A, ["docs/x.md"]).key == "not_in_context"  # control: not ignored


def test_a_user_in_the_single_variant_is_named_with_its_line_and_where_its_value_came_from():
    parsed = parse_text("FROM python:3.11.6-slim-bookworm\nARG APPUSER=app\nRUN useradd \"$APPUSER\"\n"
                        "USER ${APPUSER}\nENTRYPOINT [\"python\", \"-m\", \"counter_backend\"]\n", "Dockerfile.single")
    facts = passing_variant("single", A, parsed=parsed,
                            runtime=replace(passing_variant("single", A).runtime, uid=1000))
    outcome = run("runs_as_root", facts)
    assert (outcome.reason, outcome.params["line"], outcome.params["user"]) == ("not_root_user", 4, "app")
    assert [e.line for e in outcome.evidence if e.kind == "dockerfile"] == [4, 2]  # USER, then the ARG
    from grader.messages import message
    assert message("runs_as_root", outcome, "en").startswith("Line 4: USER app: in this variant")
    assert message("runs_as_root", outcome, "ru").startswith("Строка 4: USER app —")


def test_an_add_of_a_url_is_the_policys_verdict_not_a_copy_from_the_context():
    # One mistake, one failure: the gate refuses line 5 (and nothing is built); copies_only_dist
    # does not also call the download "a copy from the build context", and hadolint's "use COPY
    # for local files" about the same line is dropped.
    from grader.facts import LintFinding, PolicyFacts, PolicyFinding
    parsed = parse_text("FROM python:3.11.6-slim-bookworm AS build\nCOPY . .\nRUN poetry build\n"
                        "FROM python:3.11.6-slim-bookworm\nARG EXTRA=https://example.com/x\nADD ${EXTRA} /x\n"
                        "COPY --from=build /dist /dist\nRUN pip install --no-index /dist/*.whl\n", "x")
    finding = PolicyFinding("remote_source", 6, "ADD ${EXTRA} /x", {"cmd": "ADD", "source": "https://example.com/x"})
    facts = passing_variant("multistage", A, parsed=parsed, policy=PolicyFacts(findings=[finding]),
                            lint=[LintFinding("DL3020", "error", 6, "Use COPY instead of ADD for files and folders")],
                            build=None, image=None, runtime=None, contents=None)
    assert run("copies_only_dist", facts).status != "fail"
    assert run("hadolint", facts).status == "pass"
    local = parse_text("FROM python:3.11.6-slim-bookworm AS build\nCOPY . .\nRUN poetry build\n"
                       "FROM python:3.11.6-slim-bookworm\nARG SRC=pyproject.toml\nADD ${SRC} /x\n"
                       "COPY --from=build /dist /dist\n", "x")
    outcome = run("copies_only_dist", passing_variant("multistage", A, parsed=local))
    assert (outcome.reason, outcome.params["sources"]) == ("from_context", "pyproject.toml")  # control, resolved


def test_a_log_hint_points_at_the_sub_command_on_its_own_line_of_a_chained_run():
    log = ("#10 25.43 The requested command export does not exist.\n"
           "#10 ERROR: executor failed running [...]: exit code: 1")
    facts = broken("poetry_unpinned", "single", build=BuildFacts(False, 25.0, exit_code=1, log_tail=log))
    outcome = run("built", facts)
    assert (outcome.params["hint"], outcome.params["line"]) == ("poetry_export", 9)  # `&& poetry export`, not 8
    dockerfile = [e for e in outcome.evidence if e.kind == "dockerfile"]
    assert [(e.line, e.text) for e in dockerfile] == [
        # the physical line as written, its continuation backslash included
        (9, "&& poetry export --without-hashes --format constraints.txt --output dist/constraints.txt \\")]
    readme = build_hint("Readme path `/app/README.md` does not exist.", False,
                        parse_file(BROKEN / "poetry_unpinned" / "Dockerfile.single", "x"), A)
    assert (readme.key, readme.line) == ("readme_missing", 12)
