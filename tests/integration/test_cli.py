"""The `grader` command as a user runs it: exit codes, one-line errors, Ctrl-C cleanup."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from grader.engine import LABEL_INSTANCE
from tests.conftest import FIXTURES, REFERENCE_REPO, REFERENCE_SOURCE
from tests.integration.conftest import INSTANCE

pytestmark = pytest.mark.docker
GRADER = [sys.executable, "-m", "grader.cli"]


def grader(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*GRADER, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "GRADER_INSTANCE": INSTANCE, **(env or {})})


def test_check_prints_json_with_full_marks_for_the_reference():
    result = grader("check", str(REFERENCE_REPO), "--format", "json", "-q")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["score"], report["max_score"]) == (5, 5)


def test_text_report_shows_the_table_and_the_size_comparison_in_russian_by_default():
    result = grader("check", str(REFERENCE_REPO), "-q")
    assert result.returncode == 0, result.stderr
    assert "Итого 5/5" in result.stdout
    assert "Сборки и размеры образов" in result.stdout and "nonroot" in result.stdout


def test_fail_under_turns_a_low_score_into_exit_5(tmp_path):
    shutil.copy(REFERENCE_SOURCE / "Dockerfile.single", tmp_path / "Dockerfile.single")
    result = grader("check", str(tmp_path), "--reference", str(REFERENCE_SOURCE), "--fail-under", "5", "-q")
    assert result.returncode == 5
    assert "Итого 1,5/5" in result.stdout  # a decimal comma: the report is Russian by default


def test_empty_repository_is_a_one_line_error_with_exit_1_in_the_reports_language(tmp_path):
    result = grader("check", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert "не найдено ни одного Dockerfile" in result.stderr and str(tmp_path) not in result.stderr
    english = grader("check", str(tmp_path), "--lang", "en")
    assert english.returncode == 1 and "No Dockerfile found" in english.stderr


def test_unreachable_engine_is_exit_4_with_advice(tmp_path):
    result = grader("check", str(REFERENCE_REPO), env={"DOCKER_HOST": f"unix://{tmp_path}/nope.sock"})
    assert result.returncode == 4
    assert "Docker engine is not reachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_reference_directory_is_a_usage_error(tmp_path):
    result = grader("check", str(REFERENCE_REPO), "--reference", str(tmp_path / "nope"))
    assert result.returncode == 2
    assert "--reference" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_during_a_run_removes_its_containers_images_and_temp_dirs(engine, signum, tmp_path):
    env = {**os.environ, "GRADER_INSTANCE": INSTANCE, "TMPDIR": str(tmp_path)}
    # A server that never answers keeps its container waiting the whole readiness time (30 s), so
    # the signal lands mid-run however loaded the machine is (the reference's run ends within a
    # second or two of its first container, and a signal sent just after its end proved nothing).
    # --no-cache: an earlier test graded the same input, and its verdict would be reused at once.
    # SIGINT at its default in the child: a suite started in the background by a shell (`make test &`,
    # nohup) inherits it ignored — the shell's convention for background jobs, which the grader keeps.
    proc = subprocess.Popen([*GRADER, "check", str(FIXTURES / "hostile" / "never_answers"), "-q", "--no-cache",
                             "--reference", str(REFERENCE_SOURCE)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    mine = {"label": f"{LABEL_INSTANCE}={INSTANCE}"}
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not engine.client.containers.list(filters=mine):
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before a container was seen"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err
    assert list(tmp_path.iterdir()) == []  # the job's workspace went too


def test_help_documents_the_exit_codes():
    result = grader("check", "--help")
    assert result.returncode == 0
    assert "Exit codes" in result.stdout and "130" in result.stdout


def test_gc_command_reports_what_it_removed():
    result = grader("gc", "--older-than", "3600")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("removed ") and "build cache:" in result.stdout


def test_validate_passes_the_default_rubric_with_the_bundled_solution_at_full_marks():
    result = grader("validate")
    assert result.returncode == 0, result.stderr
    assert "valid (3 variants, max 5 points)" in result.stdout and "scores 5/5" in result.stdout


def test_validate_fails_a_valid_rubric_the_solution_cannot_satisfy(tmp_path):
    from grader.assignment import DEFAULT_ASSIGNMENT
    text = DEFAULT_ASSIGNMENT.read_text(encoding="utf-8")
    assert "json = { count = 1 }" in text
    strict = tmp_path / "course.toml"
    strict.write_text(text.replace("json = { count = 1 }", "json = { count = 7 }", 1), encoding="utf-8")
    result = grader("validate", str(strict))
    assert result.returncode == 1, result.stderr
    assert "valid" in result.stdout and "scores 0.5/5" in result.stderr and "http_contract" in result.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace("\nadvisory = [", "\nadvisroy = [", 1), encoding="utf-8")
    result = grader("validate", str(broken))
    assert result.returncode == 2 and "did you mean advisory?" in result.stderr
