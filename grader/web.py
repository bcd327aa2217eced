"""The webhook receiver and report pages (`grader serve`).

The webhook does four things and nothing slow: check the secret in constant time, validate the
few fields it needs (a JSON 400 naming the field otherwise), record the submission and enqueue it
(both, or neither: 503 so GitLab retries), answer 202.
GitLab gives up after 10 s and disables hooks that keep failing, so nothing here waits on
Docker or on GitLab.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.types import Receive, Scope, Send

from grader import assignment
from grader.config import Settings
from grader.errors import GraderError
from grader.intake import Delivery, Intake
from grader.intake_queue import IntakeQueue
from grader.pages import SECURITY_HEADERS
from grader.pages import install as install_pages
from grader.store import Store

log = logging.getLogger(__name__)
WEBHOOK_PATH = "/webhooks/gitlab"
ZERO_SHA = "0" * 40
PUSH_EVENTS = {"Push Hook", "System Hook"}  # a system hook delivers pushes with object_kind "push"
MERGE_REQUEST_EVENTS = {"Merge Request Hook", "System Hook"}  # ... and merge requests with "merge_request"
MERGE_REQUEST_ACTIONS = ("open", "reopen", "update")  # a head to grade; close, merge, approvals are not
MAX_ID = 2**31 - 1  # GitLab's ids are 32-bit integers; a bigger one is not GitLab's


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Project(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictInt | None = Field(default=None, gt=0, le=MAX_ID)
    path_with_namespace: str = Field(min_length=3, max_length=512)


class PushEvent(BaseModel):
    """The fields of GitLab's Push Hook the grader reads (docs: user/project/integrations/webhook_events),
    each checked; anything else in the body is ignored."""

    model_config = ConfigDict(extra="ignore")
    object_kind: str = Field(max_length=64)
    ref: str = Field(max_length=255)
    before: str | None = Field(default=None, max_length=64)
    after: str | None = Field(default=None, max_length=64)
    checkout_sha: str | None = Field(default=None, max_length=64)
    project_id: StrictInt | None = Field(default=None, gt=0, le=MAX_ID)
    project: _Project

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA


class _Commit(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(pattern=r"^[0-9a-f]{40}$")


class _SourceProject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    path_with_namespace: str = Field(min_length=3, max_length=512)


class _MergeRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    iid: StrictInt = Field(gt=0, le=MAX_ID)
    source_branch: str = Field(min_length=1, max_length=244)  # refs/heads/ + it fits GitLab's 255
    target_branch: str = Field(min_length=1, max_length=244)
    source_project_id: StrictInt = Field(gt=0, le=MAX_ID)
    state: str = Field(max_length=32)
    action: str | None = Field(default=None, max_length=32)
    oldrev: str | None = Field(default=None, max_length=64)
    last_commit: _Commit
    source: _SourceProject | None = None  # the source project (a fork's, for an MR from a fork)


class MergeRequestEvent(BaseModel):
    """The fields of GitLab's Merge Request Hook the grader reads (docs: user/project/integrations/
    webhook_events, "Merge request events"), each checked; anything else is ignored."""

    model_config = ConfigDict(extra="ignore")
    object_kind: str = Field(max_length=64)
    project: _Project  # the target project
    object_attributes: _MergeRequest


class _GraderApp(FastAPI):
    """FastAPI for the pages, with POST /webhooks/gitlab answered in front of it, in plain ASGI:
    FastAPI's routing, middleware and request objects cost more CPU per push than recording it
    (a third of the webhook's time at 500 pushes a second)."""

    webhook: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.webhook is not None and scope["type"] == "http" and scope["path"] == WEBHOOK_PATH:
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, store: Store, enqueue: Callable[[Sequence[int]], None],
               ready: Callable[[], None] | None = None, notify: Callable[[int], None] | None = None) -> FastAPI:
    """`enqueue(ids)` hands submissions recorded together to the broker (raises when it cannot: none
    is then queued); `ready()` raises when a dependency (database, broker) does not answer, for
    /readyz; `notify(id)` has the commit of a push recorded as skipped told why (a status through
    the outbox; raises like enqueue)."""
    settings.require("webhook_secret")
    # Extensions are read at most once a second: the lateness recorded here is provisional (the
    # worker judges it again by GitLab's push time), and a read per push is a transaction per push.
    intake = Intake(settings, store, extensions_ttl_s=1.0)
    language = assignment.load(settings.assignment_file).language  # of the `pending` status recorded with a push
    intake_queue = IntakeQueue(intake, enqueue, notify, ready, language)
    app = _GraderApp(title="grader", docs_url=None, redoc_url=None)

    async def answer(headers: dict[str, str], receive: Receive) -> tuple[int, dict]:
        _check_token(headers.get("x-gitlab-token", ""), settings.webhook_secret or "")
        body = await _read_capped(headers, receive, settings.max_webhook_bytes)
        event = headers.get("x-gitlab-event", "")
        if event not in PUSH_EVENTS | (MERGE_REQUEST_EVENTS if settings.grade_merge_requests else set()):
            # answered before any parsing or I/O
            if event in MERGE_REQUEST_EVENTS:
                return _accepted(ignored="merge requests are not graded (GRADER_GRADE_MERGE_REQUESTS is off)")
            return _accepted(ignored=f"not a push event ({event or 'no X-Gitlab-Event'})")
        payload = _parse(body)
        if payload.get("object_kind") == "merge_request" and settings.grade_merge_requests:
            job, ignored = _merge_request(payload, settings)
        else:
            push = _push(payload)
            if push is None:
                return _accepted(ignored="not a push event")
            if push.deleted:
                return _accepted(ignored="branch deleted")
            job, ignored = _push_job(push, settings)
        if job is None:
            return _accepted(ignored=ignored)
        # The database and the broker block: the intake thread records and queues, off the event loop.
        return await intake_queue.take(replace(job, event_uuid=headers.get("x-gitlab-event-uuid") or None))

    async def delivery(scope: Scope, receive: Receive) -> tuple[int, dict] | None:
        """The answer to a delivery, refusals included; None when the sender hung up first."""
        # ASGI gives the names lower-cased; the first of a repeated header counts, as in Starlette
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        try:
            return await answer(headers, receive)
        except BadRequest as exc:
            if exc.status != 401:  # a wrong token is somebody probing; the rest is a sender to fix
                log.warning("webhook refused a delivery (%d): %s", exc.status, exc)
            return exc.status, {"error": str(exc)}
        except _Gone:
            return None

    async def gitlab_webhook(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _respond(send, 405, {"error": "the webhook takes POST"}, ((b"allow", b"POST"),))
            return
        answered = await delivery(scope, receive)
        if answered is not None:  # else the sender hung up: nobody to answer
            await _respond(send, *answered)

    app.webhook = gitlab_webhook

    @app.post(WEBHOOK_PATH, status_code=202)
    async def gitlab_webhook_route(request: Request) -> JSONResponse:
        """GitLab's Push Hook (and Merge Request Hook with GRADER_GRADE_MERGE_REQUESTS), secret in
        X-Gitlab-Token: 202 with the submission's id, or why it is ignored; 400/401/413 a delivery
        to fix; 503 try again. Served in front of FastAPI (`_GraderApp`); this route puts it in
        the OpenAPI document and answers the same way should a request ever reach it."""
        status, fields = await delivery(request.scope, request.receive) or (400, {"error": "the body did not arrive"})
        return JSONResponse(fields, status_code=status)

    # Report pages (by the submission's unguessable token, never its id) and instructor pages.
    install_pages(app, settings, store)

    @app.get("/healthz")
    def healthz() -> dict:
        """Liveness: the process answers. Whether it can take pushes is /readyz."""
        return {"ok": True}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        """Readiness: 200 only when the database and the broker answer (a load balancer, the
        operator and the chaos tests look here)."""
        problems = []
        try:
            store.status_counts()
        except GraderError as exc:
            problems.append(f"database: {exc}")
        if ready is not None:
            try:
                ready()
            except Exception as exc:  # noqa: BLE001 - whatever the broker client raises means "not ready"
                problems.append(f"broker: {exc}")
        return JSONResponse({"ok": not problems, "problems": problems}, status_code=503 if problems else 200)

    return app


def _check_token(given: str, secret: str) -> None:
    # compare_digest takes the same time wherever the strings differ.
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise BadRequest(401, "invalid X-Gitlab-Token")


class _Gone(Exception):
    """The sender closed the connection before its body arrived."""


async def _read_capped(headers: dict[str, str], receive: Receive, limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body larger than {limit} bytes")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone()
        body += message.get("body", b"")
        if len(body) > limit:
            raise BadRequest(413, f"body larger than {limit} bytes")
        if not message.get("more_body", False):
            return bytes(body)


_HEADERS = [(b"content-type", b"application/json"),
            *((name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items())]


async def _respond(send: Send, status: int, fields: dict, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    # as Starlette's JSONResponse renders it
    body = json.dumps(fields, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [*_HEADERS, *extra, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _parse(body: bytes) -> dict:
    if b"\\u0000" in body or b"\x00" in body:  # no database stores NUL in text; none of GitLab's fields has one
        raise BadRequest(400, "body contains a NUL character")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadRequest(400, f"body is not JSON: {str(exc)[:200]}") from exc
    if not isinstance(payload, dict):
        raise BadRequest(400, "body is not a JSON object")
    return payload


def _push(payload: dict) -> PushEvent | None:
    if payload.get("object_kind") != "push":
        return None
    try:
        push = PushEvent.model_validate(payload)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise BadRequest(400, f"push event with bad fields: {where}") from None
    if not push.ref.startswith("refs/heads/"):
        raise BadRequest(400, f"ref {push.ref[:100]!r} is not a branch (refs/heads/...)")
    if push.deleted:
        return push
    if push.checkout_sha is None or not _SHA.fullmatch(push.checkout_sha):
        raise BadRequest(400, "checkout_sha is missing or not a 40-character commit id")
    if push.project_id is None and push.project.id is None:
        raise BadRequest(400, "push event without project_id")
    if _norm(push.project.path_with_namespace) != push.project.path_with_namespace:
        raise BadRequest(400, "project.path_with_namespace is not a plain group/project path")
    return push


_SHA = re.compile(r"[0-9a-f]{40}")
_PATH_PART = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.+-]*")


def _norm(path: str) -> str:
    """The path as GitLab writes it, or "" when a part is not a GitLab name (`..`, empty, spaces)."""
    parts = path.split("/")
    ok = len(parts) >= 2 and all(_PATH_PART.fullmatch(p) and p not in (".", "..") for p in parts)
    return path if ok else ""


def _outside(path: str, settings: Settings) -> str | None:
    """Why a project is none of the course's business (no status, nothing recorded), or None."""
    if settings.groups and not any(path.lower().startswith(g.strip("/").lower() + "/") for g in settings.groups):
        return f"project {path} is not in a graded group"
    return None


def _push_job(push: PushEvent, settings: Settings) -> tuple[Delivery | None, str]:
    """The job a push asks for, or (None, why it is ignored). A push to a branch that is not graded
    is recorded `skipped`, so that its commit says so: a student is never left waiting in silence."""
    path = push.project.path_with_namespace
    outside = _outside(path, settings)
    if outside:
        return None, outside
    project_id = push.project_id if push.project_id is not None else push.project.id
    assert project_id is not None and push.checkout_sha is not None  # checked by _push
    branch = push.ref.removeprefix("refs/heads/")
    skipped = None
    if branch not in settings.branches:
        skipped = f"branch {branch} is not graded (graded: {', '.join(settings.branches)})"
        if settings.grade_merge_requests:
            skipped += "; a merge request from it is"
    delivery = Delivery(project_id, path, push.checkout_sha, push.ref, before_sha=push.before, skipped=skipped)
    return delivery, skipped or ""


_BRANCH = re.compile(r"[^\x00-\x20\x7f~^:?*\[\\]+")  # git check-ref-format's characters


def _merge_request(payload: dict, settings: Settings) -> tuple[Delivery | None, str]:
    """The job an opened, reopened or updated merge request asks for: its source branch's head, in
    the source project (a fork's, for an MR from a fork), through the same intake as a push."""
    try:
        mr = MergeRequestEvent.model_validate(payload)
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise BadRequest(400, f"merge request event with bad fields: {where}") from None
    attrs = mr.object_attributes
    for name, branch in (("source_branch", attrs.source_branch), ("target_branch", attrs.target_branch)):
        if not _BRANCH.fullmatch(branch) or ".." in branch or branch.startswith(("-", "/")) or branch.endswith("/"):
            raise BadRequest(400, f"object_attributes.{name} {branch[:100]!r} is not a branch name")
    if mr.project.id is not None and attrs.source_project_id == mr.project.id:
        path = mr.project.path_with_namespace
    elif attrs.source is not None:
        path = attrs.source.path_with_namespace
    else:
        raise BadRequest(400, "merge request from another project without object_attributes.source")
    if _norm(path) != path:
        raise BadRequest(400, "the source project's path_with_namespace is not a plain group/project path")
    outside = _outside(path, settings)
    if outside:
        return None, outside
    if attrs.action not in MERGE_REQUEST_ACTIONS or attrs.state != "opened":
        return None, f"merge request action {attrs.action or 'none'} ({attrs.state}) has no new head to grade"
    oldrev = attrs.oldrev if attrs.oldrev and _SHA.fullmatch(attrs.oldrev) else None
    return Delivery(attrs.source_project_id, path, attrs.last_commit.id, f"refs/heads/{attrs.source_branch}",
                before_sha=oldrev, origin="merge_request", merge_request_iid=attrs.iid), ""


def _accepted(**fields: object) -> tuple[int, dict]:
    return 202, fields
