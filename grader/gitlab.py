"""The grader's only door to GitLab (python-gitlab), where GitLab's failures become ours.

What callers can get out of here:

- `GitLabUnavailable` (a GraderError): GitLab down, 5xx, 408/409/429, a timeout, a refused or
  broken connection. Nothing is wrong with the request: retry it later.
- `ConfigError` (a GraderError): 401/403 — the token is wrong, expired or revoked, lacks the
  `api` scope, or its user lacks the role; or the GitLab URL is unusable. An operator must act.
- `GraderError`: GitLab refused a request for another reason (a project or group the token's
  user cannot see, a 4xx we did not expect). Retrying the same request will not help.
- `SubmissionError`: the pushed commit cannot be fetched from its project (gone from the
  repository), or its archive is over the size cap: the student's to fix.

Posting a commit status that is already in place is not a failure: GitLab answers 400 "Cannot
transition status via :run from :running" when the same `pending` or `running` is posted twice
(a retried delivery), and `post_status` treats it as delivered.

A comment may be stored by GitLab although its answer never arrived (a proxy timing out): a
comment posted with a `key` carries it as an invisible Markdown comment, and `has_comment` finds
it, so a retried delivery does not post the report twice. A final status (`success`, `failed`)
posted twice is not refused: GitLab adds a second one. `shows_status` reads what the commit shows,
so that a delivery that may have reached GitLab before is not repeated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import gitlab
import requests
from gitlab import exceptions as glexc

import grader
from grader.errors import ConfigError, GraderError, SubmissionError
from grader.gitlab_types import ProjectRef, PushEvent, TokenInfo

log = logging.getLogger(__name__)

STATES = ("pending", "running", "success", "failed", "canceled", "skipped")
DEFAULT_MAX_ARCHIVE_BYTES = 200 * 1024**2  # compressed; extraction has its own caps
MAX_STATUS_FIELD = 255  # GitLab validates ref, target_url and description to 255 characters
MAX_NOTE_CHARS = 1_000_000  # GitLab's limit on a note's length
_TRUNCATED = "\n\n… (truncated: the report is longer than GitLab accepts in a comment)"
_CHUNK = 64 * 1024
# GitLab's answer when a status is posted that the existing one of that name cannot move to,
# i.e. the commit already shows it (app/services/ci/create_commit_status_service.rb).
_ALREADY_THERE = "Cannot transition status"


def _marker(key: str) -> str:
    # An HTML comment: GitLab's Markdown shows nothing of it.
    return f"\n\n<!-- grader:{key} -->"


class GitLabUnavailable(GraderError):
    """GitLab could not be reached or did not answer properly; the same call may succeed later."""


class GitLab:
    """A python-gitlab session for one GitLab instance and token.

    python-gitlab's own retries are off (429 included): a failure comes back at once as
    `GitLabUnavailable`, and the caller's durable outbox decides when to try again.
    """

    def __init__(self, url: str, token: str, timeout_s: float = 30) -> None:
        self.url = url.rstrip("/").removesuffix("/api/v4")  # the instance, as python-gitlab wants it
        self.timeout_s = timeout_s
        self._gl = gitlab.Gitlab(self.url, private_token=token, timeout=timeout_s,
                                 retry_transient_errors=False, user_agent=f"grader/{grader.__version__}")
        self._names: dict[int, str] = {}  # project id -> path, for messages

    # -- reading --------------------------------------------------------------------------------

    def archive(self, project_id: int, sha: str, *, max_bytes: int = DEFAULT_MAX_ARCHIVE_BYTES,
                total_timeout_s: float | None = None) -> bytes:
        """The repository at `sha` as GitLab's tar.gz, read as a stream and refused past `max_bytes`.

        `total_timeout_s` (default 10 × timeout_s) bounds the whole download, so a server
        dripping bytes just fast enough to beat the per-read timeout still ends.
        """
        what = f"downloading the repository of {self._describe(project_id)} at {sha}"
        budget = total_timeout_s if total_timeout_s is not None else 10 * self.timeout_s
        deadline = time.monotonic() + budget
        with self._translating(what, project_id=project_id, sha=sha, missing_commit_is_submission=True):
            chunks = self._gl.projects.get(project_id, lazy=True).repository_archive(
                sha=sha, format="tar.gz", streamed=True, iterator=True, chunk_size=_CHUNK, **_NO_RETRY)
            data = bytearray()
            try:
                for chunk in chunks:
                    data += chunk
                    if len(data) > max_bytes:
                        raise SubmissionError(
                            f"the repository of {self._describe(project_id)} at {sha[:12]} is too big: its "
                            f"archive passes {_size(max_bytes)} (compressed); remove large files from it "
                            "(build outputs, datasets, virtualenvs) and push again")
                    if time.monotonic() > deadline:
                        raise GitLabUnavailable(f"GitLab at {self.url} is too slow {what}: not done after "
                                                f"{budget:g}s")
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()  # an abandoned chunked download closes its connection
        return bytes(data)

    def project(self, ref: int | str) -> ProjectRef:
        """A project by id, `namespace/path`, or its web URL on this instance."""
        ref = _project_ref(ref, self.url)
        with self._translating(f"looking up project {ref}", project_id=ref):
            p = self._gl.projects.get(ref, **_NO_RETRY)
        return self._ref(p)

    def commit_sha(self, project_id: int, ref: str) -> str:
        """The full SHA of `ref` (a branch, tag or SHA) in the project."""
        with self._translating(f"reading commit {ref}", project_id=project_id, sha=ref):
            commit = self._gl.projects.get(project_id, lazy=True).commits.get(ref, **_NO_RETRY)
        return commit.id

    def group_projects(self, group: str) -> list[ProjectRef]:
        """Every unarchived project in `group` (id or full path) and its subgroups, all pages, by id.

        Projects merely shared with the group are not included: they are not students' work.
        """
        with self._translating(f"listing the projects of group {group}", group=group):
            found = self._gl.groups.get(group, lazy=True).projects.list(
                include_subgroups=True, with_shared=False, archived=False, order_by="id", sort="asc",
                per_page=100, get_all=True, **_NO_RETRY)
        return [self._ref(p) for p in found]

    def push_events(self, project_id: int, *, max_events: int = 300) -> list[PushEvent]:
        """The project's branch pushes, newest first: GitLab's Events API (`GET /projects/:id/events
        ?action=pushed`), at most `max_events` of them (GitLab keeps events for three years)."""
        what = f"reading the push events of {self._describe(project_id)}"
        found: list[PushEvent] = []
        with self._translating(what, project_id=project_id):
            events = self._gl.projects.get(project_id, lazy=True).events.list(
                action="pushed", sort="desc", per_page=100, iterator=True, **_NO_RETRY)
            for read, event in enumerate(events, start=1):
                data = getattr(event, "push_data", None) or {}
                created = _time(getattr(event, "created_at", None))
                if data.get("ref_type") == "branch" and data.get("ref") and created is not None:
                    found.append(PushEvent(created, str(data["ref"]), data.get("commit_from") or None,
                                           data.get("commit_to") or None, str(data.get("action") or "pushed")))
                if read >= max_events:
                    break
        return found

    def merge_base(self, project_id: int, a: str, b: str) -> str | None:
        """The SHA of the best common ancestor of two commits; None when they share no history.
        `merge_base(p, a, b) == a` means `a` is an ancestor of `b`: an older state of it."""
        what = f"finding the common ancestor of {a[:12]} and {b[:12]} in {self._describe(project_id)}"
        with self._translating(what, project_id=project_id):
            try:
                found = self._gl.projects.get(project_id, lazy=True).repository_merge_base([a, b], **_NO_RETRY)
            except glexc.GitlabGetError as e:
                if e.response_code == 404 and "Merge Base" in str(e.error_message):
                    return None
                raise
        return str(found["id"]) if isinstance(found, dict) else None

    def token_info(self) -> TokenInfo:
        """The token's user (python-gitlab's `auth()`) and scopes (`GET /personal_access_tokens/self`,
        GitLab 15.5+; group and project access tokens are personal tokens of a bot user)."""
        with self._translating("checking the grader's token"):
            self._gl.auth()
            user = self._gl.user
            assert user is not None  # auth() sets it or raises
            try:
                data = self._gl.http_get("/personal_access_tokens/self", **_NO_RETRY)
            except glexc.GitlabHttpError as e:
                if e.response_code not in (403, 404, 405):
                    raise
                data = None
        scopes = tuple(str(x) for x in data.get("scopes", ())) if isinstance(data, dict) else None
        return TokenInfo(int(user.id), str(user.username), scopes)

    def access_level(self, group: str, user_id: int) -> int | None:
        """The user's role in `group`, inherited ones included (`GET /groups/:id/members/all/:user_id`);
        None when the user is not a member."""
        what = f"reading the role of user {user_id} in group {group}"
        with self._translating(what, group=group):
            try:
                data = self._gl.http_get(f"/groups/{quote(group.strip('/'), safe='')}/members/all/{user_id}",
                                         **_NO_RETRY)
            except glexc.GitlabHttpError as e:
                if e.response_code == 404 and "Group" not in str(e.error_message):
                    return None
                raise
        return int(data["access_level"]) if isinstance(data, dict) and "access_level" in data else None

    # -- writing --------------------------------------------------------------------------------

    def post_status(self, project_id: int, sha: str, state: str, *, name: str, description: str | None = None,
                    target_url: str | None = None, coverage: float | None = None, ref: str | None = None) -> bool:
        """Sets the commit status `name` on `sha` to `state`.

        Returns True when GitLab changed it, False when the commit already showed that status
        (GitLab answers 400 "Cannot transition status ..." to a repeated pending/running).
        A description over GitLab's 255 characters is shortened; a longer target_url is left out
        (GitLab would refuse the whole status for it) and logged.
        """
        if state not in STATES:
            raise ValueError(f"commit status state must be one of {', '.join(STATES)}, not {state!r}")
        data: dict[str, Any] = {"state": state, "name": name}
        if description is not None:
            data["description"] = _shorten(description, MAX_STATUS_FIELD)
        if target_url is not None:
            if len(target_url) <= MAX_STATUS_FIELD:
                data["target_url"] = target_url
            else:
                log.warning("status %s on %s: target_url left out, GitLab takes at most %d characters: %s",
                            state, sha[:12], MAX_STATUS_FIELD, target_url[:80])
        if coverage is not None:
            data["coverage"] = float(coverage)
        if ref is not None:
            data["ref"] = ref
        what = f"posting the {state!r} status {name!r} on {sha[:12]} of {self._describe(project_id)}"
        try:
            with self._translating(what, project_id=project_id, sha=sha):
                commit = self._commit(project_id, sha)
                commit.statuses.create(data, **_NO_RETRY)
        except _AlreadyThere as e:
            log.info("status %s %r on %s of project %s already in place (%s)", state, name, sha[:12],
                     project_id, e)
            return False
        return True

    def shows_status(self, project_id: int, sha: str, state: str, *, name: str, description: str | None = None,
                     ref: str | None = None, **_ignored: object) -> bool:
        """Whether the newest status `name` on the commit (of `ref`, if given) is already `state`
        with this description: posting it again would add a duplicate, not change anything."""
        query: dict[str, Any] = {"name": name}
        if ref is not None:
            query["ref"] = ref
        what = f"reading the statuses of {sha[:12]} of {self._describe(project_id)}"
        with self._translating(what, project_id=project_id, sha=sha):
            shown = list(self._commit(project_id, sha).statuses.list(iterator=True, per_page=100, **query))
        newest = max(shown, key=lambda s: int(s.id), default=None)
        wanted = _shorten(description, MAX_STATUS_FIELD) if description is not None else None
        return newest is not None and newest.status == state and (wanted is None or newest.description == wanted)

    def post_comment(self, project_id: int, sha: str, note: str, *, key: str | None = None) -> None:
        """Adds `note` (Markdown) as a comment on the commit; an over-long note is truncated.
        `key`: a marker that `has_comment` finds later, invisible in GitLab's rendering."""
        marker = _marker(key) if key else ""
        if len(note) + len(marker) > MAX_NOTE_CHARS:
            note = note[: MAX_NOTE_CHARS - len(_TRUNCATED) - len(marker)] + _TRUNCATED
        note += marker
        what = f"commenting on {sha[:12]} of {self._describe(project_id)}"
        with self._translating(what, project_id=project_id, sha=sha):
            self._commit(project_id, sha).comments.create({"note": note}, **_NO_RETRY)

    def has_comment(self, project_id: int, sha: str, key: str) -> bool:
        """Whether the commit already has a comment posted with `key`."""
        marker = _marker(key)
        what = f"reading the comments of {sha[:12]} of {self._describe(project_id)}"
        with self._translating(what, project_id=project_id, sha=sha):
            comments = self._commit(project_id, sha).comments.list(iterator=True, per_page=100)
            return any(marker in (c.note or "") for c in comments)

    # -- internals ------------------------------------------------------------------------------

    def _commit(self, project_id: int, sha: str) -> Any:
        """The commit as python-gitlab's lazy object: no request until it is used."""
        return self._gl.projects.get(project_id, lazy=True).commits.get(sha, lazy=True)

    def _ref(self, p: Any) -> ProjectRef:
        ref = ProjectRef(int(p.id), p.path_with_namespace, getattr(p, "default_branch", None),
                         getattr(p, "web_url", None))
        self._names[ref.id] = ref.path_with_namespace
        return ref

    def _describe(self, project_id: int | str) -> str:
        name = self._names.get(project_id) if isinstance(project_id, int) else None
        if name:
            return f"project {name} (id {project_id})"
        return f"project {project_id}"

    def _lookup_name(self, project_id: int | str) -> str:
        """`_describe`, after asking GitLab for the project's path if it is not known yet."""
        if isinstance(project_id, int) and project_id not in self._names:
            try:
                self._ref(self._gl.projects.get(project_id, **_NO_RETRY))
            except (glexc.GitlabError, requests.RequestException):
                pass
        return self._describe(project_id)

    @contextmanager
    def _translating(self, what: str, *, project_id: int | str | None = None, sha: str | None = None,
                     group: str | None = None, missing_commit_is_submission: bool = False) -> Iterator[None]:
        """Turns python-gitlab's and requests' exceptions raised inside into ours (see module doc)."""
        try:
            yield
        except (GraderError, SubmissionError, _AlreadyThere):
            raise
        except glexc.RedirectError as e:
            raise ConfigError(f"GitLab at {self.url} redirected a request while {what}: set GRADER_GITLAB_URL "
                              f"to the address GitLab answers on (https?): {e.error_message}") from e
        except glexc.GitlabParsingError as e:
            raise GraderError(f"GitLab at {self.url} answered something that is not GitLab's JSON while "
                              f"{what}: is GRADER_GITLAB_URL the GitLab instance itself?") from e
        except glexc.GitlabError as e:
            raise self._http_error(e, what, project_id=project_id, sha=sha, group=group,
                                   missing_commit_is_submission=missing_commit_is_submission) from e
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.ContentDecodingError) as e:
            kind = "timed out" if isinstance(e, requests.Timeout) else "could not be reached"
            raise GitLabUnavailable(f"GitLab at {self.url} {kind} while {what}: {_brief(e)}") from e
        except requests.RequestException as e:
            raise ConfigError(f"GitLab URL {self.url!r} cannot be used ({_brief(e)}): set GRADER_GITLAB_URL "
                              "to the instance's address, e.g. https://gitlab.example.edu") from e

    def _http_error(self, e: glexc.GitlabError, what: str, *, project_id: int | str | None, sha: str | None,
                    group: str | None, missing_commit_is_submission: bool) -> Exception:
        code = e.response_code
        message = e.error_message
        text = message if isinstance(message, str) else str(message)
        if code == 401:
            return ConfigError(f"GitLab at {self.url} refused the grader's token (401 {text}) while {what}: "
                               "GRADER_GITLAB_TOKEN is wrong, expired or revoked; create a new token with the "
                               "`api` scope")
        if code == 403:
            if "insufficient_scope" in text:
                return ConfigError(f"the grader's GitLab token lacks the `api` scope (403 insufficient_scope) "
                                   f"while {what}: create a token with the `api` scope and set GRADER_GITLAB_TOKEN")
            return ConfigError(f"GitLab forbade {what} (403 {text}): the token lacks the `api` scope or its user "
                               "lacks the role (Developer or more on the students' projects or their group)")
        if code == 404:
            if group is not None:
                return GraderError(f"GitLab has no group {group} that the grader's token can see (404) while "
                                   f"{what}: check the group's path and that the token's user is a member")
            if "Project Not Found" in text or sha is None:
                return GraderError(f"GitLab has no project {project_id} that the grader's token can see (404) "
                                   f"while {what}: check the project, and that the token's user is a member "
                                   "of it or of its group")
            assert project_id is not None, "a request about a commit names its project"
            if missing_commit_is_submission:
                return SubmissionError(f"commit {sha} is no longer in {self._lookup_name(project_id)} "
                                       f"(404 {text}): it was removed from the repository (force-push or deleted "
                                       "branch); push it again to have it graded")
            return GraderError(f"commit {sha} is not in {self._lookup_name(project_id)} (404 {text}) while "
                               f"{what}: it was removed from the repository (force-push or deleted branch)")
        if code == 400 and isinstance(message, str) and message.startswith(_ALREADY_THERE):
            return _AlreadyThere(message)
        if code is None or code >= 500 or code in (408, 409, 423, 429):
            return GitLabUnavailable(f"GitLab at {self.url} answered {code or 'nothing usable'} while {what}: "
                                     f"{_shorten(text, 300)}")
        return GraderError(f"GitLab refused {what} ({code}: {_shorten(text, 500)})")


class _AlreadyThere(Exception):
    """Internal: the status GitLab refused to re-apply is already the commit's."""


# python-gitlab would otherwise sleep and retry 429s itself, holding the worker.
_NO_RETRY: dict[str, Any] = {"obey_rate_limit": False, "max_retries": 0}


def _project_ref(ref: int | str, base_url: str) -> int | str:
    if isinstance(ref, int):
        return ref
    ref = ref.strip()
    if ref.isdigit():
        return int(ref)
    if ref.startswith(base_url + "/"):
        ref = ref[len(base_url) + 1 :]
    return ref.strip("/").removesuffix(".git").split("/-/", 1)[0]


def _time(value: Any) -> datetime | None:
    """GitLab's ISO 8601 times (`2017-02-09T10:43:19.667Z`) as aware UTC datetimes."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _size(n: int) -> str:
    return f"{n / 1024**2:.0f} MiB" if n >= 1024**2 else f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def _brief(e: BaseException) -> str:
    return _shorten(f"{e.__class__.__name__}: {e}", 300)
