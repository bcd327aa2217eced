"""The webhook over real HTTP: secret, size, shape, branches, deletions, duplicates."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

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
    with serve(create_app(Settings(webhook_secret=SECRET, **settings), store, enqueued.append)) as url:
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
        17, "devops-2026/ivanov-docker", "ivanov", SHA, "queued")
    assert enqueued == [sub.id]


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
    no_user = dict(payload, user_username=None)
    assert "user_username" in post(url, no_user).json()["error"]
    assert enqueued == []


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
