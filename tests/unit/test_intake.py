"""Who a submission belongs to: one rule for every intake path, whoever pushed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from grader.config import Settings
from grader.errors import ConfigError
from grader.intake import Intake, Roster, student_of


@pytest.mark.parametrize("path, rule, student", [
    ("devops-2026/ivanov-docker", "project", "ivanov-docker"),
    ("devops-2026/sub/ivanov-docker", "project", "ivanov-docker"),
    ("ivanov/docker-hw", "namespace", "ivanov"),
    ("devops-2026/ivanov/hw", "namespace", "ivanov"),
])
def test_the_student_follows_the_configured_rule(path, rule, student):
    assert student_of(path, rule, None).id == student


def roster(tmp_path, text: str) -> Roster:
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    return Roster.load(path)


def test_the_roster_maps_projects_to_students_and_unlisted_ones_fall_back(tmp_path):
    r = roster(tmp_path, "project,student,name,email,student_id\n"
                         "Devops-2026/Ivanov-Docker/,s-0042,Иванов Иван,ivanov@example.edu,0042\n")
    found = student_of("devops-2026/ivanov-docker", "roster", r)
    assert (found.id, found.name, found.student_id, found.in_roster) == ("s-0042", "Иванов Иван", "0042", True)
    unlisted = student_of("devops-2026/petrov-docker", "roster", r)
    assert (unlisted.id, unlisted.in_roster) == ("petrov-docker", False)


@pytest.mark.parametrize("text, words", [
    ("name,email\nx,y\n", "missing column(s) project, student"),
    ("project,student\ndevops-2026/a,\n", "line 2: project and student must not be empty"),
    ("project,student\ndevops-2026/a,x\ndevops-2026/a,y\n", "line 3: project devops-2026/a is listed twice"),
])
def test_a_broken_roster_is_one_line_naming_the_problem(tmp_path, text, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        roster(tmp_path, text)


def test_a_roster_rule_without_a_roster_or_an_unknown_rule_is_refused_at_start(store):
    with pytest.raises(ConfigError, match="GRADER_ROSTER_FILE"):
        Intake(Settings(student_rule="roster"), store)
    with pytest.raises(ConfigError, match="use one of project, namespace, roster"):
        Intake(Settings(student_rule="pusher"), store)


def test_the_webhooks_intake_reads_granted_extensions_once_per_interval(store, monkeypatch):
    # The webhook's lateness is provisional (the worker judges it again), so it may be a second old;
    # every other intake sees an extension the moment it is granted.
    until = datetime(2030, 1, 1, tzinfo=UTC)
    reads: list[int] = []
    real = store.extensions
    monkeypatch.setattr(store, "extensions", lambda: reads.append(1) or real())
    webhook, other = Intake(Settings(), store, extensions_ttl_s=60), Intake(Settings(), store)
    assert webhook.extensions().find("devops-2026/ivanov-docker", "ivanov-docker") is None
    store.set_extension("ivanov-docker", until, "ill")
    assert webhook.extensions().find("devops-2026/ivanov-docker", "ivanov-docker") is None  # within the interval
    assert other.extensions().find("devops-2026/ivanov-docker", "ivanov-docker").until == until
    assert len(reads) == 2  # the webhook's first read, the other intake's
    webhook._granted = (webhook._granted[0] - 61, webhook._granted[1])  # the interval is over
    assert webhook.extensions().find("devops-2026/ivanov-docker", "ivanov-docker").until == until
