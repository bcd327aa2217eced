"""Reports of the kinds students get, made by the real scoring and to_json from hand-built facts
(tests/unit/factories.py): full marks, one mistake, the same mistake in three files, a warning, a
failed build, and one full of student-controlled strings that must stay inert in every renderer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from grader import assignment as assignment_mod
from grader.dockerfile import parse_file
from grader.facts import BuildFacts, SubmissionFacts
from grader.report import to_json, with_provenance
from grader.scoring import score
from tests.unit.factories import REFERENCE, passing_submission, passing_variant

A = assignment_mod.load()
BROKEN = REFERENCE.parents[1] / "broken"
SHA = "5d41402abc4b2a76b9719d911017c592bbc0ffee"
PROJECT = "devops-2026/ivanov-docker"
PROJECT_URL = f"https://gitlab.example.edu/{PROJECT}"
HOSTILE = "<script>alert('x')</script> **bold** |---| @teacher"
# Lines of what a browser must never show as text: raw Markdown, double escaping.
RAW_MARKDOWN = ("|---|", "**", "&lt;", "&amp;", "```")


def full_marks() -> SubmissionFacts:
    return passing_submission(A)


def one_mistake() -> SubmissionFacts:
    """A correct submission but for a multi-stage file whose final stage is `FROM build`."""
    path = BROKEN / "final_from_build" / "Dockerfile.multistage"
    return passing_submission(A, multistage=passing_variant("multistage", A, parsed=parse_file(
        path, "Dockerfile.multistage")))


def shell_form_cmd() -> SubmissionFacts:
    path = BROKEN / "shell_form_cmd" / "Dockerfile.single"
    return passing_submission(A, single=passing_variant("single", A, parsed=parse_file(path, "Dockerfile.single")))


def nonroot_running_as_root() -> SubmissionFacts:
    nonroot = passing_variant("nonroot", A)
    return passing_submission(A, nonroot=replace(nonroot, runtime=replace(nonroot.runtime, uid=0)))


def multistage_build_failed() -> SubmissionFacts:
    failed_build = BuildFacts(succeeded=False, seconds=12.5, exit_code=1,
                              log_tail="#9 [build 4/6] RUN poetry export\n#9 ERROR: exit code: 1")
    return passing_submission(A, multistage=passing_variant("multistage", A, build=failed_build, image=None,
                                                            runtime=None))


def wrong_base_everywhere(tmp: Path) -> SubmissionFacts:
    """The three reference files with another base image: one cause, three files."""
    variants = {}
    for v in A.variants:
        source = (REFERENCE / v.filename).read_text(encoding="utf-8")
        path = tmp / v.filename
        path.write_text(source.replace("python:3.11.6-slim-bookworm", "python:3.12-slim"), encoding="utf-8")
        variants[v.name] = passing_variant(v.name, A, parsed=parse_file(path, v.filename))
    return passing_submission(A, **variants)


def hostile(tmp: Path) -> SubmissionFacts:
    """Student-controlled strings everywhere they can reach a report: the file's name and a line of
    it, a probe's body."""
    name = "Dockerfile.<script>x</script>"
    source = (REFERENCE / "Dockerfile.single").read_text(encoding="utf-8")
    path = tmp / "Dockerfile.single"
    path.write_text(source.replace('ENTRYPOINT ["python", "-m", "counter_backend"]',
                                   f'CMD python -m counter_backend # {HOSTILE}'), encoding="utf-8")
    single = passing_variant("single", A, parsed=parse_file(path, name), dockerfile_path=name)
    single.runtime.probes[0].passed = False
    single.runtime.probes[0].body = HOSTILE
    return passing_submission(A, single=single)


def report(facts: SubmissionFacts, lang: str = "ru", *, provenance: bool = True, late: bool = False) -> dict:
    made = to_json(facts, score(facts, A), A, lang)
    if not provenance:
        return made
    return with_provenance(made, sha=SHA, project=PROJECT, project_url=PROJECT_URL,
                           received_at="2026-03-01T11:58:00+00:00", graded_at="2026-03-01T12:00:00+00:00", late=late)


def kinds(tmp: Path) -> dict[str, Callable[[], SubmissionFacts]]:
    """Every kind above by name, for tests that go through all of them."""
    return {"full_marks": full_marks, "one_mistake": one_mistake, "shell_form_cmd": shell_form_cmd,
            "nonroot_running_as_root": nonroot_running_as_root, "multistage_build_failed": multistage_build_failed,
            "wrong_base_everywhere": lambda: wrong_base_everywhere(tmp), "hostile": lambda: hostile(tmp)}
