"""Who holds which grading, as the broker's Redis sees it: a worker beats for the submission it
grades; the reconciler takes over a running submission whose beat stopped.

Why Redis and not the results database: the key expires by itself when the worker dies (SIGKILL,
a host lost), so "silent" needs no clock comparison across hosts, and a beat every few seconds
from every worker costs the database nothing. Why not Celery's own remote control (`inspect
active`): it answers only for workers that are alive, so it cannot say which job a dead one held.

A takeover is safe against a worker that was only slow, not dead: `Store.start` takes a submission
once, `Store.finish` closes it once, and posts are idempotent, so a job graded twice still ends in
one final status and one comment.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import redis

log = logging.getLogger(__name__)

PREFIX = "grader:heartbeat"


def _key(instance: str, submission_id: int) -> str:
    return f"{PREFIX}:{instance}:{submission_id}"


def holder_name() -> str:
    """This process on this host, as shown by `grader status`."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextmanager
def beating(client: redis.Redis, instance: str, submission_id: int, *, every_s: float,
            holder: str | None = None) -> Iterator[None]:
    """Beats every `every_s` for `submission_id` while the block runs; the key lives 3 beats, so
    one late beat (a loaded host) is not a death. Redis errors are logged, never raised: a grading
    must not fail because its heartbeat could not be written (the reconciler cannot read Redis
    either then, and sends nothing)."""
    key, ttl = _key(instance, submission_id), max(1, round(3 * every_s))
    value = json.dumps({"holder": holder or holder_name(), "since": datetime.now(UTC).isoformat()})
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                client.set(key, value, ex=ttl)
            except redis.RedisError as exc:
                log.warning("heartbeat of submission %s not written: %s", submission_id, exc)
            if stop.wait(every_s):
                return

    thread = threading.Thread(target=beat, name=f"heartbeat-{submission_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        try:
            client.delete(key)
        except redis.RedisError:
            pass  # it expires by itself


def _beats(client: redis.Redis, prefix: str) -> dict[str, dict] | None:
    """Every live beat under `prefix`: the key's last part → its value; None when Redis cannot say."""
    try:
        keys = sorted(client.scan_iter(match=f"{prefix}:*", count=500))
        values = client.mget(keys) if keys else []
    except redis.RedisError:
        return None
    found: dict[str, dict] = {}
    for key, value in zip(keys, values, strict=True):
        if value is None:
            continue  # expired between the scan and the read
        try:
            found[str(key, "utf-8")[len(prefix) + 1:]] = json.loads(value)
        except (ValueError, TypeError):
            continue
    return found


def held(client: redis.Redis, instance: str) -> dict[int, dict] | None:
    """Submission id → {holder, since} of every grading some worker is beating for; None when
    Redis cannot say (then nothing may be taken over)."""
    beats = _beats(client, f"{PREFIX}:{instance}")
    return None if beats is None else {int(k): v for k, v in beats.items() if k.isdigit()}


def silent(running: Iterable[tuple[int, datetime]], beating_ids: Iterable[int], *, grace: timedelta,
           now: datetime | None = None) -> list[int]:
    """Running submissions nobody beats for, started longer than `grace` ago (a worker that just
    took a job may not have written its first beat yet)."""
    now = now or datetime.now(UTC)
    alive = set(beating_ids)
    return [i for i, started in running if i not in alive and started < now - grace]


WORKERS = "grader:worker"


def worker_alive(client: redis.Redis, instance: str, name: str, *, engine_up: bool, every_s: float) -> None:
    """A worker's own beat (from its main process, every `every_s`): alive, and whether its engine
    answers. The queue page and `grader status` show them; the key lapses when the worker dies."""
    value = json.dumps({"engine": engine_up, "at": datetime.now(UTC).isoformat(timespec="seconds")})
    try:
        client.set(f"{WORKERS}:{instance}:{name}", value, ex=max(1, round(3 * every_s)))
    except redis.RedisError as exc:
        log.warning("worker beat of %s not written: %s", name, exc)


def workers(client: redis.Redis, instance: str) -> dict[str, bool] | None:
    """Worker name → its engine answers, of every worker that beat lately; None when unreadable."""
    beats = _beats(client, f"{WORKERS}:{instance}")
    return None if beats is None else {name: bool(v.get("engine")) for name, v in beats.items()}


def workers_of(broker_url: str, instance: str) -> dict[str, bool] | None:
    """`workers` through a short-lived client of its own (the queue page, `grader status`)."""
    client = redis.Redis.from_url(broker_url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return workers(client, instance)
    finally:
        client.close()
