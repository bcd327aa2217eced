"""A small GitLab-compatible HTTP server for tests, and helpers to feed it real git repositories.

GitLab itself cannot run here, so this server answers the few REST v4 endpoints the grader calls
through python-gitlab, with the JSON shapes, headers and status codes GitLab documents:

    GET  /api/v4/user                                         (python-gitlab's ``auth()``)
    GET  /api/v4/projects/:id                                 (id numeric or URL-encoded path)
    GET  /api/v4/projects/:id/repository/archive[.format]?sha=  (``git archive`` of a real repository)
    GET  /api/v4/projects/:id/repository/commits/:sha
    POST /api/v4/projects/:id/statuses/:sha                   (commit status, GitLab's state machine)
    GET  /api/v4/projects/:id/repository/commits/:sha/statuses   (latest per name unless all; name, ref; pagination)
    POST /api/v4/projects/:id/repository/commits/:sha/comments
    GET  /api/v4/projects/:id/repository/commits/:sha/comments   (offset pagination)
    GET  /api/v4/groups/:id/projects                          (include_subgroups, offset pagination)
    GET  /api/v4/projects/:id/events                          (action, target_type, before/after, sort, pagination)
    GET  /api/v4/projects/:id/repository/merge_base?refs[]=   (``git merge-base`` of a real repository)
    GET  /api/v4/personal_access_tokens/self                  (the token's scopes)
    GET  /api/v4/groups/:id/members/all/:user_id              (a member's role, inherited ones included)

Sources for the shapes (GitLab's own docs and code): doc/api/commits.md ("Set the pipeline status
of a commit", "Post comment to commit",
"Get the comments of a commit"), doc/api/repositories.md ("Get file archive"),
doc/api/groups.md ("List projects"), doc/api/projects.md, doc/api/rest/_index.md (pagination
headers and ``Link``), doc/user/project/integrations/webhook_events.md (push and merge request
payloads), doc/api/events.md (project events, ``push_data``), doc/api/personal_access_tokens.md
("Self-inform"); lib/api/repositories.rb (merge_base: 400 for unknown refs, 404 "Merge Base"),
lib/api/members.rb (``members/all/:user_id``, 404 for a non-member);
lib/api/commit_statuses.rb + app/services/ci/create_commit_status_service.rb + app/models/commit_status.rb
(which status is updated and which transitions answer 400), lib/api/repositories.rb (archive
404 "File", archive prefix ``<path>-<ref>-<sha>``), lib/api/api_guard.rb (403 insufficient_scope).

Usage::

    with FakeGitLab() as gl:                      # or gl = FakeGitLab().start(); ...; gl.stop()
        project, sha = gl.create_repo_project("course/ivanov-docker", tmp_path, source=REFERENCE_REPO)
        client = gitlab.Gitlab(gl.url, private_token=gl.token)
        ...
        gl.statuses, gl.comments, gl.requests     # what arrived, in order
        gl.fail_next(2, status=500, path_contains="/statuses/")   # fault injection
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

ZERO_SHA = "0" * 40
DEFAULT_TOKEN = "glpat-fake-gitlab-test-token"
GITLAB_VERSION = "17.11.2"
STUDENT = ("Ivan Ivanov", "ivanov@students.example.com")

# Bodies exactly as GitLab sends them.
UNAUTHORIZED = {"message": "401 Unauthorized"}
# Rack::OAuth2 Bearer::Forbidden(:insufficient_scope, DEFAULT_DESCRIPTION, scope: [...]) via lib/api/api_guard.rb.
INSUFFICIENT_SCOPE_DESCRIPTION = "The request requires higher privileges than provided by the access token."
ROUTE_NOT_FOUND = {"error": "404 Not Found"}

STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
MAX_NOTE_CHARS = 1_000_000  # Gitlab::Database::MAX_TEXT_SIZE_LIMIT, the length validation on notes
MAX_STATUS_FIELD = 255  # CommitStatus validates ref, target_url, description to 255 characters

# app/models/commit_status.rb: event -> (from states, to state). The API maps each posted state to
# an event (app/services/ci/create_commit_status_service.rb#apply_job_state!).
_TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "enqueue": (frozenset({"created", "skipped", "manual", "scheduled"}), "pending"),
    "run": (frozenset({"pending"}), "running"),
    "skip": (frozenset({"created", "waiting_for_resource", "preparing", "pending"}), "skipped"),
    "drop": (frozenset({"created", "waiting_for_resource", "preparing", "waiting_for_callback", "pending",
                        "running", "manual", "scheduled"}), "failed"),
    "success": (frozenset({"created", "waiting_for_resource", "preparing", "waiting_for_callback", "pending",
                           "running"}), "success"),
    "cancel": (frozenset({"running", "waiting_for_resource", "preparing", "pending", "created", "scheduled",
                          "manual"}), "canceled"),
}


class InvalidTransition(Exception):
    """What the state_machines gem raises; GitLab answers it with 400 and the message."""

    def __init__(self, event: str, current: str) -> None:
        super().__init__(f'Cannot transition status via :{event} from :{current} '
                         f'(Reason(s): Status cannot transition via "{event}")')


def _fire(job: dict[str, Any], event: str, *, bang: bool = True) -> None:
    allowed, target = _TRANSITIONS[event]
    if job["status"] not in allowed:
        if bang:
            raise InvalidTransition(event, job["status"])
        return
    now = _now()
    if target == "pending":
        job["queued_at"] = now
    if target == "running" and job["status"] in ("created", "preparing", "pending"):
        job["started_at"] = now
    if target in ("success", "failed", "canceled"):
        job["finished_at"] = now
    job["status"] = target


def _apply_state(job: dict[str, Any], state: str) -> None:
    if state == "pending":
        _fire(job, "enqueue")
    elif state == "running":
        _fire(job, "enqueue", bang=False)
        _fire(job, "run")
    elif state == "success":
        _fire(job, "success")
    elif state == "failed":
        _fire(job, "drop")
    elif state == "canceled":
        _fire(job, "cancel")
    elif state == "skipped":
        _fire(job, "skip")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"true", "1", "yes", "y", "t", "on"}


# --- real git repositories -------------------------------------------------------------------

_GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> bytes:
    """Run git in `repo` with no user or system configuration; raise with git's stderr on failure."""
    res = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False, timeout=60,
                         env={**os.environ, **_GIT_ENV, **(env or {})})
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {repo}: {res.stderr.decode(errors='replace').strip()}")
    return res.stdout


def _git_try(repo: Path, *args: str) -> bytes | None:
    try:
        return git(repo, *args)
    except RuntimeError:
        return None


def resolve_commit(repo: Path, rev: str) -> str | None:
    """The full SHA `rev` (a SHA, short SHA, branch or tag) names in `repo`, or None."""
    if not rev or rev.startswith("-"):
        return None
    out = _git_try(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    return out.decode().strip() if out else None


def commit_all(repo: Path, message: str = "Update", *, files: dict[str, str | bytes] | None = None,
               remove: Iterable[str] = (), author: tuple[str, str] = STUDENT) -> str:
    """Write `files`, delete `remove`, commit everything in `repo` and return the new commit's SHA."""
    for rel, content in (files or {}).items():
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
    for rel in remove:
        target = repo / rel
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
    git(repo, "add", "-A")
    name, email = author
    git(repo, "commit", "-q", "--allow-empty", "--no-verify", "-m", message,
        env={"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email,
             "GIT_COMMITTER_NAME": name, "GIT_COMMITTER_EMAIL": email})
    return git(repo, "rev-parse", "HEAD").decode().strip()


def make_git_repo(dest: Path, *, source: Path | None = None, files: dict[str, str | bytes] | None = None,
                  branch: str = "main", message: str = "Initial commit", author: tuple[str, str] = STUDENT) -> str:
    """Create a real git repository at `dest` from a copy of `source` and/or `files`; return the SHA.

    Caches a test run may have left in `source` (__pycache__, .pytest_cache) are not copied.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if source is not None:
        shutil.copytree(source, dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache"))
    git(dest, "init", "-q", "-b", branch)
    return commit_all(dest, message, files=files, author=author)


# --- what the server knows and what it recorded ------------------------------------------------

@dataclass
class FakeGroup:
    id: int
    full_path: str
    parent_id: int | None

    @property
    def path(self) -> str:
        return self.full_path.rsplit("/", 1)[-1]


@dataclass
class FakeProject:
    id: int
    path_with_namespace: str
    repo_dir: Path | None
    default_branch: str | None
    created_at: str
    description: str = ""
    archived: bool = False

    @property
    def path(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[-1]

    @property
    def namespace(self) -> str:
        return self.path_with_namespace.rsplit("/", 1)[0]


@dataclass
class RecordedRequest:
    method: str
    path: str  # raw, still URL-encoded, without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    params: dict[str, Any]  # body (JSON or form) merged over the query string
    status: int | None = None  # None: the connection was dropped without an answer


@dataclass(frozen=True)
class RecordedStatus:
    id: int
    project_id: int
    sha: str
    state: str
    name: str
    ref: str
    description: str | None
    target_url: str | None
    coverage: float | None
    pipeline_id: int
    params: dict[str, Any]  # exactly what the client sent


@dataclass(frozen=True)
class RejectedStatus:
    project_id: int
    sha: str
    state: str | None
    name: str
    http_status: int
    message: Any
    params: dict[str, Any]


@dataclass(frozen=True)
class RecordedComment:
    id: int
    project_id: int
    sha: str
    note: str
    path: str | None
    line: int | None
    line_type: str | None
    params: dict[str, Any]
    author: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


@dataclass
class Fault:
    """One injected misbehaviour; `remaining` None means until cleared (or `deadline` passes)."""

    kind: str  # "status" | "drop" | "lose_reply" | "slow" | "hang"
    remaining: int | None
    path_contains: str | None = None
    method: str | None = None
    status: int = 500
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    deadline: float | None = None  # time.monotonic() after which the fault no longer applies
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method and self.method.upper() != method:
            return False
        return not self.path_contains or self.path_contains in unquote(path)


_DEFAULT_FAULT_BODIES = {
    500: {"message": "500 Internal Server Error"},
    502: "<html><body><h1>502 Bad Gateway</h1></body></html>",  # nginx in front of GitLab answers HTML
    503: "<html><body><h1>503 Service Unavailable</h1></body></html>",
    504: "<html><body><h1>504 Gateway Time-out</h1></body></html>",
    429: "Retry later\n",  # Rack::Attack's throttled response
}


@dataclass
class _Token:
    scopes: frozenset[str]
    user: dict[str, Any]


class FakeGitLab:
    """GitLab REST v4 test server on 127.0.0.1 (a free port), serving threads in the background."""

    def __init__(self, token: str = DEFAULT_TOKEN, *, scopes: Iterable[str] = ("api",),
                 username: str = "grader-bot", max_per_page: int = 100) -> None:
        self.token = token
        self.max_per_page = max_per_page  # GitLab's: per_page is capped at 100
        self._lock = threading.RLock()
        self._release = threading.Event()
        self._tokens: dict[str, _Token] = {}
        self._next_user_id = 2
        self.user = self.add_token(token, scopes=scopes, username=username)
        self._groups: dict[str, FakeGroup] = {}
        self._projects: dict[int, FakeProject] = {}
        self._next_group_id = 100
        self._next_project_id = 1000
        self._next_status_id = 5000
        self._next_pipeline_id = 300
        self._next_note_id = 7000
        self._jobs: list[dict[str, Any]] = []
        self._pipelines: list[dict[str, Any]] = []
        self._statuses: list[RecordedStatus] = []
        self._rejected: list[RejectedStatus] = []
        self._comments: list[RecordedComment] = []
        self._events: list[dict[str, Any]] = []  # project events, oldest first
        self._next_event_id = 9000
        self._members: dict[tuple[int, int], int] = {}  # (group id, user id) -> access level
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --

    def start(self) -> FakeGitLab:
        if self._httpd is not None:
            return self
        self._release.clear()
        self._httpd = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-gitlab-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._release.set()  # hung requests finish
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGitLab:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the fake GitLab is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The instance URL, what `gitlab.Gitlab(url)` and GRADER_GITLAB_URL take."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v4"

    # -- what exists --

    def add_token(self, token: str, *, scopes: Iterable[str] = ("api",), username: str | None = None) -> dict:
        """Accept `token` with `scopes` ("api", "read_api", ...); returns the user it authenticates."""
        with self._lock:
            uid = self._next_user_id
            self._next_user_id += 1
            username = username or f"user{uid}"
            user = {"id": uid, "username": username, "name": username.replace("-", " ").title(),
                    "state": "active", "locked": False, "avatar_url": None}
            self._tokens[token] = _Token(frozenset(scopes), user)
            return user

    def add_member(self, group: str, user: dict[str, Any], access_level: int = 30) -> None:
        """Make `user` (as `add_token` returns it) a member of `group` with a role (30 = Developer)."""
        with self._lock:
            self._members[(self.add_group(group).id, user["id"])] = access_level

    def add_group(self, full_path: str) -> FakeGroup:
        """The group and every missing parent group; existing ones are returned as they are."""
        with self._lock:
            parent_id = None
            parts = full_path.strip("/").split("/")
            group = None
            for i in range(len(parts)):
                path = "/".join(parts[: i + 1])
                group = self._groups.get(path.lower())
                if group is None:
                    group = FakeGroup(self._next_group_id, path, parent_id)
                    self._next_group_id += 1
                    self._groups[path.lower()] = group
                parent_id = group.id
            assert group is not None
            return group

    def add_project(self, path_with_namespace: str, repo_dir: Path | None = None, *, id: int | None = None,
                    default_branch: str | None = None, description: str = "", archived: bool = False) -> FakeProject:
        """Register a project under its (created if missing) groups, backed by `repo_dir` if given."""
        if "/" not in path_with_namespace:
            raise ValueError("a project lives in a group: give namespace/path")
        with self._lock:
            if id is None:
                id = self._next_project_id
                self._next_project_id += 1
            if id in self._projects:
                raise ValueError(f"project id {id} is taken")
            if self._find_project(path_with_namespace) is not None:
                raise ValueError(f"project {path_with_namespace} exists")
            self.add_group(path_with_namespace.rsplit("/", 1)[0])
            if repo_dir is not None and default_branch is None:
                default_branch = git(repo_dir, "symbolic-ref", "--short", "HEAD").decode().strip()
            project = FakeProject(id, path_with_namespace, repo_dir, default_branch, _now(), description, archived)
            self._projects[id] = project
            return project

    def create_repo_project(self, path_with_namespace: str, workdir: Path, *, source: Path | None = None,
                            files: dict[str, str | bytes] | None = None, id: int | None = None,
                            branch: str = "main") -> tuple[FakeProject, str]:
        """A real git repository under `workdir` (copied from `source`, plus `files`), registered as a
        project; returns the project and the SHA of its commit."""
        repo = workdir / path_with_namespace.replace("/", "__")
        sha = make_git_repo(repo, source=source, files=files, branch=branch)
        return self.add_project(path_with_namespace, repo, id=id), sha

    def project(self, ref: int | str) -> FakeProject:
        with self._lock:
            found = self._find_project(str(ref))
        if found is None:
            raise KeyError(ref)
        return found

    # -- what arrived --

    @property
    def statuses(self) -> list[RecordedStatus]:
        """Statuses GitLab accepted (201), in order of arrival."""
        with self._lock:
            return list(self._statuses)

    @property
    def rejected_statuses(self) -> list[RejectedStatus]:
        """Status posts answered 4xx (e.g. 400 "Cannot transition status via :run from :running")."""
        with self._lock:
            return list(self._rejected)

    @property
    def comments(self) -> list[RecordedComment]:
        with self._lock:
            return list(self._comments)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request, faulted ones included, in order of arrival."""
        with self._lock:
            return list(self._requests)

    def commit_statuses(self, project: int | str, sha: str) -> dict[str, str]:
        """The current state of each status name on a commit, as GitLab's pipeline page shows it."""
        pid = self.project(project).id
        with self._lock:
            return {j["name"]: j["status"] for j in self._jobs
                    if j["project_id"] == pid and j["sha"] == sha and not j["retried"]}

    def reset(self) -> None:
        """Forget recorded calls, statuses and faults; projects and tokens stay."""
        with self._lock:
            self._jobs.clear()
            self._pipelines.clear()
            self._statuses.clear()
            self._rejected.clear()
            self._comments.clear()
            self._requests.clear()
        self.clear_faults()

    @staticmethod
    def wait_until(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
        """Poll `condition` until it returns something truthy (returned) or fail after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(interval)

    # -- faults --

    def _add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(self, n: int | None = 1, status: int = 500, *, path_contains: str | None = None,
                  method: str | None = None, body: Any = None, headers: dict[str, str] | None = None) -> Fault:
        """The next `n` matching requests (None: all, until cleared) are answered `status` with `body`
        (default: what GitLab or its nginx sends for that status)."""
        return self._add_fault(Fault("status", n, path_contains, method, status,
                                     _DEFAULT_FAULT_BODIES.get(status, {"message": f"{status} Error"})
                                     if body is None else body, dict(headers or {})))

    def fail_for(self, seconds: float, status: int = 503, *, path_contains: str | None = None,
                 method: str | None = None, body: Any = None) -> Fault:
        """Every matching request for the next `seconds` is answered `status`; then GitLab recovers."""
        fault = self.fail_next(None, status, path_contains=path_contains, method=method, body=body)
        fault.deadline = time.monotonic() + seconds
        return fault

    def slow_next(self, n: int | None = 1, seconds: float = 1.0, *, path_contains: str | None = None,
                  method: str | None = None) -> Fault:
        """The next `n` matching requests wait `seconds` before being answered normally."""
        return self._add_fault(Fault("slow", n, path_contains, method, seconds=seconds))

    def hang(self, n: int | None = None, *, path_contains: str | None = None, method: str | None = None) -> Fault:
        """Matching requests get no answer until `release()`, `clear_faults()` or `stop()`."""
        self._release.clear()
        return self._add_fault(Fault("hang", n, path_contains, method))

    def drop_next(self, n: int | None = 1, *, path_contains: str | None = None, method: str | None = None) -> Fault:
        """The next `n` matching requests have their connection closed without an answer."""
        return self._add_fault(Fault("drop", n, path_contains, method))

    def lose_reply_next(self, n: int | None = 1, *, path_contains: str | None = None,
                        method: str | None = None) -> Fault:
        """The next `n` matching requests are carried out, then their connection is closed
        before the answer: GitLab did it, the client never heard (a proxy timing out)."""
        return self._add_fault(Fault("lose_reply", n, path_contains, method))

    def release(self) -> None:
        """Let hung requests go on (they are then answered normally) and stop hanging new ones."""
        with self._lock:
            self._faults = [f for f in self._faults if f.kind != "hang"]
        self._release.set()

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
        self._release.set()

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    fault.hits += 1
                    return replace(fault)
        return None

    # -- pushes: GitLab's record of them (events) and its webhook ----------------------------

    def add_push_event(self, project: FakeProject | int | str, *, commit_to: str | None,
                       commit_from: str | None = None, ref: str | None = None, at: datetime | None = None,
                       username: str = "ivanov") -> dict[str, Any]:
        """Record a push in the project's events, as GitLab does when it receives one (`at`: when,
        default now). commit_from None makes a new branch, commit_to None a removed one."""
        p = project if isinstance(project, FakeProject) else self.project(project)
        branch = (ref or f"refs/heads/{p.default_branch or 'main'}").removeprefix("refs/heads/")
        when = (at or datetime.now(UTC)).astimezone(UTC)
        action = "created" if commit_from in (None, ZERO_SHA) else "removed" if commit_to in (None, ZERO_SHA) \
            else "pushed"
        title = None
        if commit_to and p.repo_dir is not None:
            title = git(p.repo_dir, "show", "-s", "--format=%s", commit_to).decode().strip()
        with self._lock:
            event = {
                "id": self._next_event_id, "title": None, "project_id": p.id,
                "action_name": {"created": "pushed new", "removed": "deleted"}.get(action, "pushed to"),
                "target_id": None, "target_iid": None, "target_type": None, "author_id": 42,
                "target_title": None,
                "created_at": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                "author": {"id": 42, "username": username, "name": STUDENT[0], "state": "active",
                           "locked": False, "avatar_url": None},
                "imported": False, "imported_from": "none",
                "push_data": {"commit_count": 0 if action == "removed" else 1, "action": action,
                              "ref_type": "branch", "commit_from": None if action == "created" else commit_from,
                              "commit_to": None if action == "removed" else commit_to, "ref": branch,
                              "commit_title": title, "ref_count": None},
                "author_username": username,
            }
            self._next_event_id += 1
            self._events.append(event)
            return event

    def push(self, project: FakeProject | int | str, *, after: str, before: str | None = None,
             ref: str | None = None, at: datetime | None = None, **payload: Any) -> dict[str, Any]:
        """A push as GitLab takes it: the event recorded (at `at`), and the webhook body it sends."""
        self.add_push_event(project, commit_to=None if after == ZERO_SHA else after, commit_from=before,
                            ref=ref, at=at)
        return self.push_payload(project, after=after, before=before, ref=ref, **payload)

    def merge_request_payload(self, project: FakeProject | int | str, *, source_branch: str, sha: str,
                              target_branch: str | None = None, iid: int = 1, action: str = "open",
                              state: str = "opened", oldrev: str | None = None,
                              source_project: FakeProject | int | str | None = None) -> dict[str, Any]:
        """A GitLab "Merge Request Hook" body (doc/user/project/integrations/webhook_events.md,
        "Merge request events") for an MR of `source_branch` (head `sha`) into `target_branch` of
        `project`; `source_project` for an MR from a fork. `oldrev` is present only when commits
        were pushed (action "update")."""
        target = project if isinstance(project, FakeProject) else self.project(project)
        source = target if source_project is None else (
            source_project if isinstance(source_project, FakeProject) else self.project(source_project))

        def hook_project(p: FakeProject) -> dict[str, Any]:
            web_url = self._web_url(p)
            host = urlsplit(self.url).netloc
            return {"name": p.path, "description": p.description, "web_url": web_url, "avatar_url": None,
                    "git_ssh_url": f"git@{host}:{p.path_with_namespace}.git", "git_http_url": f"{web_url}.git",
                    "namespace": self._group_name(p.namespace), "visibility_level": 0,
                    "path_with_namespace": p.path_with_namespace, "default_branch": p.default_branch,
                    "ci_config_path": "", "homepage": web_url, "url": f"{web_url}.git",
                    "ssh_url": f"git@{host}:{p.path_with_namespace}.git", "http_url": f"{web_url}.git"}

        last_commit: dict[str, Any] = {"id": sha}
        if source.repo_dir is not None:
            last_commit = {k: v for k, v in _webhook_commit(source.repo_dir, sha, self._web_url(source)).items()
                           if k in ("id", "message", "title", "timestamp", "url", "author")}
        now = _now()
        attributes: dict[str, Any] = {
            "id": 90000 + iid, "iid": iid, "target_branch": target_branch or target.default_branch or "main",
            "source_branch": source_branch, "source_project_id": source.id, "author_id": 42,
            "assignee_ids": [], "assignee_id": None, "reviewer_ids": [], "title": f"Merge {source_branch}",
            "created_at": now, "updated_at": now, "last_edited_at": None, "last_edited_by_id": None,
            "milestone_id": None, "state_id": 1, "state": state, "blocking_discussions_resolved": True,
            "work_in_progress": False, "draft": False, "first_contribution": False, "merge_status": "unchecked",
            "target_project_id": target.id, "description": "",
            "url": f"{self._web_url(target)}/-/merge_requests/{iid}",
            "source": hook_project(source), "target": hook_project(target), "last_commit": last_commit,
            "labels": [], "action": action, "detailed_merge_status": "mergeable",
        }
        if oldrev is not None:
            attributes["oldrev"] = oldrev
        return {
            "object_kind": "merge_request", "event_type": "merge_request",
            "user": {"id": 42, "name": STUDENT[0], "username": "ivanov", "avatar_url": None,
                     "email": "[REDACTED]"},
            "project": {"id": target.id, **hook_project(target)},
            "repository": {"name": target.path, "url": f"{self._web_url(target)}.git", "description": "",
                           "homepage": self._web_url(target)},
            "object_attributes": attributes, "labels": [], "changes": {}, "assignees": [], "reviewers": [],
        }

    # -- webhook payloads --

    def push_payload(self, project: FakeProject | int | str, *, after: str, before: str | None = None,
                     ref: str | None = None, user_username: str = "ivanov", user_name: str = STUDENT[0],
                     user_email: str = "", message: str | None = None) -> dict[str, Any]:
        """A GitLab "Push Hook" body for a push of `before`..`after` to `ref` (default: the default
        branch) of `project`, shaped as doc/user/project/integrations/webhook_events.md shows.

        `after` = ZERO_SHA makes a branch deletion (checkout_sha null, no commits); `before` =
        ZERO_SHA (the default) a new branch. Commits come from the real repository, newest 20 only.
        """
        p = project if isinstance(project, FakeProject) else self.project(project)
        ref = ref or f"refs/heads/{p.default_branch or 'main'}"
        before = before or ZERO_SHA
        commits: list[dict[str, Any]] = []
        total = 0
        if after != ZERO_SHA and p.repo_dir is not None:
            rng = [after] if before == ZERO_SHA else [f"{before}..{after}"]
            shas = git(p.repo_dir, "rev-list", *rng).decode().split()
            total = len(shas)
            commits = [_webhook_commit(p.repo_dir, s, self._web_url(p)) for s in reversed(shas[:20])]
        base = self.url
        web_url = self._web_url(p)
        host = urlsplit(base).netloc
        project_json = {
            "id": p.id, "name": p.path, "description": p.description, "web_url": web_url, "avatar_url": None,
            "git_ssh_url": f"git@{host}:{p.path_with_namespace}.git",
            "git_http_url": f"{web_url}.git", "namespace": self._group_name(p.namespace),
            "visibility_level": 0, "path_with_namespace": p.path_with_namespace,
            "default_branch": p.default_branch, "ci_config_path": None, "homepage": web_url,
            "url": f"git@{host}:{p.path_with_namespace}.git", "ssh_url": f"git@{host}:{p.path_with_namespace}.git",
            "http_url": f"{web_url}.git",
        }
        return {
            "object_kind": "push",
            "event_name": "push",
            "before": before,
            "after": after,
            "ref": ref,
            "ref_protected": ref == f"refs/heads/{p.default_branch}",
            "checkout_sha": None if after == ZERO_SHA else after,
            "message": message,
            "user_id": 42,
            "user_name": user_name,
            "user_username": user_username,
            "user_email": user_email,
            "user_avatar": "https://www.gravatar.com/avatar/00000000000000000000000000000000?s=80&d=identicon",
            "project_id": p.id,
            "project": project_json,
            "commits": commits,
            "total_commits_count": total,
            "push_options": {},
            "repository": {
                "name": p.path, "url": project_json["url"], "description": p.description, "homepage": web_url,
                "git_http_url": f"{web_url}.git", "git_ssh_url": project_json["git_ssh_url"],
                "visibility_level": 0,
            },
        }

    # -- internals used by the handler --

    def _web_url(self, p: FakeProject, base: str | None = None) -> str:
        return f"{base or self.url}/{p.path_with_namespace}"

    def _group_name(self, full_path: str) -> str:
        return full_path.rsplit("/", 1)[-1].replace("-", " ").title()

    def _find_project(self, ref: str) -> FakeProject | None:
        if ref.isdigit():
            return self._projects.get(int(ref))
        low = ref.lower()
        return next((p for p in self._projects.values() if p.path_with_namespace.lower() == low), None)

    def _find_group(self, ref: str) -> FakeGroup | None:
        if ref.isdigit():
            return next((g for g in self._groups.values() if g.id == int(ref)), None)
        return self._groups.get(ref.lower())

    def _user_json(self, user: dict[str, Any], base: str) -> dict[str, Any]:
        return {**user, "web_url": f"{base}/{user['username']}"}

    def _project_json(self, p: FakeProject, base: str) -> dict[str, Any]:
        group = self._groups[p.namespace.lower()]
        names = [self._group_name("/".join(p.namespace.split("/")[: i + 1]))
                 for i in range(len(p.namespace.split("/")))]
        web_url = self._web_url(p, base)
        api = f"{base}/api/v4/projects/{p.id}"
        return {
            "id": p.id,
            "description": p.description,
            "name": p.path,
            "name_with_namespace": " / ".join([*names, p.path]),
            "path": p.path,
            "path_with_namespace": p.path_with_namespace,
            "created_at": p.created_at,
            "default_branch": p.default_branch,
            "tag_list": [],
            "topics": [],
            "ssh_url_to_repo": f"git@{urlsplit(base).netloc}:{p.path_with_namespace}.git",
            "http_url_to_repo": f"{web_url}.git",
            "web_url": web_url,
            "readme_url": None,
            "avatar_url": None,
            "forks_count": 0,
            "star_count": 0,
            "last_activity_at": p.created_at,
            "namespace": {"id": group.id, "name": names[-1], "path": group.path, "kind": "group",
                          "full_path": group.full_path, "parent_id": group.parent_id, "avatar_url": None,
                          "web_url": f"{base}/groups/{group.full_path}"},
            "_links": {"self": api, "issues": f"{api}/issues", "merge_requests": f"{api}/merge_requests",
                       "repo_branches": f"{api}/repository/branches", "labels": f"{api}/labels",
                       "events": f"{api}/events", "members": f"{api}/members",
                       "cluster_agents": f"{api}/cluster_agents"},
            "empty_repo": p.repo_dir is None,
            "archived": p.archived,
            "visibility": "private",
            "issues_enabled": True,
            "merge_requests_enabled": True,
            "wiki_enabled": True,
            "jobs_enabled": True,
            "snippets_enabled": True,
            "shared_runners_enabled": True,
            "lfs_enabled": True,
            "creator_id": 1,
            "open_issues_count": 0,
            "public_jobs": True,
            "shared_with_groups": [],
            "request_access_enabled": True,
        }


def _webhook_commit(repo: Path, sha: str, web_url: str) -> dict[str, Any]:
    fmt = "%H%x00%B%x00%aI%x00%an%x00%ae"
    full, body, date, name, email = git(repo, "show", "-s", f"--format={fmt}", sha).decode().split("\x00")
    added, modified, removed = [], [], []
    for line in git(repo, "diff-tree", "--no-commit-id", "--name-status", "-r", "--root", sha).decode().splitlines():
        kind, _, path = line.partition("\t")
        {"A": added, "D": removed}.get(kind[:1], modified).append(path)
    body = body.rstrip("\n")
    return {"id": full, "message": body + "\n", "title": body.splitlines()[0] if body else "",
            "timestamp": date, "url": f"{web_url}/-/commit/{full}",
            "author": {"name": name, "email": email}, "added": added, "modified": modified, "removed": removed}


def push_hook_headers(secret: str, *, event_uuid: str | None = None, event: str = "Push Hook",
                      instance: str = "https://gitlab.example.com") -> dict[str, str]:
    """Headers GitLab sends with a webhook delivery (doc/user/project/integrations/webhooks.md)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"GitLab/{GITLAB_VERSION}",
        "X-Gitlab-Event": event,
        "X-Gitlab-Token": secret,
        "X-Gitlab-Event-UUID": event_uuid or str(uuid.uuid4()),
        "X-Gitlab-Webhook-UUID": "5c1f0a4e-1b2a-4b8e-9d1e-6f7a8b9c0d1e",
        "X-Gitlab-Instance": instance,
    }


# --- HTTP ------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeGitLab) -> None:
        self.fake = fake
        super().__init__(address, handler)


class _Reply(Exception):
    """Raised by a route to answer with an error."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


_ID = r"(?P<id>[^/]+)"
_SHA = r"(?P<sha>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    ("GET", re.compile(r"^/api/v4/user$"), "get_user"),
    ("GET", re.compile(rf"^/api/v4/projects/{_ID}$"), "get_project"),
    ("GET", re.compile(rf"^/api/v4/projects/{_ID}/repository/archive(?:\.(?P<fmt>tar\.gz|tgz|tar|zip))?$"),
     "get_archive"),
    ("GET", re.compile(rf"^/api/v4/projects/{_ID}/repository/commits/{_SHA}$"), "get_commit"),
    ("POST", re.compile(rf"^/api/v4/projects/{_ID}/statuses/{_SHA}$"), "post_status"),
    ("GET", re.compile(rf"^/api/v4/projects/{_ID}/repository/commits/{_SHA}/statuses$"), "get_statuses"),
    ("POST", re.compile(rf"^/api/v4/projects/{_ID}/repository/commits/{_SHA}/comments$"), "post_comment"),
    ("GET", re.compile(rf"^/api/v4/projects/{_ID}/repository/commits/{_SHA}/comments$"), "get_comments"),
    ("GET", re.compile(rf"^/api/v4/groups/{_ID}/projects$"), "get_group_projects"),
    ("GET", re.compile(rf"^/api/v4/projects/{_ID}/events$"), "get_project_events"),
    ("GET", re.compile(rf"^/api/v4/projects/{_ID}/repository/merge_base$"), "get_merge_base"),
    ("GET", re.compile(r"^/api/v4/personal_access_tokens/self$"), "get_token_self"),
    ("GET", re.compile(rf"^/api/v4/groups/{_ID}/members/all/(?P<user_id>[^/]+)$"), "get_group_member"),
]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as python-gitlab's session expects
    server_version = "nginx"
    sys_version = ""
    timeout = 30  # an idle kept-alive connection frees its thread after this
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    # -- plumbing --

    @property
    def fake(self) -> FakeGitLab:
        return self.server.fake

    @property
    def base(self) -> str:
        return f"http://{self.headers.get('Host') or f'127.0.0.1:{self.server.server_address[1]}'}"

    def _read_params(self, query: dict[str, list[str]]) -> dict[str, Any]:
        params: dict[str, Any] = {k: v[-1] for k, v in query.items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return params
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                body = json.loads(raw)
            except ValueError as e:
                raise _Reply(400, {"error": f"{e.__class__.__name__}: the JSON body is not valid"}) from e
            if isinstance(body, dict):
                params.update(body)
        else:
            params.update({k: v[-1] for k, v in parse_qs(raw.decode(errors="replace"), keep_blank_values=True).items()})
        return params

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        record = RecordedRequest(method, split.path, query, {k: v for k, v in self.headers.items()}, {})
        with self.fake._lock:
            self.fake._requests.append(record)
        self._record = record
        self._lose_reply = False
        try:
            record.params = self._read_params(query)
            fault = self.fake._take_fault(method, split.path)
            if fault is not None and self._apply_fault(fault):
                return
            self._route(method, split.path, record.params)
        except _Reply as reply:
            self._send(reply.status, reply.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _apply_fault(self, fault: Fault) -> bool:
        """Carry out `fault`; True when the request has been dealt with."""
        if fault.kind == "drop":
            self.close_connection = True
            return True
        if fault.kind == "lose_reply":
            self._lose_reply = True
            return False
        if fault.kind == "slow":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "hang":
            self.fake._release.wait()
            return False
        self._send(fault.status, fault.body, fault.headers)
        return True

    def _route(self, method: str, path: str, params: dict[str, Any]) -> None:
        allowed = False
        for verb, pattern, name in _ROUTES:
            match = pattern.match(path)
            if not match:
                continue
            if verb != method:
                allowed = True
                continue
            user = self._authenticate(params, write=method != "GET")
            getattr(self, f"_{name}")(user, params, **{k: unquote(v) if v else v for k, v in match.groupdict().items()})
            return
        if allowed:
            raise _Reply(405, {"error": "405 Not Allowed"})
        raise _Reply(404, ROUTE_NOT_FOUND)

    def _authenticate(self, params: dict[str, Any], *, write: bool) -> dict[str, Any]:
        token = self.headers.get("PRIVATE-TOKEN") or params.get("private_token")
        auth = self.headers.get("Authorization") or ""
        if not token and auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        with self.fake._lock:
            found = self.fake._tokens.get(token or "")
        if found is None:
            raise _Reply(401, UNAUTHORIZED)
        needed = {"api"} if write else {"api", "read_api"}
        if not found.scopes & needed:
            raise _Reply(403, {"error": "insufficient_scope", "error_description": INSUFFICIENT_SCOPE_DESCRIPTION,
                               "scope": "api" if write else "api read_api"})
        return found.user

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        if isinstance(body, (dict, list)):
            data, ctype = json.dumps(body).encode(), "application/json"
        else:
            data = (body or "").encode() if isinstance(body, str) else (body or b"")
            ctype = "text/html" if data.lstrip().startswith(b"<") else "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Request-Id", uuid.uuid4().hex[:26].upper())
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self._record.status = status
        if self._lose_reply:  # the work is done; the answer never leaves
            self.close_connection = True
            return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _project(self, ref: str) -> FakeProject:
        with self.fake._lock:
            p = self.fake._find_project(ref)
        if p is None:
            raise _Reply(404, {"message": "404 Project Not Found"})
        return p

    def _commit(self, p: FakeProject, rev: str) -> str:
        sha = resolve_commit(p.repo_dir, rev) if p.repo_dir is not None else None
        if sha is None:
            raise _Reply(404, {"message": "404 Commit Not Found"})
        return sha

    # -- routes --

    def _get_user(self, user: dict[str, Any], params: dict[str, Any]) -> None:
        self._send(200, {**self.fake._user_json(user, self.base), "created_at": "2024-09-01T08:00:00.000Z",
                         "bio": "", "location": "", "public_email": None, "skype": "", "linkedin": "",
                         "twitter": "", "website_url": "", "organization": "", "bot": False,
                         "email": f"{user['username']}@example.com", "is_admin": False,
                         "can_create_group": True, "can_create_project": True, "two_factor_enabled": False,
                         "external": False, "private_profile": False})

    def _get_project(self, user: dict[str, Any], params: dict[str, Any], id: str) -> None:
        p = self._project(id)
        with self.fake._lock:
            body = self.fake._project_json(p, self.base)
        self._send(200, body)

    def _get_archive(self, user: dict[str, Any], params: dict[str, Any], id: str, fmt: str | None) -> None:
        p = self._project(id)
        ref = params.get("sha") or p.default_branch or ""
        sha = resolve_commit(p.repo_dir, ref) if p.repo_dir is not None and ref else None
        if sha is None:
            raise _Reply(404, {"message": "404 File Not Found"})
        fmt = {"tgz": "tar.gz", None: "tar.gz"}.get(fmt, fmt)
        # Gitlab::Git::Repository#archive_prefix with append_sha (the API always appends it).
        prefix = f"{p.path}-{ref.replace('/', '-')}-{sha}"
        data = git(p.repo_dir, "archive", f"--format={fmt}", f"--prefix={prefix}/", sha)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f'attachment; filename="{prefix}.{fmt}"')
        self.send_header("Content-Transfer-Encoding", "binary")
        self.send_header("Cache-Control", "private")
        self.send_header("Transfer-Encoding", "chunked")  # workhorse streams archives as they are made
        self.end_headers()
        self._record.status = 200
        chunk = 64 * 1024
        for i in range(0, len(data), chunk):
            piece = data[i : i + chunk]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")

    def _get_commit(self, user: dict[str, Any], params: dict[str, Any], id: str, sha: str) -> None:
        p = self._project(id)
        full = self._commit(p, sha)
        assert p.repo_dir is not None
        fmt = "%H%x00%h%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B"
        fields = git(p.repo_dir, "show", "-s", f"--format={fmt}", full).decode().split("\x00")
        _, short, parents, an, ae, ad, cn, ce, cd, message = fields
        adds = dels = 0
        for line in git(p.repo_dir, "show", "--numstat", "--format=", full).decode().splitlines():
            a, d, _ = line.split("\t", 2)
            adds += int(a) if a.isdigit() else 0
            dels += int(d) if d.isdigit() else 0
        message = message.rstrip("\n") + "\n"
        self._send(200, {
            "id": full, "short_id": short, "created_at": cd, "parent_ids": parents.split(),
            "title": message.splitlines()[0], "message": message, "author_name": an, "author_email": ae,
            "authored_date": ad, "committer_name": cn, "committer_email": ce, "committed_date": cd,
            "trailers": {}, "extended_trailers": {}, "web_url": f"{self.fake._web_url(p, self.base)}/-/commit/{full}",
            "stats": {"additions": adds, "deletions": dels, "total": adds + dels},
            "status": None, "project_id": p.id, "last_pipeline": None,
        })

    def _post_status(self, user: dict[str, Any], params: dict[str, Any], id: str, sha: str) -> None:
        p = self._project(id)
        fake = self.fake
        state = params.get("state")
        name = params.get("name") or params.get("context") or "default"

        def reject(status: int, body: Any) -> _Reply:
            with fake._lock:
                fake._rejected.append(RejectedStatus(p.id, sha, state, name, status,
                                                     body.get("message", body.get("error")), dict(params)))
            return _Reply(status, body)

        # Grape's parameter validation
        if not state:
            raise reject(400, {"error": "state is missing"})
        if state not in STATES:
            raise reject(400, {"error": "state does not have a valid value"})
        coverage = params.get("coverage")
        if coverage is not None:
            try:
                coverage = float(coverage)
            except (TypeError, ValueError):
                raise reject(400, {"error": "coverage is invalid"}) from None
        pipeline_id = params.get("pipeline_id")
        if pipeline_id is not None:
            try:
                pipeline_id = int(pipeline_id)
            except (TypeError, ValueError):
                raise reject(400, {"error": "pipeline_id is invalid"}) from None

        try:
            full = self._commit(p, sha)
        except _Reply as e:
            raise reject(e.status, e.body) from None
        assert p.repo_dir is not None
        with fake._lock:
            pipelines = [pl for pl in reversed(fake._pipelines) if pl["project_id"] == p.id and pl["sha"] == full]
            if params.get("ref"):
                pipelines = [pl for pl in pipelines if pl["ref"] == params["ref"]]
            if pipeline_id is not None:
                pipelines = [pl for pl in pipelines if pl["id"] == pipeline_id]
        ref = params.get("ref") or (pipelines[0]["ref"] if pipelines else None)
        if not ref:
            out = git(p.repo_dir, "branch", "--contains", full, "--format=%(refname:short)").decode().split()
            ref = out[0] if out else None
        if not ref:
            raise reject(404, {"message": "404 References for commit Not Found"})
        if pipeline_id is not None and not pipelines:
            raise reject(404, {"message": "404 Pipeline for pipeline_id, sha and ref Not Found"})

        with fake._lock:
            if pipelines:
                pipeline = pipelines[0]
            else:
                pipeline = {"id": fake._next_pipeline_id, "project_id": p.id, "sha": full, "ref": ref}
                fake._next_pipeline_id += 1
                fake._pipelines.append(pipeline)
            existing = next((j for j in fake._jobs if j["pipeline_id"] == pipeline["id"] and j["ref"] == ref
                             and j["name"] == name and j["user_id"] == user["id"] and not j["retried"]
                             and j["status"] in ("running", "pending")), None)
            job = dict(existing) if existing else {
                "id": None, "project_id": p.id, "sha": full, "ref": ref, "name": name, "status": "created",
                "pipeline_id": pipeline["id"], "user_id": user["id"], "target_url": None, "description": None,
                "coverage": None, "created_at": _now(), "started_at": None, "finished_at": None, "queued_at": None,
                "retried": False,
            }
            for key in ("target_url", "description"):
                if key in params:
                    job[key] = params[key]
            if "coverage" in params:
                job["coverage"] = coverage
            too_long = {k: ["is too long (maximum is 255 characters)"] for k in ("ref", "target_url", "description")
                        if job[k] is not None and len(str(job[k])) > MAX_STATUS_FIELD}
            if too_long:
                raise reject(400, {"message": too_long})
            try:
                _apply_state(job, state)
            except InvalidTransition as e:
                raise reject(400, {"message": str(e)}) from None
            if existing:
                existing.update(job)
                job = existing
            else:
                job["id"] = fake._next_status_id
                fake._next_status_id += 1
                fake._jobs.append(job)
            for other in fake._jobs:  # CommitStatus#update_older_statuses_retried!
                if other is not job and other["pipeline_id"] == job["pipeline_id"] and other["name"] == name:
                    other["retried"] = True
            fake._statuses.append(RecordedStatus(job["id"], p.id, full, job["status"], name, ref,
                                                 job["description"], job["target_url"], job["coverage"],
                                                 pipeline["id"], dict(params)))
            body = _status_json(job, fake._user_json(user, self.base))
        self._send(201, body)

    def _get_statuses(self, user: dict[str, Any], params: dict[str, Any], id: str, sha: str) -> None:
        """lib/api/commit_statuses.rb: the statuses of the commit's pipelines, only the latest of
        each name (not retried) unless `all`, filtered by `ref` and `name`, ordered by id."""
        p = self._project(id)
        full = self._commit(p, sha)
        fake = self.fake
        everything = str(params.get("all", "")).lower() in ("true", "1", "yes")
        with fake._lock:
            found = [j for j in fake._jobs if j["project_id"] == p.id and j["sha"] == full
                     and (everything or not j["retried"])
                     and (not params.get("ref") or j["ref"] == params["ref"])
                     and (not params.get("name") or j["name"] == params["name"])]
            found.sort(key=lambda j: j["id"])
            users = {t.user["id"]: t.user for t in fake._tokens.values()}
            items = [_status_json(j, fake._user_json(users.get(j["user_id"], user), self.base)) for j in found]
        per_page = _int(params.get("per_page"), 20)
        per_page = 20 if per_page < 1 else min(per_page, fake.max_per_page)
        page = max(_int(params.get("page"), 1), 1)
        pages = max(1, math.ceil(len(items) / per_page))
        self._send(200, items[(page - 1) * per_page: page * per_page],
                   _pagination_headers(self.base + self._record.path, self._record.query, page, per_page,
                                       len(items), pages))

    def _post_comment(self, user: dict[str, Any], params: dict[str, Any], id: str, sha: str) -> None:
        p = self._project(id)
        note = params.get("note")
        if note is None or note == "":
            raise _Reply(400, {"error": "note is missing" if note is None else "note is empty"})
        if params.get("path") and params.get("line") is None:
            raise _Reply(400, {"error": "line is missing"})
        full = self._commit(p, sha)
        if len(str(note)) > MAX_NOTE_CHARS:
            raise _Reply(400, {"message": {"note": [f"is too long (maximum is {MAX_NOTE_CHARS} characters)"]}})
        fake = self.fake
        with fake._lock:
            note_id = fake._next_note_id
            fake._next_note_id += 1
            line = params.get("line")
            author = fake._user_json(user, self.base)
            comment = RecordedComment(note_id, p.id, full, str(note), params.get("path"),
                                      int(line) if line is not None else None, params.get("line_type"),
                                      dict(params), author, _now())
            fake._comments.append(comment)
        self._send(201, _comment_json(comment))

    def _get_comments(self, user: dict[str, Any], params: dict[str, Any], id: str, sha: str) -> None:
        p = self._project(id)
        full = self._commit(p, sha)
        fake = self.fake
        with fake._lock:
            found = [c for c in fake._comments if c.project_id == p.id and c.sha == full]  # oldest first
        per_page = _int(params.get("per_page"), 20)
        per_page = 20 if per_page < 1 else min(per_page, fake.max_per_page)
        page = max(_int(params.get("page"), 1), 1)
        pages = max(1, math.ceil(len(found) / per_page))
        items = [_comment_json(c) for c in found[(page - 1) * per_page: page * per_page]]
        self._send(200, items, _pagination_headers(self.base + self._record.path, self._record.query,
                                                   page, per_page, len(found), pages))

    def _get_project_events(self, user: dict[str, Any], params: dict[str, Any], id: str) -> None:
        p = self._project(id)
        fake = self.fake
        # Event.actions: every push (to, new branch, deletion) has the action "pushed".
        actions = {"pushed to": "pushed", "pushed new": "pushed", "deleted": "pushed"}
        with fake._lock:
            found = [e for e in fake._events if e["project_id"] == p.id]
        if params.get("action"):
            found = [e for e in found if actions.get(e["action_name"], e["action_name"]) == params["action"]]
        if params.get("target_type"):
            found = [e for e in found if (e["target_type"] or "").lower() == params["target_type"].lower()]
        for key, keep in (("after", lambda day, when: when[:10] > day), ("before", lambda day, when: when[:10] < day)):
            if params.get(key):  # dates (YYYY-MM-DD), exclusive
                found = [e for e in found if keep(params[key], e["created_at"])]
        found.sort(key=lambda e: (e["created_at"], e["id"]), reverse=(params.get("sort") or "desc") != "asc")
        per_page = _int(params.get("per_page"), 20)
        per_page = 20 if per_page < 1 else min(per_page, fake.max_per_page)
        page = max(_int(params.get("page"), 1), 1)
        pages = max(1, math.ceil(len(found) / per_page))
        self._send(200, found[(page - 1) * per_page: page * per_page],
                   _pagination_headers(self.base + self._record.path, self._record.query, page, per_page,
                                       len(found), pages))

    def _get_merge_base(self, user: dict[str, Any], params: dict[str, Any], id: str) -> None:
        p = self._project(id)
        query = self._record.query
        refs = query.get("refs[]") or [r for v in query.get("refs", []) for r in v.split(",") if r]
        if len(refs) < 2:
            raise _Reply(400, {"message": "Provide at least 2 refs"})
        shas = [resolve_commit(p.repo_dir, r) if p.repo_dir is not None else None for r in refs]
        unknown = [r for r, sha in zip(refs, shas, strict=True) if sha is None]
        if unknown:
            noun = "ref" if len(unknown) == 1 else "refs"
            raise _Reply(400, {"message": f"Could not find {noun}: {', '.join(unknown)}"})
        assert p.repo_dir is not None
        base = _git_try(p.repo_dir, "merge-base", *[s for s in shas if s])
        if not base:
            raise _Reply(404, {"message": "404 Merge Base Not Found"})
        self._get_commit(user, params, id, base.decode().strip())

    def _get_token_self(self, user: dict[str, Any], params: dict[str, Any]) -> None:
        token = self.headers.get("PRIVATE-TOKEN") or params.get("private_token") or ""
        with self.fake._lock:
            found = self.fake._tokens[token]
        self._send(200, {"id": 100 + user["id"], "name": "grader", "revoked": False,
                         "created_at": "2024-09-01T08:00:00.000Z", "description": None,
                         "scopes": sorted(found.scopes), "user_id": user["id"], "last_used_at": _now(),
                         "active": True, "expires_at": None})

    def _get_group_member(self, user: dict[str, Any], params: dict[str, Any], id: str, user_id: str) -> None:
        fake = self.fake
        with fake._lock:
            group = fake._find_group(id)
            if group is None:
                raise _Reply(404, {"message": "404 Group Not Found"})
            chain = [g for g in fake._groups.values()
                     if group.full_path.lower() == g.full_path.lower()
                     or group.full_path.lower().startswith(g.full_path.lower() + "/")]
            levels = [fake._members[(g.id, _int(user_id, -1))] for g in chain if (g.id, _int(user_id, -1))
                      in fake._members]
            member = next((t.user for t in fake._tokens.values() if t.user["id"] == _int(user_id, -1)), None)
        if not levels or member is None:
            raise _Reply(404, {"message": "404 Not found"})
        self._send(200, {**fake._user_json(member, self.base), "access_level": max(levels),
                         "created_at": "2024-09-01T08:00:00.000Z", "expires_at": None,
                         "membership_state": "active"})

    def _get_group_projects(self, user: dict[str, Any], params: dict[str, Any], id: str) -> None:
        fake = self.fake
        with fake._lock:
            group = fake._find_group(id)
            if group is None:
                raise _Reply(404, {"message": "404 Group Not Found"})
            subgroups = _truthy(params.get("include_subgroups"))
            prefix = group.full_path.lower() + "/"
            found = [p for p in fake._projects.values()
                     if p.namespace.lower() == group.full_path.lower()
                     or (subgroups and p.namespace.lower().startswith(prefix))]
            if "archived" in params:
                found = [p for p in found if p.archived == _truthy(params["archived"])]
            order_by = params.get("order_by") or "created_at"
            key = {"id": lambda p: p.id, "name": lambda p: p.path.lower(), "path": lambda p: p.path.lower()}.get(
                order_by, lambda p: (p.created_at, p.id))
            found.sort(key=key, reverse=(params.get("sort") or "desc") != "asc")
            per_page = _int(params.get("per_page"), 20)
            per_page = 20 if per_page < 1 else min(per_page, fake.max_per_page)
            page = max(_int(params.get("page"), 1), 1)
            total = len(found)
            pages = max(1, math.ceil(total / per_page))
            items = [fake._project_json(p, self.base) for p in found[(page - 1) * per_page : page * per_page]]
        self._send(200, items, _pagination_headers(self.base + self._record.path, self._record.query,
                                                   page, per_page, total, pages))


def _status_json(job: dict[str, Any], author: dict[str, Any]) -> dict[str, Any]:
    """Entities::CommitStatus, as POST and GET of commit statuses answer."""
    return {"id": job["id"], "sha": job["sha"], "ref": job["ref"], "status": job["status"], "name": job["name"],
            "target_url": job["target_url"], "description": job["description"], "created_at": job["created_at"],
            "started_at": job["started_at"], "finished_at": job["finished_at"], "allow_failure": False,
            "coverage": job["coverage"], "pipeline_id": job["pipeline_id"], "author": author}


def _comment_json(c: RecordedComment) -> dict[str, Any]:
    # Without a diff line to attach to, GitLab answers path, line and line_type as null.
    return {"note": c.note, "path": None, "line": None, "line_type": None, "author": c.author,
            "created_at": c.created_at}


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _pagination_headers(url: str, query: dict[str, list[str]], page: int, per_page: int, total: int,
                        pages: int) -> dict[str, str]:
    """Offset pagination headers as doc/api/rest/_index.md shows them (Link plus x-* headers)."""
    items = [(k, v) for k, vs in query.items() for v in vs if k not in ("page", "per_page")]

    def link(n: int) -> str:
        return f"{url}?{urlencode([*items, ('page', str(n)), ('per_page', str(per_page))])}"

    links = []
    if page > 1:
        links.append(f'<{link(page - 1)}>; rel="prev"')
    if page < pages:
        links.append(f'<{link(page + 1)}>; rel="next"')
    links.append(f'<{link(1)}>; rel="first"')
    links.append(f'<{link(pages)}>; rel="last"')
    return {
        "Link": ", ".join(links),
        "Vary": "Origin",
        "X-Next-Page": str(page + 1) if page < pages else "",
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Prev-Page": str(page - 1) if page > 1 else "",
        "X-Total": str(total),
        "X-Total-Pages": str(pages),
    }
