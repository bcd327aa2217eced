"""The webhook receiver and report pages (`grader serve`).

The webhook does four things and nothing slow: check the secret in constant time, take the
few fields it needs (400 when missing), record the submission and enqueue it, answer 202.
GitLab gives up after 10 s and disables hooks that keep failing, so nothing here waits on
Docker or on GitLab.
"""

from __future__ import annotations

import hmac
import html
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from grader.config import Settings
from grader.store import Store

ZERO_SHA = "0" * 40
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,32}")
PUSH_EVENTS = {"Push Hook", "System Hook"}  # a system hook delivers pushes with object_kind "push"


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Push:
    project_id: int
    project_path: str
    student: str
    sha: str
    ref: str


def create_app(settings: Settings, store: Store, enqueue: Callable[[int], None]) -> FastAPI:
    settings.require("webhook_secret")
    app = FastAPI(title="grader", docs_url=None, redoc_url=None)

    @app.exception_handler(BadRequest)
    async def bad_request(_request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.post("/webhooks/gitlab", status_code=202)
    async def gitlab_webhook(request: Request) -> JSONResponse:
        _check_token(request.headers.get("X-Gitlab-Token", ""), settings.webhook_secret or "")
        body = await _read_capped(request, settings.max_webhook_bytes)
        event = request.headers.get("X-Gitlab-Event", "")
        payload = _parse(body)
        if event not in PUSH_EVENTS or payload.get("object_kind") != "push":
            return _accepted(ignored=f"not a push event ({event or 'no X-Gitlab-Event'})")
        if (payload.get("after") == ZERO_SHA) or payload.get("checkout_sha") is None:
            return _accepted(ignored="branch deleted")
        push = _push(payload)
        if settings.groups and not any(push.project_path.startswith(g.rstrip("/") + "/") for g in settings.groups):
            return _accepted(ignored=f"project {push.project_path} is not in a graded group")
        branch = push.ref.removeprefix("refs/heads/")
        if branch not in settings.branches:
            return _accepted(ignored=f"branch {branch} is not graded (graded: {', '.join(settings.branches)})")
        received = datetime.now(UTC)
        late = settings.deadline is not None and received > settings.deadline
        submission, created = store.record_push(
            project_id=push.project_id, project_path=push.project_path, student=push.student, sha=push.sha,
            ref=push.ref, event_uuid=request.headers.get("X-Gitlab-Event-UUID") or None, received_at=received,
            late=late)
        if created:
            enqueue(submission.id)
        return _accepted(submission_id=submission.id, duplicate=not created, late=late)

    # Report pages are addressed by the submission's unguessable token, never by its id.
    @app.get("/reports/{token}.json")
    def report_json(token: str) -> JSONResponse:
        submission = _by_token(store, token)
        return JSONResponse({"id": submission.id, "state": submission.state, "project": submission.project_path,
                             "sha": submission.sha, "report": submission.report, "error": submission.error})

    @app.get("/reports/{token}", response_class=HTMLResponse)
    def report_page(token: str) -> HTMLResponse:
        from grader.report import render_markdown

        submission = _by_token(store, token)
        body = render_markdown(submission.report) if submission.report else (submission.error or submission.state)
        title = html.escape(f"{submission.project_path} @ {submission.sha[:8]}")
        return HTMLResponse(f"<!doctype html><meta charset='utf-8'><title>{title}</title>"
                            f"<h1>{title}</h1><pre>{html.escape(body)}</pre>")

    @app.get("/healthz")
    def healthz() -> dict:
        return {"ok": True}

    return app


def _check_token(given: str, secret: str) -> None:
    # compare_digest takes the same time wherever the strings differ.
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise BadRequest(401, "invalid X-Gitlab-Token")


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(413, f"body larger than {limit} bytes")
    return bytes(body)


def _parse(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(400, f"body is not JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadRequest(400, "body is not a JSON object")
    return payload


def _push(payload: dict) -> Push:
    project = payload.get("project")
    if not isinstance(project, dict):
        project = {}
    fields = {
        "project_id": payload.get("project_id", project.get("id")),
        "project.path_with_namespace": project.get("path_with_namespace"),
        "user_username": payload.get("user_username"),
        "checkout_sha": payload.get("checkout_sha"),
        "ref": payload.get("ref"),
    }
    missing = [name for name, value in fields.items() if value in (None, "")]
    if missing:
        raise BadRequest(400, f"push event without {', '.join(missing)}")
    sha = str(fields["checkout_sha"])
    if len(sha) != 40 or any(c not in "0123456789abcdef" for c in sha):
        raise BadRequest(400, "checkout_sha is not a 40-character commit id")
    if not isinstance(fields["project_id"], int):
        raise BadRequest(400, "project_id is not a number")
    return Push(fields["project_id"], str(fields["project.path_with_namespace"]), str(fields["user_username"]),
                sha, str(fields["ref"]))


def _accepted(**fields: object) -> JSONResponse:
    return JSONResponse(fields, status_code=202)


def _by_token(store: Store, token: str):
    submission = store.by_token(token) if _TOKEN.fullmatch(token) else None
    if submission is None:
        raise BadRequest(404, "no such report")
    return submission
