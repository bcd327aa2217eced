"""What the service does with a submission, independent of Celery: grade it, and deliver
its results to GitLab from the durable outbox. Tasks (grader/tasks.py) are thin calls into this.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import grader
from grader import assignment as assignment_mod
from grader import build_logs, provenance
from grader import report as report_mod
from grader.config import Settings
from grader.deadlines import is_late
from grader.digest import clip, state_description, status_description
from grader.errors import ConfigError, GraderError, SubmissionError
from grader.gitlab import GitLab, GitLabUnavailable
from grader.intake import Intake
from grader.messages import refusal, text
from grader.sources import extract_archive
from grader.store import Dockerfile, PendingPost, State, Store, Submission
from grader.workspace import Workspace

if TYPE_CHECKING:
    from collections.abc import Callable

    from grader.engine import Engine

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(minutes=30)


def _new_engine(settings: Settings) -> Engine:
    from grader.engine import Engine  # here: Celery's main process must not load BuildKit's parser

    return Engine.from_settings(settings)


def assignment_digest(path: Path) -> str:
    """The assignment file's identity in a submission's history (its bytes, as the verdict cache keys them)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def verdict(report: dict) -> tuple:
    """What a student would call "the same grade": the score and, per check, its status and message."""
    checks = [(v["name"], c["id"], c["status"], c["message"]) for v in report.get("variants", [])
              for c in v["checks"]] + [("", c["id"], c["status"], c["message"]) for c in report.get("checks", [])]
    return report.get("score"), report.get("error"), tuple(checks)


@dataclass
class Outcome:
    """What a grading attempt ended as, for the task to act on."""

    state: str  # graded | superseded | skipped
    score: float | None = None
    revived: list[int] = field(default_factory=list)  # superseded by mistake (by this older commit): queue them


class Service:
    """Built by the composition root (grader/app.py), which gives it its store, GitLab session and
    engine factory; `engine(settings)` makes the Docker client of each grading."""

    lease = timedelta(minutes=2)  # a delivery's claim on a post: longer than one send's two 30 s calls

    def __init__(self, settings: Settings, store: Store, gitlab: GitLab,
                 engine: Callable[[Settings], Engine] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.gitlab = gitlab
        self.engine = engine or _new_engine
        self.assignment = assignment_mod.load(settings.assignment_file)

    def _submission(self, submission_id: int) -> Submission:
        """A submission that was recorded: the store never deletes one."""
        sub = self.store.get(submission_id)
        assert sub is not None, f"submission {submission_id} is not in the store"
        return sub

    # -- grading -----------------------------------------------------------------------------
    def record(self, project, sha: str, branch: str, *, origin: str = "instructor",
               pushed_at: datetime | None = None) -> tuple[int, bool]:
        """A submission the instructor asked for (no push event): its id, and whether it is new.
        The same intake as the webhook's, so the student is the same whoever asked. `pushed_at`:
        when GitLab's push events say the commit was pushed (grade-group reads them)."""
        sub, created = Intake(self.settings, self.store).record(
            project_id=project.id, project_path=project.path_with_namespace, sha=sha, ref=f"refs/heads/{branch}",
            origin=origin, pushed_at=pushed_at, pushed_at_source="push_event" if pushed_at is not None else None)
        return sub.id, created

    @cached_property
    def intake(self) -> Intake:
        return Intake(self.settings, self.store)

    def grade(self, submission_id: int, *, post: bool = True) -> Outcome:
        """Grades one queued submission; GraderError propagates so the task can retry it.
        `post=False` leaves GitLab untouched."""
        # A row left "running" by a worker that died is taken over once it is older than a job can be.
        if not self.store.start(submission_id, stale_after=self.settings.stale_after):
            return Outcome("skipped")  # superseded, or already taken by another worker
        sub = self._submission(submission_id)
        previous = sub.report  # a regrade: the grade it had, kept until this one replaces it
        if sub.pushed_at_source is None:  # a first grading: when was it pushed, is it still the branch's newest?
            newer, revived = self._settle(sub)
            if newer is not None and self.store.supersede(sub.id):
                if post:
                    self._status(sub, "canceled",
                                 state_description("superseded", self.assignment.language, sha=newer.sha))
                return Outcome("superseded", revived=revived)
        else:
            self._judge(sub)  # the student's deadline may have moved since (an extension)
        sub = self._submission(submission_id)
        if post:
            self._status(sub, "running", state_description("running", self.assignment.language, late=sub.late))
        dockerfiles: list[Dockerfile] = []  # the files taken, kept with the verdict for similarity
        try:
            # a first grading may reuse an identical input's verdict; a regrade always grades for real
            result = self.grade_commit(sub.project_id, sub.sha, f"sub-{sub.id}", reuse=previous is None,
                                       source=f"{sub.project_path}, commit {sub.sha[:8]}", keep=dockerfiles)
        except GraderError:
            raise  # the task retries it, then gives up
        except Exception as exc:
            # A bug of ours: retrying will not help, and the commit must not say "running" for ever.
            log.exception("grading submission %s failed unexpectedly", sub.id)
            error = f"internal error ({type(exc).__name__}); an instructor can regrade it"
            if post:
                self.give_up(sub.id, error)
            else:
                self.store.mark_ungradable(sub.id, error)
            raise
        # Where the grade comes from (commit, file links into it, times), for the comment and the page.
        result = report_mod.with_provenance(
            result, sha=sub.sha, project=sub.project_path, project_url=f"{self.gitlab.url}/{sub.project_path}",
            received_at=sub.received_at.isoformat(), graded_at=datetime.now(UTC).isoformat(), late=sub.late,
            deadline=self.settings.deadline.isoformat() if self.settings.deadline else None)
        result = self._with_push_time(result, sub)
        # the engine's ids of the images graded (removed since): which build a dispute is about
        images = [v["image_id"] for v in result.get("variants") or [] if v.get("image_id")]
        self.store.finish(sub.id, result, grader.__version__, image_digests=images or None, dockerfiles=dockerfiles,
                          event="graded" if previous is None else "regraded", detail=self._provenance(sub.id))
        if post:
            # A regrade with the same verdict updates the status only: 200 students must not get
            # 200 new comments that say what the last one said.
            self._publish(sub, result, comment=previous is None or verdict(previous) != verdict(result))
        return Outcome("graded", result["score"])

    def _provenance(self, submission_id: int) -> dict:
        """What the grade was made under, for its history: the assignment file's digest and the
        grader's version, and — when a regrade runs under another assignment file than the last
        grade did — the digest it replaces, so a changed rubric is never a silent change."""
        here = {"assignment": assignment_digest(self.assignment.source), "grader": grader.__version__}
        before = next((e.detail for e in reversed(self.store.events(submission_id))
                       if e.kind in ("graded", "regraded") and e.detail and "assignment" in e.detail), None)
        if before is not None and before["assignment"] != here["assignment"]:
            here["assignment_before"] = before["assignment"]
        return here

    def grade_commit(self, project_id: int, sha: str, workspace: str, *, reuse: bool = False,
                     source: str | None = None, keep: list[Dockerfile] | None = None) -> dict:
        """The report for one commit, graded here and now; writes nothing (the store, GitLab).
        `grader grade` without --post and `regrade --dry-run` use it as it is. `reuse`: take the
        verdict of an identical earlier input (an unchanged re-push) instead of building again.
        `keep`: filled with the Dockerfiles the grading took, read before the workspace goes."""
        from grader.pipeline import grade_report
        from grader.verdict_cache import VerdictCache

        try:
            with Workspace(self.settings.work_dir, workspace) as ws:
                archive = self.gitlab.archive(project_id, sha)
                repo = extract_archive(archive, ws.path / "src", max_bytes=self.settings.max_archive_bytes,
                                       max_files=self.settings.max_archive_files,
                                       max_file_bytes=self.settings.max_file_bytes)
                cache = VerdictCache(self.settings.work_dir / "verdicts") if reuse and self.settings.verdict_cache \
                    else None
                logs = build_logs.directory(self.settings.work_dir, workspace, self.settings.build_logs_keep_days)
                log.info("%s: grading %s", workspace, source or f"project {project_id}, commit {sha[:8]}")
                report, _ = grade_report(repo, self.assignment, self.settings, self.engine(self.settings),
                                         self.assignment.language, reference=self.assignment.reference, cache=cache,
                                         source=source or f"project {project_id}, commit {sha[:8]}",
                                         job_id=self.job_id(workspace), log_dir=logs,
                                         progress=lambda step: log.info("%s: %s", workspace, step))
                log.info("%s: %s/%s%s", workspace, report.get("score"), report.get("max_score"),
                         f", build logs in {logs}" if logs else "")
                if keep is not None:
                    from grader.similarity.stored import dockerfiles_of

                    keep.extend(dockerfiles_of(repo, self.assignment))
                return report
        except SubmissionError as exc:
            return self._refusal(refusal(exc, self.assignment.language))

    def job_id(self, workspace: str) -> str:
        """The engine's name for this grading: the same for every run of one submission (a run taken
        over from a killed worker then sweeps what that worker left), never another instance's."""
        return f"{workspace}-{hashlib.sha256(self.settings.instance.encode()).hexdigest()[:6]}".lower()

    def give_up(self, submission_id: int, error: str) -> None:
        """After the last retry of an infrastructure failure: ungradable, said so on the commit."""
        self.store.mark_ungradable(submission_id, error)
        sub = self._submission(submission_id)
        # The error is the instructors' (the queue page, `grader status`); the student reads that it is not theirs.
        self._status(sub, "canceled", state_description("ungradable", self.assignment.language, late=sub.late))

    def _refusal(self, message: str) -> dict:
        """A submission that cannot be graded as given is the student's verdict: zero, with why."""
        return {"schema": report_mod.SCHEMA, "grader_version": grader.__version__, "assignment": self.assignment.id,
                "language": self.assignment.language, "score": 0.0, "max_score": self.assignment.max_score,
                "variants": [], "checks": [], "notes": [message], "error": message}

    def _publish(self, sub: Submission, result: dict, comment: bool = True) -> None:
        full = result["score"] >= result["max_score"]
        coverage = round(100 * result["score"] / result["max_score"], 1) if result["max_score"] else 0.0
        self._status(sub, "success" if full else "failed", status_description(result, late=sub.late),
                     coverage=coverage)
        if not comment:
            return
        body = report_mod.render_markdown(result) if result["variants"] else f"**0/{result['max_score']:g}**: " \
            f"{result.get('error', '')}"
        self.store.add_post(sub.id, "comment", {"note": body})

    def _status(self, sub: Submission, state: str, description: str, coverage: float | None = None) -> None:
        payload = {"state": state, "name": self.settings.status_name, "description": description,
                   "target_url": f"{self.settings.report_base_url.rstrip('/')}/reports/{sub.token}",
                   "ref": sub.ref.removeprefix("refs/heads/"), "coverage": coverage}
        self.store.add_post(sub.id, "status", payload)

    # -- push time and order ---------------------------------------------------------------------
    def _settle(self, sub: Submission) -> tuple[Submission | None, list[int]]:
        """Before a first grading: when GitLab says the commit was pushed (its push events; else the
        arrival time, said so), lateness judged by it; and whether a newer commit of the branch is
        already recorded (grader/provenance.py). Returns the newest such commit — this one is then
        superseded, unless it is on time and that one late — and the ids of newer ones that this
        older commit superseded when it was delivered late, queued again."""
        deadline, _ = self.intake.deadline(sub.project_path, sub.student)
        try:
            times = provenance.push_times(self.gitlab.push_events(sub.project_id), provenance.branch_of(sub))
        except GitLabUnavailable:
            raise  # retried with the grading; GitLab is needed for the archive anyway
        except GraderError as exc:  # e.g. the events cannot be read: the arrival time stands, and says so
            log.warning("push events of %s unreadable, judging submission %s by its arrival: %s",
                        sub.project_path, sub.id, exc)
            times = {}
        pushed = times.get(sub.sha)
        late = is_late(pushed or sub.received_at, deadline)
        self.store.set_push_time(sub.id, pushed or sub.received_at, "push_event" if pushed else "received", late)
        if sub.origin not in ("push", "merge_request"):  # the instructor asked for this very commit
            return None, []
        newer = []
        for other in self.store.same_branch(sub.id):
            try:
                if provenance.is_newer(self.gitlab, sub, other, times):
                    newer.append(other)
            except GitLabUnavailable:
                raise
            except GraderError as exc:  # e.g. the other commit is gone (force-push): it is not newer
                log.info("cannot order %s against %s: %s", sub.sha[:8], other.sha[:8], exc)
        if not newer:
            return None, []
        newest = max(newer, key=lambda o: (times.get(o.sha) or o.pushed_at or o.received_at, o.id))
        newest_late = is_late(times[newest.sha], deadline) if newest.sha in times else newest.late
        if newest_late and not late:
            return None, []  # a late push never supersedes an on-time one
        revived = [newest.id] if newest.state == State.SUPERSEDED and self.store.revive(newest.id) else []
        return newest, revived

    def _judge(self, sub: Submission) -> None:
        """Lateness again from the push time (a regrade), against the student's deadline now."""
        deadline, _ = self.intake.deadline(sub.project_path, sub.student)
        if sub.pushed_at is not None and sub.pushed_at_source is not None:
            late = is_late(sub.pushed_at, deadline)
            if late != sub.late:
                self.store.set_push_time(sub.id, sub.pushed_at, sub.pushed_at_source, late)

    def _with_push_time(self, result: dict, sub: Submission) -> dict:
        """The report's provenance with the push time, its source, and the student's deadline."""
        deadline, extension = self.intake.deadline(sub.project_path, sub.student)
        given = dict(result.get("provenance") or {})
        given.update(pushed_at=sub.pushed_at.isoformat() if sub.pushed_at else None,
                     pushed_at_source=sub.pushed_at_source, late=sub.late,
                     deadline=deadline.isoformat() if deadline else None,
                     extension_until=extension.until.isoformat() if extension else None)
        return report_mod.with_provenance(result, **given)

    def _skipped(self, sub: Submission) -> None:
        """A push the webhook does not grade: its commit says so (`skipped`), unless the same commit
        is graded another way (a merge request, another branch)."""
        if self.store.active_for_commit(sub.project_id, sub.sha) is not None:
            return
        lang = self.assignment.language
        line = text("status", "skipped_branch", lang, branch=provenance.branch_of(sub),
                    branches=", ".join(self.settings.branches))
        if self.settings.grade_merge_requests:
            line += text("status", "skipped_branch_mr", lang)
        self._status(sub, "skipped", clip(line))

    def accept(self, submission_id: int) -> bool:
        """A recorded push: older queued pushes of the project are superseded (said so on their
        commits), and this one shows `pending`, so the student sees it was received. Whether it is
        to be graded: not a push to a branch that is not graded (its commit is told so), nor an
        older commit delivered after one pushed on top of it (GitLab's `before` says so)."""
        sub = self._submission(submission_id)
        if sub.state == State.SKIPPED:
            self._skipped(sub)
            return False
        newer = self.store.newer_than_by_push(sub.id)
        # Arrived on time, so pushed on time, as was the newer one that arrived before it. One that
        # arrived late may still have been pushed on time: its worker asks GitLab before deciding.
        if newer is not None and not sub.late and self.store.supersede(sub.id):
            self._status(sub, "canceled", state_description("superseded", self.assignment.language, sha=newer.sha))
            return False
        for older in self.store.supersede_older(sub.project_id, sub.id):
            self._status(self._submission(older), "canceled",
                         state_description("superseded", self.assignment.language, sha=sub.sha))
        self._status(sub, "pending", state_description("queued", self.assignment.language, late=sub.late))
        return True

    # -- delivery ----------------------------------------------------------------------------
    def _comment(self, sub: Submission, post: PendingPost) -> None:
        key = f"post-{post.id}"
        # An earlier attempt (this worker's, or one that died before recording it) may have reached
        # GitLab although its answer was lost: look first. One read per report is cheap.
        if self.gitlab.has_comment(sub.project_id, sub.sha, key):
            return
        self.gitlab.post_comment(sub.project_id, sub.sha, post.payload["note"], key=key)

    def _deliver_status(self, sub: Submission, post: PendingPost) -> None:
        # Tried before, it may be on GitLab already (its answer lost, or our record of it lost with
        # the database): a final status posted again would show twice on the commit.
        tried = post.leased_at is not None or post.attempts > 0
        if tried and self.gitlab.shows_status(sub.project_id, sub.sha, **post.payload):
            log.info("post %s for submission %s: the commit already shows %r, not posted again", post.id, sub.id,
                     post.payload.get("state"))
            return
        self.gitlab.post_status(sub.project_id, sub.sha, **post.payload)

    def deliver_due(self, limit: int = 50) -> int:
        """Posts what is due, oldest first; returns how many are still waiting (to reschedule)."""
        now = datetime.now(UTC)
        # The lease keeps two workers delivering at once from sending the same post twice; it is
        # renewed before each send, so a batch slowed down past its lease (GitLab timing out)
        # skips what another worker took over meanwhile.
        for post in self.store.due_posts(now, limit, lease=self.lease):
            if not self.store.renew_lease(post.id, now, self.lease):
                log.info("post %s: taken over by another delivery while this batch was slow", post.id)
                continue
            sub = self._submission(post.submission_id)
            try:
                if post.kind == "status":
                    self._deliver_status(sub, post)
                else:
                    self._comment(sub, post)
            except (GitLabUnavailable, ConfigError) as exc:  # can get better: GitLab back, token fixed
                # The store hands out one post per submission and kind at a time, so a later status
                # never overtakes this one; each post in the batch is tried (and leased) once.
                wait = min(MAX_BACKOFF, timedelta(seconds=2 ** min(post.attempts, 11)))
                self.store.post_failed(post.id, str(exc), now + wait)
                log.warning("post %s for submission %s failed (%s); retry in %s", post.id, sub.id, exc, wait)
            except GraderError as exc:  # GitLab refused it for good (project or commit gone, 400): say so
                self.store.post_abandoned(post.id, str(exc))
                log.error("post %s for submission %s abandoned: %s", post.id, sub.id, exc)
            else:
                self.store.post_delivered(post.id)
        return len(self.store.due_posts(datetime.now(UTC) + MAX_BACKOFF, limit))
