"""A worker takes jobs only while its own engine answers.

Several worker hosts share one queue. When one host's engine dies (dockerd killed, disk full,
upgraded), its worker would otherwise keep taking jobs and fail each of them — three retries, and
the student's commit ends "not graded" although the other hosts are fine. So the worker stops
consuming the moment a grading meets a dead engine (before the job's retry is published, so the
retry goes to another host), and a watcher in the worker's main process consumes again once the
engine answers. If every engine is down, jobs wait in the queue rather than fail.

Only the Docker SDK is used here, never grader.engine: this runs in Celery's main process, which
must not load BuildKit's parser (see `grader worker` in grader/cli/serving.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import docker
import requests
from celery import Celery

log = logging.getLogger(__name__)

QUEUE = "celery"
WATCH_S = 5.0


def engine_answers() -> bool:
    try:
        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (docker.errors.DockerException, requests.RequestException):
        return False


def stop_consuming(app: Celery, hostname: str) -> None:
    """From a pool process: this worker (its main process) stops taking jobs; waits for its reply,
    so the caller's retry is published only once this worker no longer takes it."""
    try:
        app.control.cancel_consumer(QUEUE, destination=[hostname], reply=True, timeout=3)
    except Exception:  # noqa: BLE001 - the retry is published anyway; the watcher tries again
        log.exception("could not stop %s taking jobs", hostname)
    log.warning("the engine of %s does not answer: it takes no jobs until it does", hostname)


def watch(app: Celery, hostname: str, beat: Callable[[bool], None] | None = None,
          every_s: float = WATCH_S) -> threading.Thread:
    """In the worker's main process: consume while the engine answers, stop while it does not;
    `beat(engine_up)` says the worker is alive (grader.heartbeat.worker_alive) every round."""

    def loop() -> None:
        consuming, rounds = True, 0
        while True:
            up, rounds = engine_answers(), rounds + 1
            if beat is not None:
                beat(up)
            if consuming and not up:
                app.control.cancel_consumer(QUEUE, destination=[hostname])
                log.warning("the engine of %s does not answer: it takes no jobs until it does", hostname)
            # a pool process may have stopped it between two looks (an engine back within WATCH_S):
            # ask the worker itself now and then
            elif up and (not consuming or rounds % 6 == 0) and not _consumes(app, hostname):
                app.control.add_consumer(QUEUE, destination=[hostname])
                log.warning("the engine of %s answers again: it takes jobs again", hostname)
            consuming = up
            time.sleep(every_s)

    thread = threading.Thread(target=loop, name="engine-gate", daemon=True)
    thread.start()
    return thread


def _consumes(app: Celery, hostname: str) -> bool:
    """Whether the worker consumes the queue now (a pool process may have stopped it)."""
    try:
        replies = app.control.inspect(destination=[hostname], timeout=2).active_queues() or {}
    except Exception:  # noqa: BLE001 - cannot tell: leave it as it is
        return True
    return any(q.get("name") == QUEUE for q in replies.get(hostname, []))
