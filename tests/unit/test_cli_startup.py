"""`grader serve` and `grader worker` refuse to start on settings that would fail every job:
one line saying what to fix, exit 2, before listening or consuming anything."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BASE_ENV = {"GRADER_GITLAB_URL": "http://gitlab.invalid", "GRADER_GITLAB_TOKEN": "t", "GRADER_WEBHOOK_SECRET": "s",
            "GRADER_BROKER_URL": "redis://127.0.0.1:1/0"}  # never reached: the checks come first


def start(role: str, tmp_path, **env: str) -> subprocess.CompletedProcess:
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **BASE_ENV,
            "GRADER_DATABASE_URL": f"sqlite:///{tmp_path / 'grader.db'}", **env}
    return subprocess.run([sys.executable, "-m", "grader.cli", role], capture_output=True, text=True, timeout=60,
                          env=full, cwd=tmp_path)


@pytest.mark.parametrize("role", ["serve", "worker"])
def test_broken_assignment_file_stops_the_start_with_its_field(role, tmp_path):
    broken = tmp_path / "course.toml"
    broken.write_text('[assignment]\nid = "x"\n')  # no variants
    result = start(role, tmp_path, GRADER_ASSIGNMENT_FILE=str(broken))
    assert result.returncode == 2
    assert f"assignment file {broken}" in result.stderr and "variants" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize("role", ["serve", "worker"])
def test_database_of_a_newer_schema_stops_the_start(role, tmp_path):
    import sqlite3

    from grader.store import SCHEMA_VERSION, Store

    Store(f"sqlite:///{tmp_path / 'grader.db'}").close()
    with sqlite3.connect(tmp_path / "grader.db") as db:
        db.execute("UPDATE grader_schema SET version = ?", (SCHEMA_VERSION + 1,))
    result = start(role, tmp_path)
    assert result.returncode == 2
    assert "newer than this grader's" in result.stderr and "backup" in result.stderr


@pytest.mark.parametrize("name, value, fix", [
    ("GRADER_GROUPS", "devops-2026", """GRADER_GROUPS='["devops-2026"]'"""),
    ("GRADER_BRANCHES", "main", """GRADER_BRANCHES='["main", "master"]'"""),
])
def test_a_list_setting_written_as_plain_text_is_one_line_with_the_fix(tmp_path, name, value, fix):
    result = start("serve", tmp_path, **{name: value})
    assert result.returncode == 2
    assert result.stderr.strip() == f"grader: {name} must be a JSON list, e.g. {fix}"


def test_serving_on_a_public_address_refuses_the_examples_placeholders_in_one_line_each(tmp_path):
    public = subprocess.run([sys.executable, "-m", "grader.cli", "serve", "--host", "0.0.0.0"], capture_output=True,
                            text=True, timeout=60, cwd=tmp_path,
                            env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), **BASE_ENV,
                                 "GRADER_DATABASE_URL": f"sqlite:///{tmp_path / 'grader.db'}",
                                 "GRADER_WEBHOOK_SECRET": "change-me-to-a-long-random-string",
                                 "GRADER_INSTRUCTOR_TOKEN": "short",
                                 "GRADER_REPORT_BASE_URL": "https://grader.example.edu"})
    assert public.returncode == 2
    refused = public.stderr.strip().splitlines()
    assert len(refused) == 3, public.stderr
    assert "GRADER_WEBHOOK_SECRET is the example's placeholder" in refused[0]
    assert "GRADER_INSTRUCTOR_TOKEN" in refused[1] and "GRADER_REPORT_BASE_URL" in refused[2]


def test_the_same_settings_on_a_loopback_address_are_a_laptops_and_pass():
    from grader.config import Settings
    from grader.doctor import serving_problems

    laptop = Settings(webhook_secret="change-me", instructor_token="short", report_base_url="http://127.0.0.1:8000")
    assert serving_problems(laptop, "127.0.0.1") == ([], [])
    refused, warned = serving_problems(laptop, "0.0.0.0")  # control: the same on a public address
    assert len(refused) == 2 and len(warned) == 1 and "loopback" in warned[0]
