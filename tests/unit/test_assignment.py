"""grader.assignment: the rubric as data, loaded from real TOML files."""

from __future__ import annotations

from pathlib import Path

import pytest

from grader.assignment import DEFAULT_ASSIGNMENT, GlobalCheck, Probe, load
from grader.errors import ConfigError

DEFAULT_TEXT = DEFAULT_ASSIGNMENT.read_text(encoding="utf-8")


def write(tmp_path: Path, text: str, name: str = "course.toml") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def edited(old: str, new: str, count: int = 1) -> str:
    """The default assignment with one edit; fails loudly if the default no longer has `old`."""
    assert old in DEFAULT_TEXT, f"the default assignment no longer contains {old!r}"
    return DEFAULT_TEXT.replace(old, new, count)


# -- the default assignment -------------------------------------------------------------------


def test_default_assignment_loads_with_a_max_score_of_5():
    a = load()

    assert a.id == "counter-backend"
    assert a.max_score == 5.0
    assert a.source == DEFAULT_ASSIGNMENT


def test_default_assignment_has_three_variants_of_1_5_points():
    a = load()

    assert [(v.name, v.filename, v.max_points) for v in a.variants] == [
        ("single", "Dockerfile.single", 1.5),
        ("multistage", "Dockerfile.multistage", 1.5),
        ("nonroot", "Dockerfile.nonroot", 1.5),
    ]


def test_default_assignment_gives_half_a_point_for_the_size_comparison():
    assert load().global_checks == (GlobalCheck("size_comparison", 0.5),)


def test_default_assignment_probes_get_post_get():
    assert load().probes == (
        Probe("GET", "/api/counter", 200, {"count": 0}),
        Probe("POST", "/api/counter", 201, {"count": 1}),
        Probe("GET", "/api/counter", 200, {"count": 1}),
    )


def test_default_assignment_settings():
    a = load()

    assert (a.language, a.base_image, a.app_port) == ("ru", "python:3.11.6-slim-bookworm", 8080)
    assert a.reference is None  # empty in the file: pass --reference
    assert set(a.title) == {"ru", "en"}


def test_default_variants_require_their_own_user_rule():
    a = load()

    assert "runs_as_root" in a.variant("single").required
    assert "user_checked" in a.variant("multistage").required
    assert {"user_created", "final_user_nonroot", "runtime_nonroot"} <= set(a.variant("nonroot").required)
    assert all("exec_form" in v.advisory for v in a.variants)


def test_a_copy_of_the_default_file_loads_the_same_rubric(tmp_path):
    copy = load(write(tmp_path, DEFAULT_TEXT))

    assert copy.variants == load().variants
    assert copy.max_score == 5.0
    assert copy.source == tmp_path / "course.toml"


# -- the rubric is data -----------------------------------------------------------------------


def test_changed_points_change_the_max_score(tmp_path):
    text = DEFAULT_TEXT.replace("points = 1.5", "points = 3").replace("points = 0.5", "points = 1")

    a = load(write(tmp_path, text))

    assert [v.points for v in a.variants] == [3.0, 3.0, 3.0]
    assert a.max_score == 10.0


def test_check_points_add_to_a_variant_and_the_max_score(tmp_path):
    text = edited('points = 1.5\n', 'points = 1.5\ncheck_points = { exec_form = 0.25 }\n')

    a = load(write(tmp_path, text))

    assert a.variant("single").check_points == {"exec_form": 0.25}
    assert a.variant("single").max_points == 1.75
    assert a.max_score == 5.25


def test_a_variant_gets_the_default_advisory_checks_unless_it_lists_its_own(tmp_path):
    own = edited('points = 1.5\n', 'points = 1.5\nadvisory = ["hadolint"]\n')  # the single variant only

    a = load(write(tmp_path, own))

    assert a.variant("single").advisory == ("hadolint",)
    assert a.variant("multistage").advisory == load().variant("multistage").advisory
    assert "pip_no_cache" in a.variant("multistage").advisory  # from [variant_defaults]


def test_renamed_variants_and_a_dropped_global_check(tmp_path):
    text = (edited('name = "single"', 'name = "simple"')
            .replace('filename = "Dockerfile.single"', 'filename = "single.Dockerfile"')
            .split("[[global_checks]]")[0])

    a = load(write(tmp_path, text))

    assert [v.name for v in a.variants] == ["simple", "multistage", "nonroot"]
    assert a.variant("simple").filename == "single.Dockerfile"
    assert a.global_checks == ()
    assert a.max_score == 4.5


def test_probe_methods_are_upper_cased(tmp_path):
    a = load(write(tmp_path, edited('method = "POST"', 'method = "post"')))

    assert a.probes[1].method == "POST"


def test_app_port_defaults_to_8080_and_can_be_changed(tmp_path):
    assert load(write(tmp_path, edited("app_port = 8080\n", ""), "a.toml")).app_port == 8080
    assert load(write(tmp_path, edited("app_port = 8080", "app_port = 5000"), "b.toml")).app_port == 5000


# -- reference --------------------------------------------------------------------------------


def test_reference_is_resolved_relative_to_the_assignment_file(tmp_path, monkeypatch):
    path = write(tmp_path / "course" / "rubrics", edited('reference = ""', 'reference = "../src/counter"'))
    monkeypatch.chdir(tmp_path)  # not the file's directory: the cwd must not matter

    a = load(path)

    assert a.reference == (tmp_path / "course" / "src" / "counter").resolve()
    assert a.reference.is_absolute()


def test_reference_given_with_a_relative_assignment_path(tmp_path, monkeypatch):
    write(tmp_path / "rubrics", edited('reference = ""', 'reference = "ref"'))
    monkeypatch.chdir(tmp_path)

    a = load(Path("rubrics/course.toml"))

    assert a.reference == (tmp_path / "rubrics" / "ref").resolve()


# -- errors -----------------------------------------------------------------------------------


def test_unknown_variant_check_is_a_config_error_naming_it(tmp_path):
    path = write(tmp_path, edited('advisory = [', 'advisory = ["no_such_check", '))

    with pytest.raises(ConfigError) as info:
        load(path)

    assert "no_such_check" in str(info.value)
    assert "variant single" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("old", "new", "message"), [
    ('id = "size_comparison"', 'id = "colour_comparison"', "colour_comparison"),  # unknown global check
    ('id = "size_comparison"', 'id = "http_contract"', "unknown global checks.*http_contract"),  # wrong kind
    ("points = 1.5", 'points = "many"', r"variants\[0\]\.points: Input should be a valid number"),
    ('language = "ru"', 'language = "de"', r"assignment\.language: Input should be 'ru' or 'en'"),
])
def test_bad_value_is_a_config_error_naming_it(tmp_path, old, new, message):
    with pytest.raises(ConfigError, match=message):
        load(write(tmp_path, edited(old, new)))


def test_invalid_toml_is_a_config_error(tmp_path):
    path = write(tmp_path, DEFAULT_TEXT + "\n[variants\nname = \n")

    with pytest.raises(ConfigError) as info:
        load(path)

    assert "not valid TOML" in str(info.value)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("line", "field"), [
    ('base_image = "python:3.11.6-slim-bookworm"\n', "assignment.base_image"),
    ('id = "counter-backend"\n', "assignment.id"),
    ('filename = "Dockerfile.single"\n', "variants[0].filename"),
    ("status = 201\n", "probes[1].status"),
])
def test_missing_field_is_a_config_error_naming_it(tmp_path, line, field):
    path = write(tmp_path, edited(line, ""))

    with pytest.raises(ConfigError) as info:
        load(path)

    assert f"{field}: Field required" in str(info.value)


def test_missing_section_is_a_config_error(tmp_path):
    text = DEFAULT_TEXT.replace("[[probes]]", "[[requests]]")

    with pytest.raises(ConfigError, match="probes: Field required; requests: unknown key"):
        load(write(tmp_path, text))


def test_missing_file_is_a_config_error_naming_the_path(tmp_path):
    path = tmp_path / "nowhere" / "course.toml"

    with pytest.raises(ConfigError) as info:
        load(path)

    assert str(path) in str(info.value)
    assert "cannot be read" in str(info.value)
    assert "No such file" in str(info.value)


def test_config_error_is_the_operators_problem():
    # the CLI exits with 2 for a broken assignment file, never scores a student on it
    assert ConfigError.exit_code == 2


def test_probe_method_that_is_not_a_string_is_a_config_error(tmp_path):
    path = write(tmp_path, edited('method = "GET"', "method = 5"))

    with pytest.raises(ConfigError):
        load(path)


def test_variant_title_without_english_is_a_config_error(tmp_path):
    path = write(tmp_path, edited('title = { ru = "Одноэтапная сборка", en = "Single-stage build" }',
                                  'title = { ru = "Одноэтапная сборка" }'))

    with pytest.raises(ConfigError, match="title"):
        load(path)


ADVISORY = 'advisory = ["exec_form", "port_honoured"'


@pytest.mark.parametrize(("old", "new", "words"), [
    (ADVISORY, ADVISORY.replace("advisory", "advisroy"),
     "variant_defaults.advisroy: unknown key (did you mean advisory?)"),
    ('points = 1.5\n', 'points = 1.5\nadvisroy = ["hadolint"]\n',
     "variants[0].advisroy: unknown key (did you mean advisory?)"),
    ('"http_contract", "runs_as_root"]', '"http_contract", "runs_as_root", "hadolint"]',
     "variants[0]: checks listed more than once (in required and/or advisory): hadolint"),
    ("[[global_checks]]", "late_penalty = 0.1\n\n[[global_checks]]", "variants[2].late_penalty: unknown key"),
    ('filename = "Dockerfile.multistage"', 'filename = "Dockerfile.single"',
     "variant file names must be unique: Dockerfile.single used more than once"),
    ("points = 1.5", "points = -1.5", "variants[0].points: Input should be greater than or equal to 0"),
    ('method = "POST"', 'method = "PSOT"', "probes[1].method: 'PSOT' is not an HTTP method"),
    ("status = 201", "status = 2010", "probes[1].status: Input should be less than or equal to 599"),
    ('path = "/api/counter"', 'path = "api/counter"', "probes[0].path: String should match pattern"),
    ('name = "single"', 'name = "multistage"', "variant names must be unique: multistage"),
    (ADVISORY, ADVISORY.replace('"exec_form", ', '"exec_form", "exec_form", '),
     "checks listed more than once (in required and/or advisory): exec_form"),
    ('"runs_as_root"]', '"runs_as_root", "exec_form"]', "checks listed more than once (in required and/or advisory): "
                                                         "exec_form"),
    ("app_port = 8080", "app_port = 80800", "assignment.app_port: Input should be less than or equal to 65535"),
    ("app_port = 8080", 'app_port = 8080\nlate_policy = "cap"', "assignment.late_policy: unknown key"),
    ('language = "ru"', 'language = "ru"\ntitel = "x"', "assignment.titel: unknown key (did you mean title?)"),
    ("points = 0.5", "points = -0.5", "global_checks[0].points: Input should be greater than or equal to 0"),
])
def test_each_broken_assignment_file_is_one_line_naming_the_field(tmp_path, old, new, words):
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, edited(old, new)))
    message = str(info.value)
    assert words in message and "\n" not in message, message
