"""grader.build_logs: each submission's build logs kept for disputes, replaced by its regrade, pruned by age."""

from __future__ import annotations

import os
import time

from grader import build_logs


def test_a_grading_gets_a_fresh_private_directory_that_replaces_the_last_gradings(tmp_path):
    first = build_logs.directory(tmp_path, "sub-7", keep_days=14)
    assert first is not None
    (first / "single.build.log").write_text("old run")
    again = build_logs.directory(tmp_path, "sub-7", keep_days=14)  # the regrade
    assert again == tmp_path / "logs" / "sub-7" and list(again.iterdir()) == []
    assert again.stat().st_mode & 0o777 == 0o700


def test_keeping_no_days_keeps_no_logs(tmp_path):
    assert build_logs.directory(tmp_path, "sub-7", keep_days=0) is None
    assert not (tmp_path / "logs").exists()


def test_a_hostile_workspace_name_stays_under_the_logs_directory(tmp_path):
    path = build_logs.directory(tmp_path, "../../etc", keep_days=1)
    assert path is not None and path.parent == tmp_path / "logs"


def test_prune_removes_only_what_is_older_than_the_kept_days(tmp_path):
    old = build_logs.directory(tmp_path, "sub-1", keep_days=14)
    new = build_logs.directory(tmp_path, "sub-2", keep_days=14)
    assert old is not None and new is not None
    fifteen_days_ago = time.time() - 15 * 86400
    os.utime(old, (fifteen_days_ago, fifteen_days_ago))
    assert build_logs.prune(tmp_path, keep_days=14) == 1
    assert not old.exists() and new.exists()  # control: the recent one stays
    assert build_logs.prune(tmp_path, keep_days=14) == 0


def test_prune_without_any_logs_is_nothing(tmp_path):
    assert build_logs.prune(tmp_path / "absent", keep_days=1) == 0
