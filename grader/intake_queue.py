"""The webhook's way into intake: one thread per process takes the pushes waiting, records them
in one transaction and queues their jobs in one broker command, then answers each.

Why a thread of its own: recording a push is blocking work (the database, the broker), and the
event loop must not wait on it. Handing each push to a pool thread cost a thread switch and a
fight for the GIL per push (the pool's threads and the loop taking turns every few milliseconds:
the tail at a few hundred pushes a second), a transaction per push and a broker round trip per
push. Here the loop only queues the push and awaits its answer; the thread takes everything
waiting (up to BATCH), so under load one commit and one LPUSH serve dozens of pushes, and when
pushes are rare each goes alone at once.

Nothing is answered before the commit that holds its row and the LPUSH that holds its job: a
batch whose jobs the broker refused is forgotten (rows and statuses) and every push in it gets
503, so GitLab's retry of each is a new attempt, not a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from grader.errors import GraderError
from grader.intake import Delivery, Intake

log = logging.getLogger(__name__)

Answer = tuple[int, dict]  # HTTP status, JSON body


class BrokerTook:
    """When the broker last took a job. Within FRESH_S of that the check before recording is
    skipped — a round trip saved —, because a broker that went away meanwhile fails the publish,
    and the pushes are then forgotten and answered 503 all the same: nothing kept either way."""

    FRESH_S = 1.0

    def __init__(self) -> None:
        self.at = -math.inf

    def fresh(self) -> bool:
        return time.monotonic() - self.at < self.FRESH_S


@dataclass
class IntakeQueue:
    """`enqueue(ids)` queues the grading jobs of new pushes (raises when the broker does not take
    them); `notify(id)` has a skipped push's commit told why (None: recorded only); `ready()`
    raises when the broker does not answer; `language`: of the `pending` status recorded with a push."""

    intake: Intake
    enqueue: Callable[[Sequence[int]], None]
    notify: Callable[[int], None] | None
    ready: Callable[[], None] | None
    language: str

    BATCH = 128

    def __post_init__(self) -> None:
        self.took = BrokerTook()
        self._waiting: queue.SimpleQueue[tuple[Delivery, asyncio.AbstractEventLoop, asyncio.Future[Answer]]] = \
            queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0

    async def take(self, delivery: Delivery) -> Answer:
        """The answer for one delivery, once it is recorded and queued (or refused)."""
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[Answer] = loop.create_future()
        self._start()
        self._waiting.put((delivery, loop, answered))
        return await answered

    def _start(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:  # one thread per process: a forked child starts its own
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._waiting.get()]
            while len(batch) < self.BATCH:
                try:
                    batch.append(self._waiting.get_nowait())
                except queue.Empty:
                    break
            try:
                answers = self.answer([delivery for delivery, _, _ in batch])
            except GraderError as exc:  # the database went before the batch was written (the extensions' read):
                # GitLab's retry may find it back
                log.warning("intake could not take a batch of %d pushes: %s", len(batch), exc)
                answers = [(503, {"error": f"not recorded, try again: {exc}"})] * len(batch)
            except Exception:  # noqa: BLE001 - the thread must outlive any one batch; GitLab retries a 500
                log.exception("intake failed on a batch of %d pushes", len(batch))
                answers = [(500, {"error": "internal error, try again"})] * len(batch)
            by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Answer], Answer]]] = {}
            for (_, loop, answered), answer in zip(batch, answers, strict=True):
                by_loop.setdefault(loop, []).append((answered, answer))
            for loop, pairs in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_resolve, pairs)
                except RuntimeError:  # that loop is closed: nobody waits for these answers any more
                    pass

    def answer(self, batch: Sequence[Delivery]) -> list[Answer]:
        """Records and queues the batch, or nothing of a push: a broker that does not answer gets
        503 before anything is written (unless it took a job within the last second); a publish
        that fails has the new rows removed (with their statuses) and 503. A push to grade is
        recorded with its `pending` status; superseding older queued pushes is the worker's."""
        if self.ready is not None and not self.took.fresh() and any(self._publisher(d) for d in batch):
            try:
                self.ready()
            except Exception as exc:  # noqa: BLE001 - whatever the broker client raises means "not now"
                return [(503, {"error": f"broker unavailable, try again: {str(exc)[:300]}"})] * len(batch)
        recorded = self.intake.record_many(batch, self.language)  # a GraderError: the whole batch 503 (_run)
        answers: list[Answer | None] = [None] * len(batch)
        for i, r in enumerate(recorded):
            if isinstance(r, GraderError):
                answers[i] = (503, {"error": f"not recorded, try again: {r}"})
            elif isinstance(r, Exception):
                log.error("push %s of project %s not recorded: %s", batch[i].sha, batch[i].project_id, r)
                answers[i] = (500, {"error": "internal error, try again"})
        new = [i for i, r in enumerate(recorded) if isinstance(r, tuple) and r[1]]
        graded = [i for i in new if batch[i].skipped is None]
        if graded and not self._publish([recorded_id(recorded[i]) for i in graded]):
            for i in graded:
                answers[i] = (503, {"error": "not queued, try again: the broker did not take the job"})
        for i in new:
            if batch[i].skipped is not None and self.notify is not None and not self._tell(recorded_id(recorded[i])):
                answers[i] = (503, {"error": "not queued, try again: the broker did not take the notice"})
        for i, r in enumerate(recorded):
            if answers[i] is None and isinstance(r, tuple):
                answers[i] = _accepted(batch[i], *r)
        return [a if a is not None else (500, {"error": "internal error, try again"}) for a in answers]

    def _publisher(self, d: Delivery) -> Callable | None:
        return self.enqueue if d.skipped is None else self.notify

    def _publish(self, ids: list[int]) -> bool:
        try:
            self.enqueue(ids)
        except Exception as exc:  # noqa: BLE001 - whatever the broker client raises: not queued
            log.warning("the broker did not take %d grading jobs: %s", len(ids), exc)
            self.took.at = -math.inf
            self._forget(ids)
            return False
        self.took.at = time.monotonic()
        return True

    def _tell(self, id: int) -> bool:
        assert self.notify is not None
        try:
            self.notify(id)
        except Exception as exc:  # noqa: BLE001 - as for a grading job
            log.warning("the broker did not take the notice of submission %d: %s", id, exc)
            self.took.at = -math.inf
            self._forget([id])
            return False
        return True

    def _forget(self, ids: list[int]) -> None:
        for id in ids:
            try:
                self.intake.store.forget(id)
            except GraderError as exc:  # the database went too: the reconciler re-sends a queued row
                log.error("submission %d was recorded but could not be queued nor forgotten: %s", id, exc)


def recorded_id(r: object) -> int:
    assert isinstance(r, tuple), "only a recorded push has an id"
    return r[0].id


def _accepted(d: Delivery, submission, created: bool) -> Answer:
    fields: dict = {"submission_id": submission.id, "duplicate": not created}
    if d.skipped is not None:
        fields = {"ignored": d.skipped, **fields}
    else:
        fields["late"] = submission.late
    return 202, fields


def _resolve(pairs: list[tuple[asyncio.Future[Answer], Answer]]) -> None:
    for answered, answer in pairs:
        if not answered.done():  # a request whose client went away was cancelled
            answered.set_result(answer)
