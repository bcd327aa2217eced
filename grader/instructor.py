"""What an instructor asks of the service from the command line: grade a project now, queue a
group, regrade, the scoreboard, extensions, what the service is doing (`grader status`), and
similarity from the store. The store, GitLab, the broker and Celery are reached from here, over
the parts the composition root built (grader/app.py); the CLI only renders what comes back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from grader.errors import ConfigError, GraderError, SubmissionError

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from grader.app import App
    from grader.config import Settings
    from grader.gitlab import ProjectRef
    from grader.service import Service
    from grader.store import PendingPost, Submission
    from grader.workbench import Comparison


class NothingSelected(GraderError):
    """The selection is empty (no graded push matches, nothing stored): nothing to act on."""

    exit_code = 1


@dataclass(frozen=True)
class Queued:
    """One project of `grade-group`: its head recorded and queued, already known, or skipped (why)."""

    path: str
    created: bool = False
    skipped: str | None = None


class GroupQueueing:
    """Every project of a group, queued at the head of its default branch one by one as it is
    iterated (so a progress bar can follow); the tallies are complete once it has been."""

    def __init__(self, service: Service, projects: list[ProjectRef]) -> None:
        self._service = service
        self.projects = projects
        self.queued = self.skipped = 0

    def __len__(self) -> int:
        return len(self.projects)

    def __iter__(self) -> Iterator[Queued]:
        from grader.tasks import enqueue

        for ref in self.projects:
            branch = ref.default_branch or "main"
            try:
                commit = self._service.gitlab.commit_sha(ref.id, branch)
            except (GraderError, SubmissionError) as exc:  # an empty project has no commit: say so, go on
                self.skipped += 1
                yield Queued(ref.path_with_namespace, skipped=str(exc))
                continue
            sub_id, created = self._service.record(ref, commit, branch)
            if created:
                enqueue(sub_id)
                self.queued += 1
            yield Queued(ref.path_with_namespace, created=created)

    @property
    def known(self) -> int:
        """Already graded or queued."""
        return len(self.projects) - self.queued - self.skipped


@dataclass(frozen=True)
class Preview:
    """One submission of `regrade --dry-run`: its score now and graded again here (None: not graded)."""

    student: str
    project: str
    old_score: float | None
    new_score: float | None
    error: str | None = None

    def row(self) -> dict:
        return {"student": self.student, "project": self.project, "old_score": self.old_score,
                "new_score": self.new_score}


@dataclass(frozen=True)
class Status:
    """`grader status`: the store's view, the broker's queue (or why it did not say) and the workers."""

    counts: dict[str, int]
    failures: list[Submission]
    oldest: datetime | None
    abandoned: list[PendingPost]
    queued: int | str
    workers: str | None  # the workers line; None when the broker did not answer

    @property
    def healthy(self) -> bool:
        """Something is being graded: the broker answers and a worker does."""
        return self.workers is not None and not self.workers.startswith("workers: none")


class Instructor:
    def __init__(self, app: App) -> None:
        self.app = app

    @property
    def settings(self) -> Settings:
        return self.app.settings

    # -- grading -----------------------------------------------------------------------------
    def grade_now(self, project: str, sha: str | None, *, post: bool, progress: Callable[[str], None]) -> dict:
        """One project graded here (default: the head of its default branch). Without `post` nothing
        is written anywhere; with it the grade is recorded and posted to the commit."""
        svc = self.app.service
        ref = svc.gitlab.project(project)
        branch = ref.default_branch or "main"
        commit = svc.gitlab.commit_sha(ref.id, sha or branch)
        if not post:
            progress(f"grading {ref.path_with_namespace} at {commit[:12]} (dry run: nothing recorded or posted)")
            return svc.grade_commit(ref.id, commit, f"grade-{ref.id}-{commit[:12]}")
        sub_id, created = svc.record(ref, commit, branch)
        if not created:
            svc.store.requeue([sub_id])
        progress(f"grading {ref.path_with_namespace} at {commit[:12]} (submission {sub_id})")
        svc.grade(sub_id, post=True)
        for _ in range(10):  # one post per submission and kind goes out per pass, in order
            if not svc.deliver_due():
                break
        stored = svc.store.get(sub_id)
        if stored is None or stored.report is None:
            raise GraderError("the submission was not graded (taken over by a worker, or superseded)")
        return stored.report

    def queue_group(self, group: str) -> GroupQueueing:
        """Every project of `group` (subgroups included), to be queued as the result is iterated."""
        svc = self.app.service
        return GroupQueueing(svc, svc.gitlab.group_projects(group))

    # -- regrading ---------------------------------------------------------------------------
    def select(self, *, project: str | None, group: str | None, all_pushes: bool, stuck: bool) -> list[int]:
        """The submissions to regrade: the latest graded push of each matching project (every push
        with `all_pushes`), or with `stuck` what is queued or running longer than a job can take."""
        store = self.app.store
        if stuck:
            # The worker takes a queued one, or a running one this old, exactly once (Store.start).
            return store.select_stuck(self.settings.stale_after)
        ids = store.select_for_regrade(project_path=project, group_prefix=group, latest_only=not all_pushes)
        if not ids:
            raise NothingSelected("nothing matches: no graded push of " + (project or group or "any project")
                                  + " (check the path: `grader scoreboard` lists the projects)")
        return ids

    def groups_of(self, ids: Sequence[int]) -> set[str]:
        """The groups the submissions' projects are in (a regrade across several asks first)."""
        store = self.app.store
        paths = [sub.project_path for sub in map(store.get, ids) if sub is not None]
        return {path.rsplit("/", 1)[0] for path in paths}

    def preview(self, ids: Sequence[int]) -> Iterator[Preview]:
        """Each submission graded here, with its old and new score; nothing written or posted."""
        svc = self.app.service
        for sub_id in ids:
            sub = svc.store.get(sub_id)
            if sub is None:
                continue
            try:
                new, error = svc.grade_commit(sub.project_id, sub.sha, f"preview-{sub.id}")["score"], None
            except GraderError as exc:
                new, error = None, str(exc)
            yield Preview(sub.student, sub.project_path, sub.score, new, error)

    def regrade(self, ids: Sequence[int], *, stuck: bool, reason: str | None, actor: str) -> int:
        """Queues the submissions again (`stuck`: sends them again as they are); how many were sent.
        `reason` and `actor` (who asked, and why) belong in each submission's history."""
        from grader.tasks import grade_submission

        # The request lands in each submission's history with the requeue itself: the grade that
        # answers it (Store.finish, event "regraded") names who asked and why. A stuck job sent
        # again as it is changes no grade, so it is no request.
        sent = list(ids) if stuck else self.app.store.requeue(ids, event="regrade_requested", actor=actor,
                                                               reason=reason)
        for sub_id in sent:
            grade_submission.delay(sub_id)
        return len(sent)

    # -- the course's records ----------------------------------------------------------------
    def scoreboard(self) -> dict:
        from grader.history import board

        return board(self.settings, self.app.store)

    def extension(self, who: str) -> tuple[datetime, str | None] | None:
        """The extension granted to `who` (a student, or a project path) with `grader extend`."""
        key = who.strip().strip("/").lower() if "/" in who else who.strip()
        return self.app.store.extensions().get(key)

    def extend(self, who: str, until: str, reason: str | None, actor: str | None = None) -> datetime:
        """A later deadline for `who`, kept in the database; ConfigError when it is not later.
        It changes final scores without a rebuild, so each of the student's submissions says so in
        its history (who, why, until when)."""
        from grader.deadlines import check_later, parse_until

        store = self.app.store
        deadline = parse_until(until, "--until")
        check_later(deadline, self.settings.deadline, "--until")
        store.set_extension(who, deadline, reason)
        self._record_extension(who, actor, reason, {"until": deadline.isoformat()})
        return deadline

    def remove_extension(self, who: str, actor: str | None = None) -> None:
        if not self.app.store.remove_extension(who):
            raise ConfigError(f"{who} has no extension granted with `grader extend`")
        self._record_extension(who, actor, None, {"until": None})

    def _record_extension(self, who: str, actor: str | None, reason: str | None, detail: dict) -> None:
        from grader.history import attempts

        key = who.strip().strip("/").lower()
        store = self.app.store
        subs = [a for a in attempts(store) if a.student == who.strip() or a.project_path.lower() == key]
        for a in subs:
            store.add_event(a.id, "extension", actor=actor, reason=reason, detail=detail)

    def status(self) -> Status:
        """What to look at on a deadline night; the store's part raises, the broker's is reported."""
        import redis

        store = self.app.store
        counts, failures, oldest = store.status_counts(), store.recent_failures(5), store.oldest_queued_at()
        abandoned = store.abandoned_posts(5)
        queued: int | str  # its length, or why the broker did not say
        try:
            queued = redis.Redis.from_url(self.settings.broker_url, socket_timeout=3).llen("celery")
        except redis.RedisError as exc:
            return Status(counts, failures, oldest, abandoned, f"broker unreachable ({exc})", None)
        return Status(counts, failures, oldest, abandoned, queued, workers_line(self.settings))

    def compare_stored(self, groups: Sequence[str], assignment: Path | None, base: Sequence[Path]) -> Comparison:
        """Each project's latest graded submission under `groups` (default GRADER_GROUPS, else every
        project) compared from the fingerprints stored with their verdicts."""
        from grader.similarity import stored
        from grader.workbench import Comparison, similarity_config, skipped

        _, config = similarity_config(self.settings, assignment, base)
        groups = groups or self.settings.groups
        index, subs = stored.load(self.app.store, config, groups)
        if not subs:
            where = ", ".join(groups) if groups else "any project"
            raise NothingSelected(f"no graded submission with stored Dockerfiles under {where} (submissions graded "
                                  "before schema version 3 have none until regraded)")
        return Comparison(index.pairs(), config.threshold, skipped(index))


def workers_line(settings: Settings) -> str:
    """The workers answering the broker's ping, and whether their engine does (their heartbeats)."""
    from grader import heartbeat
    from grader.tasks import app as celery_app

    names = sorted(name for reply in celery_app.control.ping(timeout=1.5) for name in reply)
    if not names:
        return "workers: none answering (nothing is being graded: start one, see docs/operating.md)"
    engines = heartbeat.workers_of(settings.broker_url, settings.instance) or {}
    shown = [f"{n}: engine not answering, takes no jobs" if engines.get(n) is False else n for n in names]
    return f"workers: {len(names)} answering ({', '.join(shown)})"
