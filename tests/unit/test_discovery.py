import os
import shutil

import pytest

from grader import assignment as assignment_mod
from grader.discovery import classify, discover
from grader.dockerfile import parse_text
from grader.errors import SubmissionError
from tests.conftest import BROKEN, REFERENCE_REPO, REFERENCE_SOURCE

A = assignment_mod.load()


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
    assert any("ignored old/Dockerfile.single" in n for n in found.notes)


@pytest.mark.parametrize("text, kind", [
    ("FROM python\nRUN x\n", "single"),
    ("FROM python AS b\nFROM python\nCOPY --from=b /a /a\n", "multistage"),
    ("FROM python AS b\nFROM python\nUSER app\n", "nonroot"),
    ("FROM python AS b\nFROM python\nUSER app\nUSER 0\n", "multistage"),
])
def test_free_named_files_are_classified_by_their_stages_and_user(text, kind):
    assert classify(parse_text(text, "x")) == kind


def test_free_names_say_which_file_was_taken_for_which_variant(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM python\n")
    (tmp_path / "Dockerfile2").write_text("FROM python\n")
    (tmp_path / "prod.dockerfile").write_text("FROM python AS b\nFROM python\nUSER 1000\n")
    found = discover(tmp_path, A, REFERENCE_SOURCE)
    assert found.variants["single"].candidate.rel == "Dockerfile"
    assert found.variants["nonroot"].candidate.rel == "prod.dockerfile"
    assert found.variants["multistage"].candidate is None
    assert "took prod.dockerfile as nonroot (2 stages, USER 1000)" in found.notes
    assert any(n.startswith("ignored Dockerfile2: also looks like single") for n in found.notes)


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


def test_git_directory_is_not_searched(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "Dockerfile.single").write_text("FROM python\n")
    with pytest.raises(SubmissionError):
        discover(tmp_path, A, None)
