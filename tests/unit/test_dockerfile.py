import pytest

from grader.dockerfile import is_root_user, parse_file, parse_text, substitute
from grader.errors import SubmissionError
from tests.conftest import REFERENCE_SOURCE


def test_reference_multistage_has_a_named_build_stage_and_a_clean_final_stage():
    p = parse_file(REFERENCE_SOURCE / "Dockerfile.multistage", "Dockerfile.multistage")
    assert [s.name for s in p.stages] == ["build", None]
    assert p.final.parent is None
    assert p.final.base_resolved == "python:3.11.6-slim-bookworm"
    assert p.entrypoint().json_form


def test_from_an_earlier_stage_links_the_final_stage_to_it():
    p = parse_text("FROM python AS Build\nUSER app\nFROM build\nRUN true\n", "x")
    assert p.final.parent is p.stages[0]
    assert p.final_user().args == ("app",)  # inherited from the stage it is built on


def test_arg_in_from_is_resolved_with_its_default():
    p = parse_text("ARG TAG=3.11.6-slim-bookworm\nARG IMG=python\nFROM ${IMG}:$TAG\n", "x")
    assert p.final.base == "${IMG}:$TAG"
    assert p.final.base_resolved == "python:3.11.6-slim-bookworm"


@pytest.mark.parametrize("text, values, expected", [
    ("${A:-x}", {}, "x"), ("${A:-x}", {"A": "y"}, "y"), ("${A:+x}", {"A": "y"}, "x"), ("$A-b", {"A": "a"}, "a-b"),
])
def test_substitute_handles_default_and_alternative_forms(text, values, expected):
    assert substitute(text, values) == expected


@pytest.mark.parametrize("spec", ["root", "0", "0:0", "root:staff", "ROOT"])
def test_every_spelling_of_root_is_root(spec):
    assert is_root_user(spec)


@pytest.mark.parametrize("spec", ["app", "1000", "app:app", "10001:0"])
def test_other_users_are_not_root(spec):
    assert not is_root_user(spec)


def test_instruction_lines_follow_continuations():
    p = parse_text("FROM x\nRUN a \\\n  && b\nUSER 0\n", "x")
    run, user = p.final.instructions
    assert (run.line, run.end_line, user.line) == (2, 3, 4)


@pytest.mark.parametrize("text, fragment", [
    ("", "no instructions"),
    ("# only a comment\n", "no instructions"),
    ("RUN echo hi\n", "before the first FROM"),
    ("FROOM python\n", "unknown instruction 'FROOM'"),
    ("FROM x\nRUN <<EOF\necho\n", "not a valid Dockerfile"),
])
def test_broken_dockerfiles_get_a_one_line_reason(text, fragment):
    with pytest.raises(SubmissionError) as err:
        parse_text(text, "Dockerfile.single")
    assert fragment in str(err.value)
    assert str(err.value).startswith("Dockerfile.single")
    assert "\n" not in str(err.value)


def test_binary_file_is_reported_as_not_text(tmp_path):
    f = tmp_path / "Dockerfile"
    f.write_bytes(b"\xff\xfe\x00FROM")
    with pytest.raises(SubmissionError, match="not UTF-8") as err:
        parse_file(f, "Dockerfile")
    assert err.value.reason == "not_utf8"


def test_an_unreadable_file_names_the_reason_but_not_the_server_path(tmp_path):
    (tmp_path / "Dockerfile").mkdir()  # reading a directory fails with EISDIR
    with pytest.raises(SubmissionError) as err:
        parse_file(tmp_path / "Dockerfile", "Dockerfile")
    assert err.value.reason == "unreadable" and str(tmp_path) not in str(err.value)


def test_crlf_and_a_bom_parse_with_the_lines_as_written():
    p = parse_text("\ufeffFROM python:3.11.6-slim-bookworm\r\nRUN echo a \\\r\n && echo b\r\n", "x")
    run = p.final.of("RUN")[0]
    assert (run.line, run.end_line, run.physical) == (2, 3, ("RUN echo a \\", " && echo b"))
    assert p.final.base == "python:3.11.6-slim-bookworm"
