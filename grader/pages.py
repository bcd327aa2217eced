"""The web pages: a student's report (`/reports/TOKEN`, and `.json`), and the instructor's
scoreboard, student histories and queue, behind `Authorization: Bearer <GRADER_INSTRUCTOR_TOKEN>`
(or the session cookie the sign-in form sets).

Server-rendered HTML (grader/html.py, grader/templates/): the scoreboard sorts on the server by
query parameter, charts are CSS bars. The one script, /static/refresh.js, keeps a waiting report
page current, and only those pages' CSP lets it run (`script-src 'self'`); every other response's
CSP allows no script at all, and none allows inline script or style. Every response also carries
`nosniff`, `no-referrer` (a report's URL is its secret: a click on a file link must not hand it to
GitLab's logs) and `no-store`; the OpenAPI schema is for instructors only; token pages and the
sign-in form are rate-limited per client address.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import statistics
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from sqlalchemy import and_, func, or_, select
from starlette.datastructures import MutableHeaders

from grader import assignment as assignment_mod
from grader import heartbeat, history
from grader.config import Settings
from grader.digest import digest, state_description
from grader.html import Words, icon, render, render_report, script, stylesheet
from grader.messages import text
from grader.similarity.page import SimilarityPages
from grader.store import State, Store, Submission

COOKIE = "grader_session"
SESSION_HOURS = 12
REFRESH_S = 10  # a queued or running report page updates itself (refresh.js; without script, a meta refresh)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,32}")
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
LIVE_CSP = CSP + "; script-src 'self'; connect-src 'self'"  # a waiting report page: refresh.js reads its model
SECURITY_HEADERS = {"content-security-policy": CSP, "x-content-type-options": "nosniff",
                    "referrer-policy": "no-referrer", "x-frame-options": "DENY",
                    "cross-origin-opener-policy": "same-origin", "cache-control": "no-store"}
Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class SecurityHeaders:
    """ASGI middleware adding SECURITY_HEADERS to every response that does not set them itself.
    Pure ASGI (no BaseHTTPMiddleware): the webhook's streamed body reaches it untouched."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Any]], send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RateLimiter:
    """At most `limit` requests per `window` seconds per key (a client address), sliding window.
    In memory, per process: the service runs one web process; the cap on keys bounds memory when
    addresses are spoofed or many."""

    def __init__(self, limit: int, window: float = 60.0, max_keys: int = 10_000) -> None:
        self.limit, self.window, self.max_keys = limit, window, max_keys
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                if len(self._hits) >= self.max_keys:
                    self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - self.window}
                    if len(self._hits) >= self.max_keys:
                        self._hits.pop(next(iter(self._hits)))
                hits = self._hits[key] = deque()
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            return True


def install(app: FastAPI, settings: Settings, store: Store) -> None:
    """Adds the pages, the security headers and the guarded OpenAPI schema to the service's app."""
    # FastAPI registers a public /openapi.json as it is created: it goes, an instructor-only one comes.
    app.router.routes[:] = [r for r in app.router.routes if getattr(r, "path", None) != app.openapi_url]
    app.add_middleware(SecurityHeaders)
    app.include_router(Pages(settings, store, app).router)


class Pages:
    def __init__(self, settings: Settings, store: Store, app: FastAPI) -> None:
        self.settings, self.store, self.app = settings, store, app
        self.lang = assignment_mod.load(settings.assignment_file).language
        self.w = Words(self.lang)
        self.pages_limit = RateLimiter(settings.page_rate_per_minute)
        self.signin_limit = RateLimiter(settings.signin_rate_per_minute)
        r = self.router = APIRouter()
        # .json first: "/reports/{token}" would also match "abc.json".
        r.add_api_route("/reports/{token}.json", self.report_json, methods=["GET"], include_in_schema=False)
        r.add_api_route("/reports/{token}", self.report_page, methods=["GET"], include_in_schema=False)
        r.add_api_route("/static/grader.css", self.css, methods=["GET"], include_in_schema=False)
        r.add_api_route("/static/refresh.js", self.js, methods=["GET"], include_in_schema=False)
        # A browser asks for an icon on every page; without one each visit logs a 404.
        r.add_api_route("/static/favicon.svg", self.icon, methods=["GET"], include_in_schema=False)
        r.add_api_route("/favicon.ico", self.icon, methods=["GET"], include_in_schema=False)
        r.add_api_route("/", self.home, methods=["GET"], include_in_schema=False)
        r.add_api_route("/signin", self.signin_form, methods=["GET"], include_in_schema=False)
        r.add_api_route("/signin", self.signin, methods=["POST"], include_in_schema=False)
        r.add_api_route("/signout", self.signout, methods=["POST"], include_in_schema=False)
        r.add_api_route("/scoreboard.json", self.scoreboard_json, methods=["GET"], include_in_schema=False)
        r.add_api_route("/scoreboard.csv", self.scoreboard_csv, methods=["GET"], include_in_schema=False)
        r.add_api_route("/scoreboard", self.scoreboard_page, methods=["GET"], include_in_schema=False)
        r.add_api_route("/students/{student}", self.student_page, methods=["GET"], include_in_schema=False)
        r.add_api_route("/queue", self.queue_page, methods=["GET"], include_in_schema=False)
        r.add_api_route("/openapi.json", self.openapi, methods=["GET"], include_in_schema=False)
        r.include_router(SimilarityPages(self).router)

    # -- helpers ----------------------------------------------------------------------------------
    def _page(self, template: str, status: int = 200, lang: str | None = None, **context: object) -> HTMLResponse:
        return HTMLResponse(render(template, lang=lang or self.lang, **context), status_code=status)

    def _error(self, status: int, heading: str, description: str) -> HTMLResponse:
        return self._page("error.html", status, heading=self.w(heading), description=self.w(description))

    def _limited(self, request: Request, limiter: RateLimiter) -> Response | None:
        if limiter.allow(request.client.host if request.client else "?"):
            return None
        response = self._error(429, "too_many", "too_many_text")
        response.headers["retry-after"] = str(int(limiter.window))
        return response

    def instructor(self, request: Request) -> bool:
        token = self.settings.instructor_token
        if not token:
            return False
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), _session(token).encode())

    def _refuse(self, request: Request, *, html: bool) -> Response:
        """401: a sign-in form for a browser, a JSON error for a script."""
        if not html:
            return JSONResponse({"error": "instructor token required (Authorization: Bearer ...)"}, status_code=401,
                                headers={"www-authenticate": "Bearer"})
        problem = None if self.settings.instructor_token else self.w("instructors_off")
        response = self._page("signin.html", 401, next=_local(request.url.path + (
            f"?{request.url.query}" if request.url.query else "")), problem=problem)
        response.headers["www-authenticate"] = "Bearer"
        return response

    def _project_url(self, project_path: str) -> str | None:
        base = self.settings.gitlab_url
        return f"{base.rstrip('/').removesuffix('/api/v4')}/{project_path}" if base else None

    # -- student pages ----------------------------------------------------------------------------
    def _submission(self, token: str) -> Submission | None:
        return self.store.by_token(token) if _TOKEN.fullmatch(token) else None

    def report_json(self, token: str, request: Request) -> Response:
        if (limited := self._limited(request, self.pages_limit)) is not None:
            return limited
        sub = self._submission(token)
        if sub is None:
            return JSONResponse({"error": "no such report"}, status_code=404)
        lang = (sub.report or {}).get("language") or self.lang
        return JSONResponse({"id": sub.id, "state": sub.state, "project": sub.project_path, "sha": sub.sha,
                             "ref": sub.ref, "late": sub.late, "received_at": _iso(sub.received_at),
                             "finished_at": _iso(sub.finished_at), "report": sub.report, "error": sub.error,
                             "waiting": self._waiting(sub, lang) if sub.state == State.QUEUED else []})

    def report_page(self, token: str, request: Request) -> Response:
        if (limited := self._limited(request, self.pages_limit)) is not None:
            return limited
        sub = self._submission(token)
        if sub is None:
            return self._error(404, "not_found", "not_found_text")
        rows = history.attempts(self.store, project_id=sub.project_id)
        at = next(i for i, row in enumerate(rows) if row.id == sub.id)
        previous, following = (rows[at - 1] if at else None), (rows[at + 1] if at + 1 < len(rows) else None)
        context: dict[str, object] = dict(
            project=sub.project_path, sha=sub.sha, branch=sub.ref.removeprefix("refs/heads/"),
            previous=previous.token if previous else None, following=following.token if following else None,
            position=at + 1, attempts=len(rows))
        report = sub.report
        if report and report.get("variants"):
            prov = {"sha": sub.sha, "project": sub.project_path, "project_url": self._project_url(sub.project_path),
                    "received_at": _iso(sub.received_at), "graded_at": _iso(sub.finished_at), "late": sub.late}
            d = digest(dict(report, provenance=prov | (report.get("provenance") or {})))
            return HTMLResponse(render_report(d, **context))
        lang = (report or {}).get("language") or self.lang
        if report and report.get("error"):  # refused as given: the student's verdict, with why
            heading, description = text("report", "refused_heading", lang), report["error"]
        else:
            state = sub.state if sub.state != State.GRADED else State.UNGRADABLE
            heading = text("pages", f"heading_{state}", lang)
            description = state_description(state, lang, late=sub.late, sha=following.sha if following else None)
        refresh = REFRESH_S if sub.state in (State.QUEUED, State.RUNNING) else None
        waiting = self._waiting(sub, lang) if sub.state == State.QUEUED else []
        page = self._page("state.html", lang=lang, heading=heading, description=description, state=sub.state,
                          refresh=refresh, waiting=waiting, **context)  # type: ignore[arg-type]
        if refresh:
            page.headers["content-security-policy"] = LIVE_CSP
        return page

    def _waiting(self, sub: Submission, lang: str) -> list[str]:
        """Where a queued submission stands: how many wait ahead of it, and when its result is
        likely — the typical grading time of the last gradings, spread over the gradings running
        now (as many as workers are busy: when some wait, every worker is)."""
        ahead, running, typical_s = _queue_facts(self.store, sub)
        lines = [text("pages", "queue_ahead", lang, count=ahead) if ahead else text("pages", "queue_next", lang)]
        if typical_s is not None:
            minutes = max(1, math.ceil((ahead + 1) * typical_s / max(1, running) / 60))
            lines.append(text("pages", "queue_estimate", lang, minutes=minutes))
        return lines

    def css(self) -> Response:
        return Response(stylesheet(), media_type="text/css", headers={"cache-control": "public, max-age=3600"})

    def js(self) -> Response:
        return Response(script(), media_type="text/javascript", headers={"cache-control": "public, max-age=3600"})

    def icon(self) -> Response:
        return Response(icon(), media_type="image/svg+xml", headers={"cache-control": "public, max-age=86400"})

    # -- sign-in --------------------------------------------------------------------------------
    def home(self) -> Response:
        return RedirectResponse("/scoreboard", status_code=303)

    def signin_form(self, request: Request, next: str = "/scoreboard") -> Response:
        return self._page("signin.html", next=_local(next), problem=None)

    async def signin(self, request: Request) -> Response:
        if (limited := self._limited(request, self.signin_limit)) is not None:
            return limited
        body = await request.body()
        form = parse_qs(body[:4096].decode("utf-8", "replace"))
        given, target = (form.get("token") or [""])[0], _local((form.get("next") or ["/scoreboard"])[0])
        token = self.settings.instructor_token
        if not token or not hmac.compare_digest(given.encode(), token.encode()):
            problem = self.w("wrong_token" if token else "instructors_off")
            return self._page("signin.html", 401, next=target, problem=problem)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, _session(token), max_age=SESSION_HOURS * 3600, httponly=True, samesite="strict",
                            secure=self.settings.report_base_url.startswith("https://"), path="/")
        return response

    def signout(self) -> Response:
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    # -- instructor pages -------------------------------------------------------------------------
    def scoreboard_json(self, request: Request) -> Response:
        if not self.instructor(request):
            return self._refuse(request, html=False)
        return JSONResponse(history.board(self.settings, self.store),
                            headers={"content-disposition": 'attachment; filename="scoreboard.json"'})

    def scoreboard_csv(self, request: Request) -> Response:
        if not self.instructor(request):
            return self._refuse(request, html=False)
        from grader.scoreboard import to_csv

        return PlainTextResponse(to_csv(history.board(self.settings, self.store)), media_type="text/csv",
                                 headers={"content-disposition": 'attachment; filename="scoreboard.csv"'})

    def scoreboard_page(self, request: Request, sort: str = "project", order: str = "") -> Response:
        if not self.instructor(request):
            return self._refuse(request, html=True)
        view = history.scoreboard_view(self.settings, self.store, self.lang, sort, order)
        return self._page("scoreboard.html", instructor=True, **view)

    def student_page(self, student: str, request: Request) -> Response:
        if not self.instructor(request):
            return self._refuse(request, html=True)
        rows = history.attempts(self.store, student=student)
        if not rows:
            return self._error(404, "no_student", "no_student_text")
        return self._page("student.html", instructor=True, student=student,
                          rows=[history.row_view(r) for r in reversed(rows)], changes=history.changes(self.store, rows))

    def queue_page(self, request: Request) -> Response:
        if not self.instructor(request):
            return self._refuse(request, html=True)
        counts = self.store.status_counts()
        oldest = self.store.oldest_queued_at()
        wait = int((datetime.now(UTC) - oldest).total_seconds() // 60) if oldest else 0
        failures = [history.row_view(f) for f in self.store.recent_failures(10)]
        return self._page("queue.html", instructor=True, counts=[(s.value, counts.get(s.value, 0)) for s in State],
                          oldest=history.when(oldest), wait_minutes=wait, failures=failures, workers=self._workers())

    def _workers(self) -> list[tuple[str, bool]] | None:
        """The workers that beat lately (grader/heartbeat.py) and whether their engine answers."""
        found = heartbeat.workers_of(self.settings.broker_url, self.settings.instance)
        return None if found is None else sorted(found.items())

    def openapi(self, request: Request) -> Response:
        if not self.instructor(request):
            return self._refuse(request, html=False)
        return JSONResponse(self.app.openapi())


TYPICAL_OF = 20  # the last gradings whose median duration estimates a wait


def _queue_facts(store: Store, sub: Submission) -> tuple[int, int, float | None]:
    """(queued ahead of `sub`, gradings running, median seconds of the last gradings or None).
    Read here, as grader/history.py reads attempts: the store has no such queries yet."""
    ahead_of = or_(Submission.received_at < sub.received_at,
                   and_(Submission.received_at == sub.received_at, Submission.id < sub.id))
    with store._session(write=False) as s:
        ahead = s.scalar(select(func.count()).where(Submission.state == State.QUEUED, ahead_of)) or 0
        running = s.scalar(select(func.count()).where(Submission.state == State.RUNNING)) or 0
        spans = s.execute(select(Submission.started_at, Submission.finished_at)
                          .where(Submission.state == State.GRADED, Submission.started_at.is_not(None),
                                 Submission.finished_at.is_not(None))
                          .order_by(Submission.finished_at.desc()).limit(TYPICAL_OF)).all()
    durations = [(done - started).total_seconds() for started, done in spans if started and done]
    return int(ahead), int(running), statistics.median(durations) if durations else None


def _session(token: str) -> str:
    """The cookie's value: derived from the token, so the browser never stores the token itself,
    and changing the token signs every session out."""
    return hmac.new(token.encode(), b"grader-session-v1", hashlib.sha256).hexdigest()


def _local(target: str) -> str:
    """A path on this site only: `next=` must never send a signed-in instructor elsewhere."""
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) else "/scoreboard"


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
