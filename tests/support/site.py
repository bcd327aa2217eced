"""A results store holding what a course's pages show: students with several attempts in every
state, graded reports of each kind (tests/support/reports.py), one student's hostile strings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from grader.report import with_provenance
from grader.store import Store
from tests.support import reports as R

GITLAB = "https://gitlab.example.edu"
INSTRUCTOR_TOKEN = "instructor-token-for-tests-0123456789"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Site:
    store: Store
    tokens: dict[str, str] = field(default_factory=dict)  # "ivanov-1" -> report token
    shas: dict[str, str] = field(default_factory=dict)


def populate(store: Store, tmp: Path) -> Site:
    site = Site(store)
    kinds = R.kinds(tmp)
    plan = [  # (key, project id, student, kind or state, late)
        ("ivanov-1", 1, "ivanov-docker", "one_mistake", False),
        ("ivanov-2", 1, "ivanov-docker", "full_marks", False),
        ("ivanov-3", 1, "ivanov-docker", "queued", False),
        ("petrov-1", 2, "petrov-docker", "hostile", True),
        ("sidorov-1", 3, "sidorov-docker", "wrong_base_everywhere", False),
        ("sidorov-2", 3, "sidorov-docker", "multistage_build_failed", False),
        ("smirnova-1", 4, "smirnova-docker", "superseded", False),
        ("smirnova-2", 4, "smirnova-docker", "ungradable", False),
        ("orlova-1", 5, "orlova-docker", "nonroot_running_as_root", False),
    ]
    for n, (key, project_id, student, kind, late) in enumerate(plan):
        sha = f"{n + 1:02x}" * 20
        project = f"devops-2026/{student}"
        sub, _ = store.record_push(project_id=project_id, project_path=project, student=student, sha=sha,
                                   ref="refs/heads/main", event_uuid=None, received_at=T0 + timedelta(minutes=10 * n),
                                   late=late)
        site.tokens[key], site.shas[key] = sub.token or "", sha
        if kind == "queued":
            continue
        if kind == "superseded":
            continue  # superseded below, by the project's next push
        if kind == "ungradable":
            store.supersede_older(project_id, sub.id)
            store.mark_ungradable(sub.id, "engine unavailable: Cannot connect to the Docker daemon")
            continue
        report = R.report(kinds[kind](), provenance=False)
        report = with_provenance(report, sha=sha, project=project, project_url=f"{GITLAB}/{project}",
                                 received_at=sub.received_at.isoformat(),
                                 graded_at=(sub.received_at + timedelta(minutes=3)).isoformat(), late=late)
        assert store.start(sub.id)
        assert store.finish(sub.id, report, "0.1.0")
    return site
