"""What the workers' periodic task (grader.tasks.reconcile, on Celery beat) repairs without an
operator: jobs the broker lost, gradings whose worker went silent, this host's engine.

Every worker runs it, often at the same moment: each repair is safe to run twice (a submission is
re-sent only when the broker does not hold it, taken over by one conditional UPDATE, started once).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import redis

from grader import heartbeat
from grader.config import Settings
from grader.errors import GraderError
from grader.store import Store

log = logging.getLogger(__name__)

Send = Callable[[int], object]  # publishes a grading job for a submission id
GC_EVERY_S = 300.0
_last_gc = 0.0
_interrupted: set[str] = set()  # jobs this process's engine died in the middle of; swept when it answers


def remember_interrupted(job: str) -> None:
    """A grading this worker process ran when its engine stopped answering: what it left there
    (containers restored as exited, its network and rules) is swept by name once the engine is
    back, whatever its age — the periodic sweep would wait GRADER_GC_AFTER_S for it."""
    _interrupted.add(job)


def resend_lost(client: redis.Redis, store: Store, settings: Settings, send: Send) -> list[int] | None:
    """Queued (or long-running) submissions the broker holds neither waiting nor taken are sent
    again; None when the broker cannot say what it holds (then nothing is sent)."""
    held = ids_in_broker(client)
    if held is None:
        return None
    stale = datetime.now(UTC) - timedelta(seconds=settings.reconcile_s)  # a push being published right now
    lost = [i for i in store.select_stuck(settings.stale_after, queued_before=stale) if i not in held]
    for submission_id in lost:
        send(submission_id)
    if lost:
        log.warning("re-sent %d submission(s) the broker no longer held: %s", len(lost), lost[:20])
    return lost


def take_over_silent(client: redis.Redis, store: Store, settings: Settings, send: Send) -> list[int]:
    """Running gradings nobody beats for: back to queued (once, however many reconcilers run at
    the same moment: `requeue_running` is one conditional UPDATE) and sent again."""
    beating = heartbeat.held(client, settings.instance)
    if beating is None:
        return []
    grace = timedelta(seconds=settings.takeover_after_s)
    taken = [i for i in heartbeat.silent(store.running_since(), beating, grace=grace) if store.requeue_running(i)]
    for submission_id in taken:
        send(submission_id)
    if taken:
        log.warning("took over %d grading(s) whose worker went silent for %.0f s: %s", len(taken),
                    settings.takeover_after_s, taken[:20])
    return taken


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


def collect_garbage(settings: Settings) -> None:
    """This host's engine: what killed runs left (older than GRADER_GC_AFTER_S), and BuildKit's
    cache trimmed to GRADER_BUILD_CACHE_BYTES — at most every GC_EVERY_S per worker process, not
    inside every grading nor at every reconcile."""
    global _last_gc
    from grader.engine import Engine  # here: Celery's main process must not load the parser (grader/cli/serving.py)

    for job in sorted(_interrupted):
        try:
            Engine.from_settings(settings).remove_job(job)
        except GraderError:
            break  # still down: next time
        _interrupted.discard(job)
        log.warning("removed what the interrupted job %s left on this host's engine", job)
    if _last_gc and time.monotonic() - _last_gc < GC_EVERY_S:
        return
    _last_gc = time.monotonic()
    from grader import build_logs

    if pruned := build_logs.prune(settings.work_dir, settings.build_logs_keep_days):
        log.info("removed the build logs of %d submission(s) older than %g days", pruned,
                 settings.build_logs_keep_days)
    try:
        Engine.from_settings(settings).gc(settings.gc_after_s, settings.build_cache_bytes)
    except GraderError as exc:  # the engine is down: the next grading will say so loudly
        log.warning("garbage collection skipped: %s", exc)


def clear_engine(settings: Settings) -> None:
    """A full disk: all of BuildKit's cache not in use goes."""
    from grader.engine import Engine

    try:
        freed = Engine.from_settings(settings).trim_cache(0)
        log.warning("the engine's disk was full: %d MiB of build cache cleared", freed // 2**20)
    except GraderError as exc:
        log.warning("clearing the full engine failed: %s", exc)
