"""The Celery app and its thin tasks: ids in, the service does the work.

Settings that keep jobs from being lost: a task is acknowledged only when it finished
(`acks_late`), requeued if its worker dies (`task_reject_on_worker_lost`), one task per worker
process at a time (`worker_prefetch_multiplier=1`), and the broker's visibility timeout is
longer than the longest job, so Redis does not hand a running job to a second worker.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import redis
from celery import Celery, Task

from grader import heartbeat
from grader.config import get_settings
from grader.errors import GraderError
from grader.store import Store

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


@lru_cache(maxsize=1)
def service():
    """One per worker process: the store's connection pool and the GitLab session are reused."""
    from grader.gitlab import GitLab
    from grader.service import Service
    from grader.store import Store

    s = get_settings()
    s.require("gitlab_url", "gitlab_token")
    return Service(s, Store(s.database_url), GitLab(s.gitlab_url, s.gitlab_token))


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
                               holder=f"{self.request.hostname or heartbeat.holder_name()}"):
            outcome = service().grade(submission_id)
        for newer in outcome.revived:  # an older commit delivered late had superseded it: grade it after all
            enqueue(newer)
    except GraderError as exc:
        if self.request.retries >= self.max_retries:
            service().give_up(submission_id, str(exc))
            return
        service().store.requeue_running(submission_id)  # the retry must find it queued again
        raise
    finally:
        deliver_posts.delay()


@app.task(name="grader.reconcile", ignore_result=True)
def reconcile() -> None:
    """Every GRADER_RECONCILE_S (Celery beat, in every worker): what the database says is waiting
    but the broker no longer holds — Redis restarted empty, a publish lost — is sent again; a
    running grading whose worker stopped beating (killed, host lost) is taken over; due posts are
    delivered. Nobody has to run `grader regrade --stuck`. A job sent twice is graded once
    (Store.start takes a submission once)."""
    client = _redis()
    held = ids_in_broker(client)
    if held is None:  # the broker cannot say: sending blind could flood a long queue
        return
    store = service().store
    stale = datetime.now(UTC) - timedelta(seconds=settings.reconcile_s)
    lost = [i for i in store.select_stuck(settings.stale_after, queued_before=stale) if i not in held]
    for submission_id in lost:
        grade_submission.delay(submission_id)
    if lost:
        log.warning("re-sent %d submission(s) the broker no longer held: %s", len(lost), lost[:20])
    take_over_silent(client, store)
    deliver_posts.delay()
    _collect_garbage()


def take_over_silent(client: redis.Redis, store: Store) -> list[int]:
    """Running gradings nobody beats for: back to queued (once, however many reconcilers run at
    the same moment: `requeue_running` is one conditional UPDATE) and sent again."""
    beating = heartbeat.held(client, settings.instance)
    if beating is None:
        return []
    grace = timedelta(seconds=settings.takeover_after_s)
    taken = [i for i in heartbeat.silent(store.running_since(), beating, grace=grace) if store.requeue_running(i)]
    for submission_id in taken:
        grade_submission.delay(submission_id)
    if taken:
        log.warning("took over %d grading(s) whose worker went silent for %.0f s: %s", len(taken),
                    settings.takeover_after_s, taken[:20])
    return taken


_last_gc = 0.0
GC_EVERY_S = 300.0


def _collect_garbage() -> None:
    """This host's engine: what killed runs left (older than GRADER_GC_AFTER_S), and BuildKit's
    cache trimmed to GRADER_BUILD_CACHE_BYTES — here, at most every GC_EVERY_S per worker process,
    not inside every grading nor at every reconcile."""
    global _last_gc
    from grader.engine import Engine

    if time.monotonic() - _last_gc < GC_EVERY_S and _last_gc:
        return
    _last_gc = time.monotonic()
    try:
        Engine(settings).gc(settings.gc_after_s, settings.build_cache_bytes)
    except GraderError as exc:  # the engine is down: the next grading will say so loudly
        log.warning("garbage collection skipped: %s", exc)


def ids_in_broker(client: redis.Redis, queue: str = "celery") -> set[int] | None:
    """Submission ids of grading tasks waiting in the queue or taken by a worker and not yet
    acknowledged (kombu's Redis transport keeps those in the `unacked` hash); None when unreadable."""
    try:
        waiting = client.lrange(queue, 0, -1)
        taken = [json.loads(v)[0] for v in client.hvals("unacked")]
    except (redis.RedisError, ValueError, IndexError, TypeError):
        return None
    ids: set[int] = set()
    for message in [*waiting, *taken]:
        try:
            body = json.loads(message) if isinstance(message, (bytes, str)) else message
            headers = body.get("headers", {})
            if headers.get("task") == "grader.grade":
                ids.add(int(str(headers.get("argsrepr", "")).strip("(),[] ")))
        except (ValueError, AttributeError, TypeError):
            continue
    return ids


FOLLOW_UP_S = 5
CHAIN_TTL_S = 3 * FOLLOW_UP_S  # a chain not heard of for this long is taken as gone


@app.task(name="grader.deliver", ignore_result=True)
def deliver_posts(chain: bool = False) -> None:
    """Posts due statuses and comments. While some wait (GitLab down), one *chain* of deliveries
    reschedules itself every FOLLOW_UP_S; the deliveries that end gradings join it instead of
    starting one each, so an outage during a busy evening keeps one chain, not hundreds."""
    waiting = service().deliver_due()
    if not waiting:
        if chain:
            _forget_chain(_redis())
        return
    if chain or _start_chain(_redis()):
        _keep_chain(_redis())
        deliver_posts.apply_async(kwargs={"chain": True}, countdown=FOLLOW_UP_S)


def _chain_key() -> str:
    return f"grader:{settings.instance}:deliver-chain"


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2, socket_timeout=5)


def broker_ready() -> None:
    """Raises unless the broker answers (the webhook's /readyz, and its check before recording)."""
    _redis().ping()


def _start_chain(client: redis.Redis) -> bool:
    """True when no chain runs (or it went silent): the caller starts one."""
    try:
        return bool(client.set(_chain_key(), "1", nx=True, ex=CHAIN_TTL_S))
    except redis.RedisError:  # better a second chain than none
        return True


def _keep_chain(client: redis.Redis) -> None:
    try:
        client.set(_chain_key(), "1", ex=CHAIN_TTL_S)
    except redis.RedisError:  # the chain goes on; a grading may start a second one
        pass


def _forget_chain(client: redis.Redis) -> None:
    try:
        client.delete(_chain_key())
    except redis.RedisError:  # the key expires by itself
        pass


def enqueue(submission_id: int) -> None:
    """Called by the webhook: the pending status goes out first, then the grading (none for an
    older commit delivered after a newer one, whose status says superseded)."""
    grade = service().accept(submission_id)
    deliver_posts.delay()
    if grade:
        grade_submission.delay(submission_id)


def notify(submission_id: int) -> None:
    """Called by the webhook for a push it records but does not grade (another branch): its
    commit's `skipped` status goes out through the outbox."""
    service().accept(submission_id)
    deliver_posts.delay()
