"""The webhook's intake thread (grader/intake_queue.py) over real HTTP: pushes that arrive
together are recorded in one transaction and queued in one broker command, and each is still
answered for itself — nothing answered before it is committed and queued, nothing kept of a batch
the broker refused."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from grader.config import Settings
from grader.store import Store
from grader.web import create_app
from tests.support.asgi import serve
from tests.support.fake_gitlab import FakeGitLab, push_hook_headers

SECRET = "s3cret-webhook-token"


def bodies(n: int) -> list[bytes]:
    with FakeGitLab() as gitlab:
        return [json.dumps(gitlab.push_payload(gitlab.add_project(f"devops-2026/student{i}-docker", id=100 + i),
                                               after=f"{i + 1:040x}")).encode() for i in range(n)]


def post_all(url: str, payloads: list[bytes], uuids: list[str]) -> list[requests.Response]:
    def post(i: int) -> requests.Response:
        return requests.post(url, data=payloads[i], headers=push_hook_headers(SECRET, event_uuid=uuids[i]), timeout=20)

    with ThreadPoolExecutor(max_workers=len(payloads)) as pool:
        return list(pool.map(post, range(len(payloads))))


def test_pushes_arriving_together_are_queued_in_few_broker_commands_and_each_answered_with_its_own_row(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    batches: list[list[int]] = []
    first = threading.Event()

    def enqueue(ids: list[int]) -> None:  # a slow broker: the pushes arriving meanwhile wait together
        batches.append(list(ids))
        first.set()
        time.sleep(0.3)

    payloads = bodies(24)
    uuids = [f"00000000-0000-0000-0000-{i:012d}" for i in range(24)]
    with serve(create_app(Settings(webhook_secret=SECRET), store, enqueue)) as base:
        answers = post_all(base + "/webhooks/gitlab", payloads, uuids)
        again = post_all(base + "/webhooks/gitlab", payloads[:4], uuids[:4])  # GitLab redelivering four
    assert [a.status_code for a in answers] == [202] * 24, [a.text for a in answers if a.status_code != 202]
    ids = [a.json()["submission_id"] for a in answers]
    for i, id in enumerate(ids):  # each answer names the row of its own push
        sub = store.get(id)
        assert (sub.event_uuid, sub.project_id, sub.sha) == (uuids[i], 100 + i, f"{i + 1:040x}")
    assert sorted(i for batch in batches for i in batch) == sorted(ids)  # each queued exactly once
    assert len(batches) < 24 and max(len(b) for b in batches) > 1  # ... and together, not one command each
    assert [(a.status_code, a.json()["duplicate"], a.json()["submission_id"]) for a in again] == [
        (202, True, id) for id in ids[:4]]
    assert sum(len(b) for b in batches) == 24  # the redeliveries queued nothing


def test_a_batch_the_broker_refuses_is_answered_503_and_leaves_no_row_or_status(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    refused: list[list[int]] = []

    def enqueue(ids: list[int]) -> None:
        refused.append(list(ids))
        time.sleep(0.2)
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    payloads = bodies(12)
    uuids = [f"11111111-0000-0000-0000-{i:012d}" for i in range(12)]
    with serve(create_app(Settings(webhook_secret=SECRET), store, enqueue)) as base:
        answers = post_all(base + "/webhooks/gitlab", payloads, uuids)
    assert [a.status_code for a in answers] == [503] * 12
    assert all("try again" in a.json()["error"] for a in answers)
    assert sum(len(b) for b in refused) >= 1  # the control: they were recorded and offered to the broker
    assert sum(store.status_counts().values()) == 0  # ... and forgotten with their statuses: GitLab's retries are new
    assert store.due_posts(store_now()) == []


def store_now():
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=1)


def test_a_method_other_than_post_is_refused_with_405_and_the_pages_are_still_served(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    with serve(create_app(Settings(webhook_secret=SECRET), store, lambda _ids: None)) as base:
        get = requests.get(base + "/webhooks/gitlab", timeout=5)
        health = requests.get(base + "/healthz", timeout=5)
    assert (get.status_code, get.headers["allow"], get.json()["error"]) == (405, "POST", "the webhook takes POST")
    assert get.headers["x-content-type-options"] == "nosniff"  # the security headers, as every page has
    assert health.status_code == 200 and health.json() == {"ok": True}


def test_pushes_arriving_while_the_database_is_down_are_answered_503_and_recorded_once_on_gitlabs_retry(tmp_path):
    """A PostgreSQL restart (an upgrade, a failover): every push meanwhile gets a retryable 503 —
    not a 500, which GitLab counts against the hook —, and its retry, once the server is back,
    is recorded and queued exactly once."""
    from tests.support.postgres import private_postgres

    queued: list[int] = []
    payloads = bodies(6)
    uuids = [f"22222222-0000-0000-0000-{i:012d}" for i in range(6)]
    with private_postgres() as pg:
        store = Store(pg.url)
        with serve(create_app(Settings(webhook_secret=SECRET), store, queued.extend)) as base:
            url = base + "/webhooks/gitlab"
            before = post_all(url, payloads[:2], uuids[:2])  # control: the same service records while it is up
            pg.stop()
            time.sleep(1.2)  # longer than the webhook keeps the extensions it read: it reads again, and fails
            during = post_all(url, payloads[2:], uuids[2:])
            pg.start()
            retried = post_all(url, payloads[2:], uuids[2:])
            again = post_all(url, payloads[2:], uuids[2:])  # a redelivery of an accepted push
        rows = store.status_counts()
    assert [a.status_code for a in before] == [202, 202]
    assert [a.status_code for a in during] == [503] * 4, [a.text for a in during]
    assert all("try again" in a.json()["error"] for a in during)
    assert [a.status_code for a in retried] == [202] * 4 and not any(a.json()["duplicate"] for a in retried)
    assert [(a.status_code, a.json()["duplicate"]) for a in again] == [(202, True)] * 4
    ids = [a.json()["submission_id"] for a in before + retried]
    assert sorted(queued) == sorted(ids)  # each queued once, nothing of the refused deliveries
    assert sum(rows.values()) == 6
