"""The webhook over real HTTP: secret, size, shape, branches, deletions, duplicates."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
import requests

from grader.config import Settings
from grader.store import Store
from grader.web import create_app
from tests.support.asgi import serve
from tests.support.fake_gitlab import FakeGitLab, push_hook_headers

SECRET = "s3cret-webhook-token"
SHA = "a" * 40


def payloads(*paths: str) -> list[dict]:
    """Push Hook bodies for a push of SHA to each project."""
    with FakeGitLab() as gitlab:
        return [gitlab.push_payload(gitlab.add_project(p, id=i), after=SHA) for i, p in enumerate(paths, 17)]


@contextmanager
def webhook(tmp_path, **settings) -> Iterator[tuple[str, Store, list[int]]]:
    """(webhook URL, store, enqueued ids) of an app on a SQLite store with these settings."""
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    enqueued: list[int] = []
    with serve(create_app(Settings(webhook_secret=SECRET, **settings), store, enqueued.extend)) as url:
        yield url + "/webhooks/gitlab", store, enqueued


@pytest.fixture
def hook(tmp_path):
    """(url, store, enqueued ids, a push payload) for a webhook app on a SQLite store."""
    [payload] = payloads("devops-2026/ivanov-docker")
    with webhook(tmp_path, branches=["main"]) as (url, store, enqueued):
        yield url, store, enqueued, payload


def post(url: str, payload, *, secret: str = SECRET, uuid: str | None = None, event: str = "Push Hook",
         body: bytes | None = None) -> requests.Response:
    headers = push_hook_headers(secret, event_uuid=uuid, event=event)
    return requests.post(url, data=body if body is not None else json.dumps(payload), headers=headers, timeout=5)


def test_a_push_is_recorded_enqueued_and_answered_202(hook):
    url, store, enqueued, payload = hook
    r = post(url, payload)
    assert r.status_code == 202
    sub = store.get(r.json()["submission_id"])
    assert (sub.project_id, sub.project_path, sub.student, sub.sha, sub.state) == (
        17, "devops-2026/ivanov-docker", "ivanov-docker", SHA, "queued")
    assert enqueued == [sub.id]


def test_the_student_is_the_projects_whoever_pushed(hook):
    url, store, _, payload = hook
    first = post(url, payload).json()["submission_id"]
    ta = dict(payload, user_username="ta-petrova", checkout_sha="b" * 40, after="b" * 40)
    second = post(url, ta).json()["submission_id"]
    assert store.get(first).student == store.get(second).student == "ivanov-docker"


def test_wrong_or_missing_token_is_401_and_records_nothing(hook):
    url, store, enqueued, payload = hook
    assert post(url, payload, secret="guess").status_code == 401
    r = requests.post(url, json=payload, headers={"X-Gitlab-Event": "Push Hook"}, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid X-Gitlab-Token"
    assert enqueued == [] and store.status_counts()["queued"] == 0


def test_malformed_body_is_400_with_a_json_error(hook):
    url, _, enqueued, payload = hook
    assert post(url, payload, body=b"{not json").status_code == 400
    broken = {k: v for k, v in payload.items() if k != "checkout_sha"} | {"after": SHA, "checkout_sha": "xyz"}
    r = post(url, broken)
    assert r.status_code == 400 and "checkout_sha" in r.json()["error"]
    no_sha = dict(payload, checkout_sha=None)  # not a deletion (after is a commit): a broken event
    r = post(url, no_sha)
    assert r.status_code == 400 and "checkout_sha" in r.json()["error"]
    assert enqueued == []


def _nested(depth: int) -> bytes:
    return b'{"object_kind": "push", "x": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize("change, word", [
    ({"project_id": True}, "project_id"),
    ({"project_id": 2**31}, "project_id"),
    ({"project_id": "17"}, "project_id"),
    ({"project_id": -1}, "project_id"),
    ({"ref": "refs/tags/v1"}, "not a branch"),
    ({"ref": "x" * 300}, "ref"),
    ({"ref": None}, "ref"),
    ({"project": {"id": 17, "path_with_namespace": "devops-2026/../other-course/x"}}, "plain group/project path"),
    ({"project": {"id": 17, "path_with_namespace": "a/" + "b" * 600}}, "path_with_namespace"),
    ({"project": "devops-2026/ivanov-docker"}, "project"),
    ({"project": None}, "project"),
])
def test_bad_payload_fields_are_a_json_400_and_record_nothing(hook, change, word):
    url, store, enqueued, payload = hook
    r = post(url, dict(payload) | change)
    assert r.status_code == 400 and word in r.json()["error"], r.text
    assert enqueued == [] and store.status_counts().get("queued", 0) == 0


@pytest.mark.parametrize("body", [_nested(100_000), b'{"object_kind": "push", "ref": "refs/heads/ma\\u0000in"}',
                                  b'{"object_kind": "push", "ref": "refs/heads/ma\x00in"}', b"[1, 2]", b"\xff\xfe"])
def test_hostile_bodies_are_a_json_400_never_a_500(hook, body):
    url, _, enqueued, payload = hook
    r = post(url, payload, body=body)
    assert r.status_code == 400 and r.json()["error"], r.text
    assert enqueued == []


def test_a_broker_that_cannot_take_the_job_means_503_and_nothing_recorded(tmp_path):
    [payload] = payloads("devops-2026/ivanov-docker")
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    taken: list[int] = []

    def refuse(_ids: list[int]) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    with serve(create_app(Settings(webhook_secret=SECRET), store, refuse)) as base:
        r = post(base + "/webhooks/gitlab", payload, uuid="33333333-3333-3333-3333-333333333333")
    assert r.status_code == 503 and "try again" in r.json()["error"]
    assert store.status_counts().get("queued", 0) == 0  # forgotten: GitLab's retry is not a "duplicate"
    with serve(create_app(Settings(webhook_secret=SECRET), store, taken.extend)) as base:  # the broker is back
        again = post(base + "/webhooks/gitlab", payload, uuid="33333333-3333-3333-3333-333333333333")
    assert again.status_code == 202 and again.json()["duplicate"] is False and len(taken) == 1


def test_readyz_says_whether_the_broker_and_database_answer(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    down = {"broker": True}

    def ready() -> None:
        if down["broker"]:
            raise ConnectionError("broker down")

    [payload] = payloads("devops-2026/ivanov-docker")
    with serve(create_app(Settings(webhook_secret=SECRET), store, lambda _ids: None, ready=ready)) as base:
        not_ready = requests.get(base + "/readyz", timeout=5)
        refused = post(base + "/webhooks/gitlab", payload)
        live = requests.get(base + "/healthz", timeout=5)
        down["broker"] = False
        ready_now = requests.get(base + "/readyz", timeout=5)
    assert (not_ready.status_code, live.status_code, ready_now.status_code) == (503, 200, 200)
    assert "broker" in not_ready.json()["problems"][0]
    assert refused.status_code == 503 and store.status_counts().get("queued", 0) == 0


def test_body_over_the_limit_is_413(hook):
    url, _, enqueued, payload = hook
    r = post(url, payload, body=b"{" + b" " * (2 * 1024 * 1024) + b"}")
    assert r.status_code == 413 and enqueued == []


def test_redelivered_event_creates_no_second_job(hook):
    url, _, enqueued, payload = hook
    first = post(url, payload, uuid="11111111-1111-1111-1111-111111111111")
    again = post(url, payload, uuid="11111111-1111-1111-1111-111111111111")
    same_sha = post(url, payload, uuid="22222222-2222-2222-2222-222222222222")
    assert again.json() == {"submission_id": first.json()["submission_id"], "duplicate": True, "late": False}
    assert same_sha.json()["duplicate"] is True
    assert len(enqueued) == 1


def test_branch_deletion_and_other_branches_are_ignored(hook):
    url, _, enqueued, payload = hook
    deleted = dict(payload, after="0" * 40, checkout_sha=None)
    assert post(url, deleted).json() == {"ignored": "branch deleted"}
    feature = dict(payload, ref="refs/heads/feature")
    assert "not graded" in post(url, feature).json()["ignored"]
    assert "not a push" in post(url, payload, event="Issue Hook").json()["ignored"]
    assert enqueued == []


def test_push_after_the_deadline_is_recorded_as_late(tmp_path):
    [payload] = payloads("course/petrov")
    with webhook(tmp_path, deadline="2020-01-01T00:00:00+03:00") as (url, store, _):
        r = post(url, payload)
    assert r.json()["late"] is True and store.get(r.json()["submission_id"]).late


def test_report_page_is_found_by_its_token_only(hook):
    url, store, _, payload = hook
    sub_id = post(url, payload).json()["submission_id"]
    base = url.rsplit("/webhooks", 1)[0]
    token = store.get(sub_id).token
    page = requests.get(f"{base}/reports/{token}", timeout=5)
    assert page.status_code == 200 and "devops-2026/ivanov-docker" in page.text
    assert requests.get(f"{base}/reports/{token}.json", timeout=5).json()["id"] == sub_id
    # Ids are sequential: counting them must not show other students' reports.
    for guess in (f"submissions/{sub_id}", f"reports/{sub_id}", f"reports/{token[:-1]}x", "reports/..%2F..%2Fetc"):
        assert requests.get(f"{base}/{guess}", timeout=5).status_code == 404, guess


def test_projects_outside_the_graded_groups_are_ignored(tmp_path):
    inside, outside = payloads("devops-2026/sub/ivanov", "devops-2026-old/ivanov")
    with webhook(tmp_path, groups=["devops-2026"]) as (url, _, enqueued):
        assert "not in a graded group" in post(url, outside).json()["ignored"]
        assert post(url, inside).json()["duplicate"] is False
    assert len(enqueued) == 1


def test_a_push_is_recorded_with_its_pending_status_and_a_redelivery_adds_none(hook):
    url, store, enqueued, payload = hook
    first = post(url, payload, uuid="44444444-4444-4444-4444-444444444444").json()
    again = post(url, payload, uuid="44444444-4444-4444-4444-444444444444").json()
    posts = store.due_posts(datetime.now(UTC) + timedelta(seconds=1))
    sub = store.get(first["submission_id"])
    assert (again["duplicate"], enqueued) == (True, [sub.id])
    assert [(p.submission_id, p.kind, p.payload["state"], p.payload["ref"]) for p in posts] == [
        (sub.id, "status", "pending", "main")]
    assert posts[0].payload["target_url"].endswith(f"/reports/{sub.token}")  # the page the 202 names


def test_the_webhooks_grading_job_is_the_message_celery_itself_sends():
    """enqueue_pushes writes the jobs to Redis itself (kombu costs ~1.5 ms a publish): it must be what
    `grade_submission.delay` sends, field for field, or a worker could not run it."""
    from grader import tasks

    with tasks.app.connection_for_write("memory://") as conn:  # Celery's own message, kept in memory
        tasks.grade_submission.apply_async((42,), connection=conn)
        tasks.deliver_posts.apply_async((), connection=conn)
        celery = [conn.default_channel._get("celery") for _ in range(2)]
    ours = [json.loads(tasks.task_message("grader.grade", (42,))), json.loads(tasks.task_message("grader.deliver", ()))]

    def shape(message: dict) -> dict:  # what differs per message: its ids, and the delivery tag
        for key in ("id", "root_id"):
            message["headers"][key] = "ID" if message["headers"][key] == message["properties"]["correlation_id"] \
                else "?"
        message["properties"].update(correlation_id="ID", delivery_tag="TAG")
        return message

    assert [shape(m) for m in ours] == [shape(m) for m in celery]


@pytest.fixture
def empty_redis() -> Iterator:
    """A client of an empty Redis database of this test's own (never one it did not pick), flushed after."""
    import redis

    for db in range(15, 0, -1):
        client = redis.Redis(host="127.0.0.1", port=6379, db=db)
        if client.dbsize() == 0 and client.set("grader-test-web-lock", "1", nx=True, ex=600):
            try:
                yield client
            finally:
                client.flushdb()
            return
    pytest.fail("no empty Redis database among 1..15")


def test_enqueue_pushes_queues_the_jobs_in_order_and_at_most_one_outbox_delivery_per_interval(monkeypatch, empty_redis):
    from grader import tasks

    monkeypatch.setattr(tasks, "_redis", lambda: empty_redis)  # the real Redis, a database of the test's own
    monkeypatch.setattr(tasks, "_deliveries", tasks._Deliveries())
    monkeypatch.setattr(tasks._Deliveries, "EVERY_S", 0.2)
    tasks.enqueue_pushes([1])
    tasks.enqueue_pushes([2, 3])
    tasks.enqueue_pushes([])
    time.sleep(0.5)

    def taken() -> list[str]:  # in the order a worker takes them (BRPOP: the right end first)
        return [json.loads(m)["headers"]["argsrepr"] for m in reversed(empty_redis.lrange("celery", 0, -1))]

    # the first push of a quiet spell brings a delivery first; the two after it share one when the interval ends
    assert taken() == ["()", "(1,)", "(2,)", "(3,)", "()"]
    empty_redis.delete("celery")
    tasks.enqueue_pushes([4, 5])  # a quiet spell again: its delivery goes first, in the same command
    assert taken() == ["()", "(4,)", "(5,)"]


def test_the_broker_check_is_skipped_just_after_a_job_was_taken_and_a_failing_publish_still_keeps_nothing(tmp_path):
    [first, second, third] = payloads("devops-2026/a-docker", "devops-2026/b-docker", "devops-2026/c-docker")
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    pings: list[int] = []
    broker = {"up": True}

    def take(_ids: list[int]) -> None:
        if not broker["up"]:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def ready() -> None:
        pings.append(1)
        take([])

    with serve(create_app(Settings(webhook_secret=SECRET), store, take, ready=ready)) as base:
        taken = post(base + "/webhooks/gitlab", first)
        quick = post(base + "/webhooks/gitlab", second)  # within a second: no check before recording
        broker["up"] = False
        refused = post(base + "/webhooks/gitlab", third)  # the publish fails: forgotten, 503
        after = post(base + "/webhooks/gitlab", third)  # checked again, before anything is written
    assert (taken.status_code, quick.status_code, refused.status_code, after.status_code) == (202, 202, 503, 503)
    assert len(pings) == 2  # the first push's, and the one after the failed publish
    assert store.status_counts()["queued"] == 2  # the refused push left no row ...
    assert len(store.due_posts(datetime.now(UTC) + timedelta(seconds=1))) == 2  # ... and no status
