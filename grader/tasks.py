"""The Celery app and its thin tasks: ids in, the service does the work.

Settings that keep jobs from being lost: a task is acknowledged only when it finished
(`acks_late`), requeued if its worker dies (`task_reject_on_worker_lost`), one task per worker
process at a time (`worker_prefetch_multiplier=1`), and the broker's visibility timeout is
longer than the longest job, so Redis does not hand a running job to a second worker.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING

import redis
from celery import Celery, Task
from celery.signals import worker_ready

from grader import engine_gate, heartbeat, reconciler
from grader.config import get_settings
from grader.errors import EngineDiskFull, EngineUnavailable, GraderError
from grader.gitlab import GitLabUnavailable

if TYPE_CHECKING:
    from grader.service import Service

log = logging.getLogger(__name__)
settings = get_settings()
HARD_LIMIT_S = settings.job_timeout_s + 300  # the pipeline's own watchdog fires first

app = Celery("grader", broker=settings.broker_url)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=HARD_LIMIT_S,
    # A broker that does not answer must fail a publish in seconds (the webhook then answers 503
    # and GitLab retries), not hold the request past GitLab's 10 s.
    broker_transport_options={"visibility_timeout": HARD_LIMIT_S + 600, "socket_connect_timeout": 2,
                              "socket_timeout": 5},
    task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    beat_schedule={"reconcile": {"task": "grader.reconcile", "schedule": settings.reconcile_s}},
    worker_hijack_root_logger=False,
)


@worker_ready.connect
def _gate_on_the_engine(sender: object = None, **_: object) -> None:
    """In each worker's main process: take jobs only while this host's engine answers."""
    hostname = getattr(sender, "hostname", None)
    if hostname:
        client = _redis()
        engine_gate.watch(app, hostname, lambda up: heartbeat.worker_alive(
            client, settings.instance, hostname, engine_up=up, every_s=engine_gate.WATCH_S))


def service() -> Service:
    """One per worker process, the composition root's (grader/app.py): the store's connection pool
    and the GitLab session are reused."""
    from grader.app import root

    return root().service


GITLAB_RETRIES = 10  # 10, 20, 40, 80, 160, then every 300 s: about half an hour of outage
GITLAB_RETRY_S = 10.0
GITLAB_RETRY_MAX_S = 300.0


class GraderTask(Task):
    """Retries infrastructure failures with backoff; never retries a student's verdict."""

    autoretry_for = (GraderError,)
    max_retries = 3
    retry_backoff = 30
    retry_backoff_max = 600
    retry_jitter = True


@app.task(base=GraderTask, bind=True, name="grader.grade")
def grade_submission(self: Task, submission_id: int) -> None:
    try:
        with heartbeat.beating(_redis(), settings.instance, submission_id, every_s=settings.heartbeat_s,
                               holder=f"{self.request.hostname or heartbeat.holder_name()}"), \
                delivering_meanwhile():
            outcome = service().grade(submission_id)
        for newer in outcome.revived:  # an older commit delivered late had superseded it: grade it after all
            enqueue(newer)
    except EngineDiskFull as exc:
        reconciler.clear_engine(settings)  # so the next job finds room; this one says why it was not graded
        service().give_up(submission_id, str(exc))
    except GraderError as exc:
        if isinstance(exc, EngineUnavailable):
            reconciler.remember_interrupted(service().job_id(f"sub-{submission_id}"))
            if self.request.hostname:
                engine_gate.stop_consuming(app, self.request.hostname)  # the retry goes to another host
        # GitLab down (the archive cannot be fetched) gets better by itself: a patient schedule, so an
        # outage of minutes never leaves a commit "not graded"; anything else gets three tries.
        patient = isinstance(exc, GitLabUnavailable)
        if self.request.retries >= (GITLAB_RETRIES if patient else self.max_retries):
            service().give_up(submission_id, str(exc))
            return
        service().store.requeue_running(submission_id)  # the retry must find it queued again
        if patient:
            wait = min(GITLAB_RETRY_S * 2**self.request.retries, GITLAB_RETRY_MAX_S) + random.uniform(0, 3)
            raise self.retry(exc=exc, countdown=wait, max_retries=GITLAB_RETRIES) from exc
        raise
    finally:
        deliver_posts.delay()


DELIVER_WHILE_GRADING_S = 1.0


def _courier() -> Service:
    """The delivery thread's own Service: its own GitLab session and database pool, so posting
    shares no connection with the grading's archive download and writes (grader/app.py)."""
    from grader.app import root

    return root().courier


@contextmanager
def delivering_meanwhile(every_s: float = DELIVER_WHILE_GRADING_S) -> Iterator[None]:
    """While the block (a grading) runs, a thread of this worker process delivers due posts every
    `every_s`. Deliveries are Celery tasks too, and on a worker busy grading they wait in the queue
    behind it: a `running` status written as the build starts would otherwise reach GitLab with the
    result, minutes later, and a push arriving meanwhile would show nothing until then. The store's
    lease on each post keeps this thread and the delivery tasks of other workers from sending one
    post twice; a failure here is logged and never touches the grading."""
    stop = threading.Event()

    def deliver() -> None:
        while not stop.wait(every_s):
            try:
                _courier().deliver_due()
            except Exception as exc:  # noqa: BLE001 - the outbox keeps the posts; the tasks deliver them later
                log.warning("delivery during grading failed: %s", exc)

    thread = threading.Thread(target=deliver, name="deliver-while-grading", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)  # at most one delivery batch in flight


@app.task(name="grader.reconcile", ignore_result=True)
def reconcile() -> None:
    """Every GRADER_RECONCILE_S (Celery beat, in every worker): what the database says is waiting
    but the broker no longer holds — Redis restarted empty, a publish lost — is sent again; a
    running grading whose worker stopped beating (killed, host lost) is taken over; due posts are
    delivered; this host's engine is swept now and then (grader/reconciler.py). Nobody has to run
    `grader regrade --stuck`. A job sent twice is graded once (Store.start takes a submission once)."""
    client = _redis()
    if reconciler.resend_lost(client, service().store, settings, grade_submission.delay) is None:
        return  # the broker cannot say what it holds: sending blind could flood a long queue
    reconciler.take_over_silent(client, service().store, settings, grade_submission.delay)
    # Retries of what GitLab did not take (down, 5xx) ride on this beat too: one delivery per
    # reconcile, whatever happens, so an outage during a busy evening costs one cheap query every
    # GRADER_RECONCILE_S, never a pile of tasks; the outbox's leases keep two workers from
    # sending one post twice (Store.due_posts).
    deliver_posts.delay()
    reconciler.collect_garbage(settings)


@app.task(name="grader.deliver", ignore_result=True)
def deliver_posts(chain: bool = False) -> None:
    """Posts due statuses and comments: sent when a push arrives or a grading ends, and by every
    reconcile (Celery beat), which retries what GitLab did not take. `chain` is accepted and
    ignored: messages queued by the release that rescheduled deliveries itself may still arrive."""
    del chain
    service().deliver_due()


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=5)


def broker_ready() -> None:
    """Raises unless the broker answers (the webhook's /readyz, and its check before recording)."""
    _redis().ping()


def enqueue(submission_id: int) -> None:
    """Called by the webhook: the pending status goes out first, then the grading (none for an
    older commit delivered after a newer one, whose status says superseded)."""
    grade = service().accept(submission_id)
    deliver_posts.delay()
    if grade:
        grade_submission.delay(submission_id)


def enqueue_pushes(submission_ids: Sequence[int]) -> None:
    """Called by the webhook's intake thread for the pushes it recorded together, each with its
    `pending` status: their grading jobs in one LPUSH — one command, so all queued or none (raises
    when the broker does not take them) — and soon after a delivery of the outbox. Superseding
    older queued pushes is the worker's (Service.grade settles each first grading against the newer
    pushes of its branch), so nothing else happens per push here.

    The messages are written to Redis directly, shaped as Celery's own (tests/unit/test_web.py
    compares the two): `Task.delay` costs about 1.5 ms of CPU in kombu (a new Redis client per
    publish, the exchange declared again, deep copies), which at 500 pushes a second is a core.
    LPUSH with several values keeps their order for the worker's BRPOP: the first pushed is the
    first graded."""
    deliver = _deliveries.due()
    messages = [task_message("grader.grade", (i,)) for i in submission_ids]
    if deliver:  # first, so that the pending statuses go out before the gradings start
        messages.insert(0, task_message("grader.deliver", ()))
    if not messages:
        return
    _redis().lpush(_QUEUE, *messages)
    if not deliver:
        _deliveries.later()


_QUEUE = app.conf.task_default_queue  # "celery"; the grading tasks take Celery's default route


def task_message(task: str, args: tuple) -> bytes:
    """A task message as Celery 5 (protocol 2) and kombu's Redis transport write it for `delay`."""
    task_id = str(uuid.uuid4())
    body = json.dumps([list(args), {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    return json.dumps({
        "body": base64.b64encode(body.encode()).decode(), "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": task_id, "shadow": None, "eta": None, "expires": None,
                    "group": None, "group_index": None, "retries": 0,
                    "timelimit": [app.conf.task_time_limit, app.conf.task_soft_time_limit], "root_id": task_id,
                    "parent_id": None, "argsrepr": repr(tuple(args)), "kwargsrepr": "{}",
                    "origin": _origin(os.getpid()),
                    "ignore_result": bool(app.conf.task_ignore_result), "replaced_task_nesting": 0,
                    "stamped_headers": None, "stamps": {}},
        "properties": {"correlation_id": task_id, "reply_to": app.thread_oid, "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": _QUEUE}, "priority": 0,
                       "body_encoding": "base64", "delivery_tag": str(uuid.uuid4())},
    }).encode()


@lru_cache(maxsize=4)
def _origin(pid: int) -> str:
    """The sender Celery names in a message (gen<pid>@<host>), once per process."""
    from celery.utils.nodenames import anon_nodename

    return anon_nodename()


class _Deliveries:
    """At most one outbox delivery per EVERY_S from this process, however many pushes: the
    first push of a quiet spell sends one with its job; the pushes after it within the interval
    are covered by one sent when it ends (their statuses were committed before they got here)."""

    EVERY_S = 0.5

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last = 0.0
        self._timer: threading.Timer | None = None

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last >= self.EVERY_S and self._timer is None:
                self._last = now
                return True
            return False

    def later(self) -> None:
        with self._lock:
            if self._timer is not None:
                return
            wait = max(0.0, self._last + self.EVERY_S - time.monotonic())
            self._timer = threading.Timer(wait, self._send)
            self._timer.daemon = True
            self._timer.start()

    def _send(self) -> None:
        with self._lock:  # cleared before sending: a push arriving now schedules the next one
            self._timer = None
            self._last = time.monotonic()
        try:
            _redis().lpush(_QUEUE, task_message("grader.deliver", ()))
        except redis.RedisError as exc:  # the statuses wait in the outbox; the reconciler delivers them
            log.warning("could not queue a delivery of the outbox: %s", exc)


_deliveries = _Deliveries()


def notify(submission_id: int) -> None:
    """Called by the webhook for a push it records but does not grade (another branch): its
    commit's `skipped` status goes out through the outbox."""
    service().accept(submission_id)
    deliver_posts.delay()
