"""The Dockerfiles each grading took, kept with its verdict, for similarity over a course
(grader/similarity/stored.py): the text, its path, and its fingerprint."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from grader.store.database import Database
from grader.store.records import ComparedSubmission, Dockerfile
from grader.store.schema import State, Submission, SubmissionDockerfile, UTCDateTime


def replace(s: Session, submission_id: int, files: Sequence[Dockerfile]) -> None:
    """The submission's stored files become `files`, in the caller's transaction (its verdict's)."""
    s.execute(delete(SubmissionDockerfile).where(SubmissionDockerfile.submission_id == submission_id))
    s.add_all(SubmissionDockerfile(submission_id=submission_id, variant=d.variant, path=d.path, text=d.text,
                                   digest=hashlib.sha256(d.text.encode()).hexdigest(), fingerprint=d.fingerprint)
              for d in files)


class Dockerfiles(Database):
    def dockerfiles(self, submission_id: int) -> list[Dockerfile]:
        with self._session(write=False) as s:
            rows = s.scalars(select(SubmissionDockerfile).where(SubmissionDockerfile.submission_id == submission_id)
                             .order_by(SubmissionDockerfile.variant))
            return [Dockerfile(r.variant, r.path, r.text, r.fingerprint, r.id) for r in rows]

    def compared_submissions(self, group_prefixes: Sequence[str] = ()) -> list[ComparedSubmission]:
        """Per project (under one of `group_prefixes`, subgroups too; none given: every project),
        its latest graded submission with Dockerfiles stored (a regrade in progress keeps its
        previous files until it finishes), in push order."""
        has_files = exists().where(SubmissionDockerfile.submission_id == Submission.id)
        q = (select(Submission.id, Submission.project_id, Submission.project_path, Submission.student,
                    Submission.token, Submission.pushed_at, Submission.received_at)
             .where(has_files, or_(Submission.state == State.GRADED,
                                   and_(Submission.state.in_((State.QUEUED, State.RUNNING)),
                                        Submission.score.is_not(None)))))
        if group_prefixes:
            q = q.where(or_(*(Submission.project_path.startswith(g.strip("/") + "/", autoescape=True)
                              for g in group_prefixes)))
        with self._session(write=False) as s:
            latest: dict[int, Any] = {}
            for row in s.execute(q.order_by(func.coalesce(Submission.pushed_at, Submission.received_at),
                                            Submission.id)):
                latest[row.project_id] = row  # in push order: the last one wins
            ids = [r.id for r in latest.values()]
            project_of = {r.id: r.project_id for r in latest.values()}
            first = self._first_pushes(s, list(latest))
            files: dict[int, list[Dockerfile]] = {}
            for i in range(0, len(ids), 500):
                for d in s.scalars(select(SubmissionDockerfile)
                                   .where(SubmissionDockerfile.submission_id.in_(ids[i:i + 500]))
                                   .order_by(SubmissionDockerfile.variant)):
                    when = first.get((project_of[d.submission_id], d.variant, d.digest))
                    files.setdefault(d.submission_id, []).append(Dockerfile(d.variant, d.path, d.text,
                                                                            d.fingerprint, d.id, when))
        found = [ComparedSubmission(r.id, r.project_id, r.project_path, r.student, r.token,
                                    r.pushed_at or r.received_at, tuple(files.get(r.id, ()))) for r in latest.values()]
        return sorted(found, key=lambda c: (c.push_time, c.id))

    @staticmethod
    def _first_pushes(s: Session, project_ids: list[int]) -> dict[tuple[int, str, str], datetime]:
        """(project, variant, text digest) → the earliest push that held that text: who pushed a
        text first, when both students pushed again since (a README fix keeps the Dockerfile)."""
        pushed = func.min(func.coalesce(Submission.pushed_at, Submission.received_at), type_=UTCDateTime())
        found: dict[tuple[int, str, str], datetime] = {}
        for i in range(0, len(project_ids), 500):
            rows = s.execute(select(Submission.project_id, SubmissionDockerfile.variant, SubmissionDockerfile.digest,
                                    pushed)
                             .join(Submission, Submission.id == SubmissionDockerfile.submission_id)
                             .where(Submission.project_id.in_(project_ids[i:i + 500]))
                             .group_by(Submission.project_id, SubmissionDockerfile.variant,
                                       SubmissionDockerfile.digest))
            found.update({(project, variant, digest): when for project, variant, digest, when in rows})
        return found

    def set_fingerprints(self, fingerprints: dict[int, dict]) -> None:
        """Stored Dockerfiles' fingerprints worked out again (the course's files changed): by row id."""
        with self._session() as s:
            for id, fingerprint in fingerprints.items():
                s.execute(update(SubmissionDockerfile).where(SubmissionDockerfile.id == id)
                          .values(fingerprint=fingerprint))
