"""The CI files parse as YAML and hold the stages and jobs the project and its students rely on."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Top-level keys of a GitLab CI file that are not jobs.
GLOBAL_KEYWORDS = {"stages", "variables", "default", "include", "workflow", "image", "services", "cache",
                   "before_script", "after_script"}


def load(name: str) -> dict:
    data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name}: not a mapping"
    return data


def jobs(config: dict) -> dict[str, dict]:
    return {k: v for k, v in config.items() if k not in GLOBAL_KEYWORDS and not k.startswith(".")}


def script_text(job: dict) -> str:
    lines: list[str] = []

    def flatten(items) -> None:
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, list):
                flatten(item)
            else:
                lines.append(str(item))

    for key in ("before_script", "script"):
        flatten(job.get(key, []))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def project_ci() -> dict:
    return load(".gitlab-ci.yml")


@pytest.fixture(scope="module")
def student_ci() -> dict:
    return load("ci/student-template.yml")


def test_project_pipeline_has_the_four_stages_in_order(project_ci):
    assert project_ci["stages"] == ["lint", "test", "integration", "build"]


def test_every_job_is_in_a_declared_stage_and_runs_something(project_ci):
    for name, job in jobs(project_ci).items():
        assert job.get("stage") in project_ci["stages"], name
        assert script_text(job).strip(), f"{name}: no script"


def test_each_stage_has_its_job(project_ci):
    by_stage = {job["stage"]: (name, script_text(job)) for name, job in jobs(project_ci).items()}
    assert "ruff check" in by_stage["lint"][1]
    assert 'pytest -m "not docker"' in by_stage["test"][1]
    assert "pytest -m docker" in by_stage["integration"][1]
    build = by_stage["build"][1]
    assert "-f worker.Dockerfile" in build and "$CI_REGISTRY_IMAGE" in build and "docker push" in build


def test_integration_job_runs_its_own_engine_on_a_privileged_runner(project_ci):
    job = next(j for j in jobs(project_ci).values() if j["stage"] == "integration")
    assert "privileged" in job.get("tags", [])
    assert "scripts/setup" in script_text(job)  # installs docker.io, starts dockerd, makes the base image


def test_student_template_runs_grader_check_once_without_isolation(student_ci):
    template_jobs = jobs(student_ci)
    assert list(template_jobs) == ["grader-check"]
    job = template_jobs["grader-check"]
    text = script_text(job)
    assert text.count("grader check") == 1
    assert "--no-isolation" in text and "--format json" in text
    # --fail-under only when the student sets the variable
    assert "${GRADER_FAIL_UNDER:+--fail-under" in text
    assert "GRADER_FAIL_UNDER" in student_ci["variables"]
    assert "GRADER_IMAGE" in student_ci["variables"]
    assert any("dind" in (s["name"] if isinstance(s, dict) else s) for s in job["services"])
    assert {"grader-report.md", "grader-report.json"} <= set(job["artifacts"]["paths"])


def test_student_template_pulls_the_assignments_base_image_onto_the_fresh_engine(student_ci):
    from grader.assignment import load

    job = jobs(student_ci)["grader-check"]
    assert student_ci["variables"]["GRADER_BASE_IMAGE"] == load(None).base_image
    assert 'docker pull "$GRADER_BASE_IMAGE"' in job["before_script"]


# A `docker` that stands in for the job's: `run … sh -c '… grader check …'` prints the JSON of a
# one-mistake report (and exits with STUB_RC); `run … --entrypoint python … -c CODE ARGS` runs
# CODE with this interpreter, as the grader image's python would.
STUB_DOCKER = """#!{python}
import os, subprocess, sys
args = sys.argv[1:]
if args[0] != "run":
    sys.exit(0)
entrypoint = args[args.index("--entrypoint") + 1]
if entrypoint == "python":
    at = args.index("-c")
    sys.exit(subprocess.run([sys.executable, "-c", *args[at + 1:]]).returncode)
sys.stdin.buffer.read()  # the repository's tar
sys.stdout.write(open(os.environ["STUB_REPORT"], encoding="utf-8").read())
sys.exit(int(os.environ.get("STUB_RC", "0")))
"""


@pytest.mark.parametrize("rc", [0, 5])
def test_student_template_logs_the_text_report_and_keeps_markdown_and_json(student_ci, tmp_path, rc):
    import json
    import os
    import subprocess
    import sys

    from grader.report import render_json, render_markdown, render_text
    from tests.support import reports as R

    report = R.report(R.one_mistake())
    (tmp_path / "report.json").write_text(render_json(report), encoding="utf-8")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(STUB_DOCKER.format(python=sys.executable), encoding="utf-8")
    (bin_dir / "docker").chmod(0o755)
    job_dir = tmp_path / "job"
    (job_dir / "repo").mkdir(parents=True)
    job = jobs(student_ci)["grader-check"]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "CI_PROJECT_DIR": str(job_dir / "repo"),
           "GRADER_IMAGE": "grader:test", "STUB_REPORT": str(tmp_path / "report.json"), "STUB_RC": str(rc),
           "PYTHONPATH": str(ROOT)}
    for line in job["script"]:  # the runner's shell: POSIX sh (busybox in docker:24)
        result = subprocess.run(["sh", "-c", line], cwd=job_dir, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == rc, result.stderr  # the grader's exit code (5: below --fail-under) decides
    assert result.stdout.strip() == render_text(report).strip()  # the job log: the text report
    assert (job_dir / "grader-report.md").read_text(encoding="utf-8").strip() == render_markdown(report).strip()
    assert json.loads((job_dir / "grader-report.json").read_text(encoding="utf-8")) == report
