"""What the scoreboard, a regrade's selection, the reconciler and `grader status` read: many
submissions at a time, in few queries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select

from grader.store.database import Database
from grader.store.records import GradedSummary
from grader.store.schema import State, Submission, utcnow


class Queries(Database):
    def select_stuck(self, stale_after: timedelta, queued_before: datetime | None = None) -> list[int]:
        """Ids whose job may be missing from the queue: queued ones (recorded before `queued_before`,
        when given: a push just recorded is being published right now), and running ones started
        longer ago than `stale_after` (their worker died). After Redis lost its data, or a restore."""
        queued = Submission.state == State.QUEUED
        if queued_before is not None:
            queued = and_(queued, Submission.received_at < queued_before)
        stuck = or_(queued,
                    and_(Submission.state == State.RUNNING, Submission.started_at < utcnow() - stale_after))
        with self._session(write=False) as s:
            return list(s.scalars(select(Submission.id).where(stuck).order_by(Submission.id)))

    def running_since(self) -> list[tuple[int, datetime]]:
        """(id, started_at) of every submission being graded now, for the heartbeat takeover."""
        with self._session(write=False) as s:
            rows = s.execute(select(Submission.id, Submission.started_at)
                             .where(Submission.state == State.RUNNING, Submission.started_at.is_not(None)))
            return [(i, started) for i, started in rows if started is not None]

    def select_for_regrade(self, project_path: str | None = None, group_prefix: str | None = None, *,
                           latest_only: bool = False) -> list[int]:
        """Ids to `requeue` after a rubric change: each graded commit, or (never graded) the last
        ungradable attempt at it; none of a commit that is queued or running now.

        `project_path` picks one project, `group_prefix` every project under a group (subgroups
        too); neither: all. `latest_only`: only the latest push of each project.
        """
        q = select(Submission.id, Submission.project_id, Submission.sha, Submission.state, Submission.received_at)
        q = q.where(Submission.state.not_in((State.SUPERSEDED, State.SKIPPED)))
        if project_path is not None:
            q = q.where(Submission.project_path == project_path.strip("/"))
        if group_prefix is not None:
            q = q.where(Submission.project_path.startswith(group_prefix.strip("/") + "/", autoescape=True))
        with self._session(write=False) as s:
            rows = s.execute(q.order_by(Submission.received_at, Submission.id)).all()
        busy = {(r.project_id, r.sha) for r in rows if r.state in (State.QUEUED, State.RUNNING)}
        pick: dict[tuple[int, str], Any] = {}
        for r in rows:  # in push order: a later row for the same commit wins, a graded one always
            key = (r.project_id, r.sha)
            if key in busy:
                continue
            if r.state == State.GRADED or key not in pick or pick[key].state != State.GRADED:
                pick[key] = r
        chosen = list(pick.values())
        if latest_only:
            latest: dict[int, Any] = {}
            for r in rows:
                latest[r.project_id] = r  # rows are in push order
            chosen = [r for r in chosen if (r.project_id, r.sha) == (latest[r.project_id].project_id,
                                                                     latest[r.project_id].sha)]
        return sorted(r.id for r in chosen)

    def graded_summaries(self) -> list[GradedSummary]:
        with self._session(write=False) as s:
            rows = s.execute(select(Submission.id, Submission.project_id, Submission.project_path,
                                    Submission.student, Submission.sha, Submission.received_at,
                                    Submission.finished_at, Submission.late, Submission.score, Submission.max_score,
                                    Submission.token, Submission.pushed_at, Submission.pushed_at_source,
                                    Submission.ref, Submission.merge_request_iid)
                             # graded, or being regraded with its previous grade kept
                             .where(or_(Submission.state == State.GRADED,
                                        and_(Submission.state.in_((State.QUEUED, State.RUNNING)),
                                             Submission.score.is_not(None))))
                             .order_by(Submission.received_at, Submission.id)).all()
        summaries: list[GradedSummary] = []
        for (id, project_id, project_path, student, sha, received_at, finished_at, late, score, max_score, token,
             pushed_at, pushed_at_source, ref, mr_iid) in rows:
            # finish() sets both scores as it makes a submission graded; nothing clears them
            assert score is not None and max_score is not None, f"graded submission {id} has no score"
            summaries.append(GradedSummary(id, project_id, project_path, student, sha, received_at, finished_at, late,
                                           score, max_score, token, pushed_at, pushed_at_source, ref, mr_iid))
        return summaries

    def reports(self, ids: Iterable[int]) -> dict[int, dict]:
        ids = list(ids)
        out: dict[int, dict] = {}
        with self._session(write=False) as s:
            for i in range(0, len(ids), 500):
                rows = s.execute(select(Submission.id, Submission.report).where(Submission.id.in_(ids[i:i + 500])))
                out.update({id: report for id, report in rows})
        return out

    def status_counts(self) -> dict[str, int]:
        """Submissions per state, every state present."""
        with self._session(write=False) as s:
            rows = s.execute(select(Submission.state, func.count()).group_by(Submission.state)).all()
        counts = {str(st): 0 for st in State}
        counts.update({state: n for state, n in rows})
        return counts

    def oldest_queued_at(self) -> datetime | None:
        """When the submission that has waited longest was received (None: nothing queued)."""
        with self._session(write=False) as s:
            return s.scalar(select(func.min(Submission.received_at)).where(Submission.state == State.QUEUED))

    def recent_failures(self, limit: int = 10) -> list[Submission]:
        """The latest ungradable submissions, newest first."""
        with self._session(write=False) as s:
            return list(s.scalars(select(Submission).where(Submission.state == State.UNGRADABLE)
                                  .order_by(Submission.finished_at.desc().nulls_last(), Submission.id.desc())
                                  .limit(limit)))

    # -- Dockerfiles kept for similarity --------------------------------------------------------
