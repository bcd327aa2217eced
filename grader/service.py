"""What the service does with a submission, independent of Celery: grade it, and deliver
its results to GitLab from the durable outbox. Tasks (grader/tasks.py) are thin calls into this.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grader
from grader import assignment as assignment_mod
from grader import report as report_mod
from grader.config import Settings
from grader.errors import ConfigError, GraderError, SubmissionError
from grader.gitlab import GitLab, GitLabUnavailable
from grader.intake import Intake
from grader.messages import refusal
from grader.sources import extract_archive
from grader.store import PendingPost, Store, Submission
from grader.workspace import Workspace

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(minutes=30)


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


class Service:
    def __init__(self, settings: Settings, store: Store, gitlab: GitLab) -> None:
        self.settings = settings
        self.store = store
        self.gitlab = gitlab
        self.assignment = assignment_mod.load(settings.assignment_file)

    def _submission(self, submission_id: int) -> Submission:
        """A submission that was recorded: the store never deletes one."""
        sub = self.store.get(submission_id)
        assert sub is not None, f"submission {submission_id} is not in the store"
        return sub

    # -- grading -----------------------------------------------------------------------------
    def record(self, project, sha: str, branch: str) -> tuple[int, bool]:
        """A submission the instructor asked for (no push event): its id, and whether it is new.
        The same intake as the webhook's, so the student is the same whoever asked."""
        sub, created = Intake(self.settings, self.store).record(
            project_id=project.id, project_path=project.path_with_namespace, sha=sha, ref=f"refs/heads/{branch}")
        return sub.id, created

    def grade(self, submission_id: int, *, post: bool = True) -> Outcome:
        """Grades one queued submission; GraderError propagates so the task can retry it.
        `post=False` leaves GitLab untouched."""
        # A row left "running" by a worker that died is taken over once it is older than a job can be.
        if not self.store.start(submission_id, stale_after=self.settings.stale_after):
            return Outcome("skipped")  # superseded, or already taken by another worker
        sub = self._submission(submission_id)
        previous = sub.report  # a regrade: the grade it had, kept until this one replaces it
        if post:
            self._status(sub, "running", "grading…")
        try:
            # a first grading may reuse an identical input's verdict; a regrade always grades for real
            result = self.grade_commit(sub.project_id, sub.sha, f"sub-{sub.id}", reuse=previous is None,
                                       source=f"{sub.project_path}, commit {sub.sha[:8]}")
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
        self.store.finish(sub.id, result, grader.__version__)
        if post:
            # A regrade with the same verdict updates the status only: 200 students must not get
            # 200 new comments that say what the last one said.
            self._publish(sub, result, comment=previous is None or verdict(previous) != verdict(result))
        return Outcome("graded", result["score"])

    def grade_commit(self, project_id: int, sha: str, workspace: str, *, reuse: bool = False,
                     source: str | None = None) -> dict:
        """The report for one commit, graded here and now; writes nothing (the store, GitLab).
        `grader grade` without --post and `regrade --dry-run` use it as it is. `reuse`: take the
        verdict of an identical earlier input (an unchanged re-push) instead of building again."""
        from grader.engine import Engine
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
                report, _ = grade_report(repo, self.assignment, self.settings, Engine(self.settings),
                                         self.assignment.language, reference=self.assignment.reference, cache=cache,
                                         source=source or f"project {project_id}, commit {sha[:8]}")
                return report
        except SubmissionError as exc:
            return self._refusal(refusal(exc, self.assignment.language))

    def give_up(self, submission_id: int, error: str) -> None:
        """After the last retry of an infrastructure failure: ungradable, said so on the commit."""
        self.store.mark_ungradable(submission_id, error)
        sub = self._submission(submission_id)
        self._status(sub, "canceled", f"not graded (grader problem): {error}"[:255])

    def _refusal(self, message: str) -> dict:
        """A submission that cannot be graded as given is the student's verdict: zero, with why."""
        return {"schema": report_mod.SCHEMA, "grader_version": grader.__version__, "assignment": self.assignment.id,
                "language": self.assignment.language, "score": 0.0, "max_score": self.assignment.max_score,
                "variants": [], "checks": [], "notes": [message], "error": message}

    def _publish(self, sub: Submission, result: dict, comment: bool = True) -> None:
        full = result["score"] >= result["max_score"]
        coverage = round(100 * result["score"] / result["max_score"], 1) if result["max_score"] else 0.0
        self._status(sub, "success" if full else "failed", f"{result['score']:g}/{result['max_score']:g}",
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

    def accept(self, submission_id: int) -> None:
        """A recorded push: older queued pushes of the project are superseded (said so on their
        commits), and this one shows `pending`, so the student sees it was received."""
        sub = self._submission(submission_id)
        for older in self.store.supersede_older(sub.project_id, sub.id):
            self._status(self._submission(older), "canceled", f"superseded by a newer push ({sub.sha[:8]})")
        self._status(sub, "pending", "queued for grading")

    # -- delivery ----------------------------------------------------------------------------
    def _comment(self, sub: Submission, post: PendingPost) -> None:
        key = f"post-{post.id}"
        # An earlier attempt (this worker's, or one that died before recording it) may have reached
        # GitLab although its answer was lost: look first. One read per report is cheap.
        if self.gitlab.has_comment(sub.project_id, sub.sha, key):
            return
        self.gitlab.post_comment(sub.project_id, sub.sha, post.payload["note"], key=key)

    def deliver_due(self, limit: int = 50) -> int:
        """Posts what is due, oldest first; returns how many are still waiting (to reschedule)."""
        now = datetime.now(UTC)
        # The lease keeps two workers delivering at once from sending the same post twice.
        for post in self.store.due_posts(now, limit, lease=timedelta(minutes=2)):
            sub = self._submission(post.submission_id)
            try:
                if post.kind == "status":
                    self.gitlab.post_status(sub.project_id, sub.sha, **post.payload)
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
