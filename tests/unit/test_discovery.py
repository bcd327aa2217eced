import os
import shutil

import pytest

from grader import assignment as assignment_mod
from grader.discovery import classify, discover
from grader.dockerfile import parse_text
from grader.errors import GraderError, SubmissionError
from grader.messages import note, refusal
from tests.conftest import BROKEN, REFERENCE_REPO, REFERENCE_SOURCE

A = assignment_mod.load()


def notes(found, lang: str = "en") -> list[str]:
    return [note(n, lang) for n in found.notes]


def test_current_edition_names_are_found_in_the_project_directory():
    found = discover(REFERENCE_REPO, A, None)
    assert {n: a.candidate.rel for n, a in found.variants.items()} == {
        "single": "counter-backend/Dockerfile.single",
        "multistage": "counter-backend/Dockerfile.multistage",
        "nonroot": "counter-backend/Dockerfile.nonroot",
    }
    assert all(a.context == REFERENCE_SOURCE and not a.context_is_reference for a in found.variants.values())
    assert {a.found_by for a in found.variants.values()} == {"name"}


def test_a_missing_variant_is_reported_as_missing_not_guessed():
    found = discover(BROKEN / "copies_build_dir", A, REFERENCE_SOURCE)
    assert found.variants["single"].candidate is None
    assert found.variants["multistage"].context == REFERENCE_SOURCE
    assert found.variants["multistage"].context_is_reference


def test_copy_next_to_pyproject_wins_over_a_stray_copy(tmp_path):
    shutil.copytree(REFERENCE_REPO, tmp_path / "repo")
    (tmp_path / "repo" / "old").mkdir()
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "repo" / "old" / "Dockerfile.single")
    found = discover(tmp_path / "repo", A, None)
    assert found.variants["single"].candidate.rel == "counter-backend/Dockerfile.single"
    assert any("ignored old/Dockerfile.single" in n for n in notes(found))


@pytest.mark.parametrize("text, kind", [
    ("FROM python\nRUN x\n", "single"),
    ("FROM python AS b\nFROM python\nCOPY --from=b /a /a\n", "multistage"),
    ("FROM python AS b\nFROM python\nCOPY --from=b /a /a\nUSER app\n", "nonroot"),
    ("FROM python AS b\nFROM python\nCOPY --from=b /a /a\nUSER app\nUSER 0\n", "multistage"),
    ("FROM python AS b\nFROM python\nUSER app\n", "single"),  # b is never built: BuildKit skips it
    # the lecture's alias stage with a user created in it brings no project files: still one working stage
    ("FROM python AS base\nRUN useradd -m app\nFROM base\nCOPY . .\nRUN pip install .\n", "single"),
    ("FROM python AS base\nRUN useradd -m app\nFROM base\nCOPY . .\nRUN pip install .\nUSER app\n", "single"),
    # a final stage that only adds a USER to a working stage: the non-root attempt of an earlier edition
    ("FROM python AS build\nCOPY . .\nRUN pip install .\nFROM build\nUSER app\n", "nonroot"),
    # two stages that work, the second built FROM the first: a multi-stage attempt (not isolated)
    ("FROM python AS build\nRUN pip install poetry\nFROM build\nCOPY . .\nRUN poetry build\n", "multistage"),
])
def test_free_named_files_are_classified_by_their_stages_and_user(text, kind):
    assert classify(parse_text(text, "x")) == kind


def test_free_names_say_which_file_was_taken_for_which_variant(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM python\n")
    (tmp_path / "Dockerfile2").write_text("FROM python\n")
    (tmp_path / "prod.dockerfile").write_text("FROM python AS b\nFROM python\nCOPY --from=b /a /a\nUSER 1000\n")
    found = discover(tmp_path, A, REFERENCE_SOURCE)
    assert found.variants["single"].candidate.rel == "Dockerfile"
    assert found.variants["nonroot"].candidate.rel == "prod.dockerfile"
    assert found.variants["multistage"].candidate is None
    assert "took prod.dockerfile as nonroot (2 stages, USER 1000)" in notes(found)
    assert any(n.startswith("ignored Dockerfile2: also looks like single") for n in notes(found))
    assert "prod.dockerfile принят как nonroot" in " ".join(notes(found, "ru"))


def test_an_ambiguous_free_named_file_leaves_single_to_the_plain_one_and_stands_for_multistage(tmp_path):
    # deps does work the checks do not count (apt-get): read alone, the file is single-stage, but
    # it has two stages, and another file is plainly the single one. Found first, it must not
    # take "single" and leave that file ignored.
    (tmp_path / "Dockerfile.a").write_text("FROM python AS deps\nRUN apt-get update\nFROM deps\nCOPY . .\n"
                                           "RUN pip install .\n")
    (tmp_path / "Dockerfile.b").write_text("FROM python\nCOPY . .\nRUN pip install .\n")
    found = discover(tmp_path, A, REFERENCE_SOURCE)
    assert found.variants["single"].candidate.rel == "Dockerfile.b"
    assert found.variants["multistage"].candidate.rel == "Dockerfile.a"
    assert not any(n.startswith("ignored") for n in notes(found)), notes(found)
    assert notes(found).index("took Dockerfile.a as multistage (2 stages, no non-root USER)") < \
        next(i for i, n in enumerate(notes(found)) if n.startswith("took Dockerfile.b"))  # file order


def test_an_ambiguous_file_alone_is_read_as_single(tmp_path):
    (tmp_path / "Dockerfile.a").write_text("FROM python AS deps\nRUN apt-get update\nFROM deps\nCOPY . .\n"
                                           "RUN pip install .\n")
    found = discover(tmp_path, A, REFERENCE_SOURCE)
    assert found.variants["single"].candidate.rel == "Dockerfile.a"  # control for the test above
    assert found.variants["multistage"].candidate is None


def test_repository_without_dockerfiles_is_refused(tmp_path):
    (tmp_path / "README.md").write_text("hi")
    with pytest.raises(SubmissionError, match="no Dockerfile found"):
        discover(tmp_path, A, None)


def test_free_named_files_that_all_fail_to_parse_are_refused_with_the_reasons(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROOM python\n")
    with pytest.raises(SubmissionError, match="unknown instruction 'FROOM'"):
        discover(tmp_path, A, None)


def test_symlink_pointing_outside_the_repository_is_never_read(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("FROM python\n# host secret\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    os.symlink(secret, repo / "Dockerfile.single")
    with pytest.raises(SubmissionError, match="no Dockerfile found"):
        discover(repo, A, None)
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.multistage", repo / "Dockerfile.multistage")
    found = discover(repo, A, REFERENCE_SOURCE)
    assert found.variants["single"].candidate is None
    assert found.variants["single"].rejected == "Dockerfile.single"  # the report names it
    assert any("symbolic link pointing outside" in n for n in notes(found))
    assert found.variants["multistage"].candidate.rel == "Dockerfile.multistage"  # control: read


def test_git_directory_is_not_searched(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "Dockerfile.single").write_text("FROM python\n")
    with pytest.raises(SubmissionError):
        discover(tmp_path, A, None)


def test_refusals_are_in_the_report_language_and_name_no_server_path(tmp_path):
    (tmp_path / "README.md").write_text("hi")
    with pytest.raises(SubmissionError) as caught:
        discover(tmp_path, A, None)
    for lang in ("ru", "en"):
        assert str(tmp_path) not in refusal(caught.value, lang)
    assert "Dockerfile" in refusal(caught.value, "ru") and "не найдено" in refusal(caught.value, "ru")


@pytest.mark.parametrize("name", ["dockerfile.single", "Dockerfile.Single", "Dockerfile_single", "Dockerfile-single",
                                  "Dockerfile.single ", "DockerFile.single"])
def test_near_miss_names_are_graded_with_a_did_you_mean_note(tmp_path, name):
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / name)
    found = discover(tmp_path, A, REFERENCE_SOURCE)
    assert found.variants["single"].candidate.rel == name
    assert found.variants["single"].found_by == "near_name"
    assert any(n.startswith("Did you mean Dockerfile.single?") for n in notes(found))


@pytest.mark.parametrize("name, variant", [("Dockerfile.multi-stage", "multistage"), ("Dockerfile_nonroot", "nonroot"),
                                           ("Dockerfile.non-root", "nonroot"), ("dockerfile.multistage", "multistage")])
def test_near_miss_names_of_the_other_variants(tmp_path, name, variant):
    shutil.copy(REFERENCE_SOURCE / f"Dockerfile.{variant}", tmp_path / name)
    assert discover(tmp_path, A, REFERENCE_SOURCE).variants[variant].candidate.rel == name


def test_the_exact_name_wins_over_a_near_miss(tmp_path):
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "Dockerfile.single")
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "dockerfile.single")
    found = discover(tmp_path, A, REFERENCE_SOURCE)
    assert (found.variants["single"].candidate.rel, found.variants["single"].found_by) == ("Dockerfile.single", "name")
    assert any("ignored dockerfile.single" in n for n in notes(found))


def _current_edition_without_dockerfiles(root):
    shutil.copytree(REFERENCE_SOURCE, root / "counter-backend",
                    ignore=shutil.ignore_patterns("Dockerfile.*", ".dockerignore"))


def test_dockerfiles_in_the_root_are_built_with_the_project_they_name(tmp_path):
    _current_edition_without_dockerfiles(tmp_path)
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "Dockerfile.single")  # COPY pyproject.toml ...
    # written for the repository root: COPY counter-backend/...
    text = (REFERENCE_SOURCE / "Dockerfile.multistage").read_text()
    text = text.replace("COPY pyproject.toml poetry.lock README.md ./",
                        "COPY counter-backend/pyproject.toml counter-backend/poetry.lock counter-backend/README.md ./")
    (tmp_path / "Dockerfile.multistage").write_text(text.replace("COPY src ./src", "COPY counter-backend/src ./src"))
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.nonroot", tmp_path / "counter-backend" / "Dockerfile.nonroot")
    found = discover(tmp_path, A, None)
    v = found.variants
    assert (v["single"].context, v["single"].context_rel) == (tmp_path / "counter-backend", "counter-backend")
    assert (v["multistage"].context, v["multistage"].context_rel) == (tmp_path, ".")
    assert (v["nonroot"].context_rel, v["nonroot"].context_is_reference) == ("counter-backend", False)
    said = notes(found)
    assert any("Dockerfile.single is not where it belongs: put it in counter-backend/" in n for n in said)
    assert not any("Dockerfile.nonroot is not where" in n for n in said)


def test_a_misplaced_near_miss_is_told_the_name_and_the_place_it_belongs(tmp_path):
    _current_edition_without_dockerfiles(tmp_path)
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "dockerfile.single")
    said = notes(discover(tmp_path, A, None))
    assert any("Did you mean Dockerfile.single?" in n for n in said)
    assert any("put it in counter-backend/ next to pyproject.toml (counter-backend/Dockerfile.single)" in n
               for n in said), said


@pytest.mark.parametrize("directive", ["# syntax=docker/dockerfile:1", "#syntax=docker/dockerfile:1.7",
                                       "# syntax = docker/dockerfile:1.4.3"])
def test_an_allowed_syntax_line_is_told_in_the_notes_because_it_is_not_built(tmp_path, directive):
    text = directive + "\n" + (REFERENCE_SOURCE / "Dockerfile.single").read_text()
    (tmp_path / "Dockerfile.single").write_text(text)
    found = discover(tmp_path, A, REFERENCE_SOURCE)
    frontend = directive.split("=", 1)[1].strip()
    assert f"Dockerfile.single, line 1: the '# syntax={frontend}' directive was not passed to the engine" \
        in " ".join(notes(found))
    assert "Dockerfile.single, строка 1: директива «# syntax=" in " ".join(notes(found, "ru"))


def test_a_refused_syntax_line_is_the_policys_verdict_not_a_note(tmp_path):
    text = "# syntax=127.0.0.1:5000/frontend\n" + (REFERENCE_SOURCE / "Dockerfile.single").read_text()
    (tmp_path / "Dockerfile.single").write_text(text)
    assert not any("syntax" in n for n in notes(discover(tmp_path, A, REFERENCE_SOURCE)))


def test_a_file_without_any_source_is_a_verdict_for_its_variant_not_a_refusal(tmp_path):
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "Dockerfile.single")
    found = discover(tmp_path, A, None)
    assert found.variants["single"].candidate is not None and found.variants["single"].context is None


def test_a_configured_reference_without_a_project_is_our_error(tmp_path):
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "Dockerfile.single")
    with pytest.raises(GraderError, match="reference source"):
        discover(tmp_path, A, tmp_path / "nowhere")


def test_an_alias_stage_does_not_make_a_free_named_file_multi_stage():
    text = "FROM python:3.11.6-slim-bookworm AS base\nFROM base AS app\nCOPY . .\nRUN pip install .\n"
    assert classify(parse_text(text, "x")) == "single"
    assert classify(parse_text(text + "FROM base\nCOPY --from=app /x /x\n", "x")) == "multistage"  # control
