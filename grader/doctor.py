"""`grader doctor --service`: what a deadline night needs besides the engine, each answered in one
line an operator can act on — the GitLab token (valid, `api` scope, a role on every graded group
that may post statuses), the database, the broker, the workers and the report URL students click.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from grader.config import Settings
from grader.errors import GraderError
from grader.gitlab_types import ROLES

DEVELOPER = 30  # GitLab's role that may set commit statuses and comment on commits


@dataclass(frozen=True)
class Finding:
    what: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'PROBLEM'}  {self.what}: {self.detail}"


def service_findings(settings: Settings) -> list[Finding]:
    return [*_gitlab(settings), _database(settings), _broker(settings), _workers(settings), _report_url(settings)]


def _gitlab(settings: Settings) -> list[Finding]:
    from grader.app import App

    if not settings.gitlab_url or not settings.gitlab_token:
        return [Finding("GitLab", False, "set GRADER_GITLAB_URL and GRADER_GITLAB_TOKEN")]
    try:
        gitlab = App(settings).open_gitlab()
        info = gitlab.token_info()
    except GraderError as exc:
        return [Finding("GitLab token", False, f"{exc} (a token with the api scope, of a user who may post statuses)")]
    found = [Finding("GitLab token", info.scopes is None or "api" in info.scopes,
                     f"user {info.username}, scopes {', '.join(info.scopes) if info.scopes else 'unknown'}"
                     + ("" if info.scopes is None or "api" in info.scopes else ": needs the api scope"))]
    for group in settings.groups or []:
        try:
            level = gitlab.access_level(group, info.user_id)
        except GraderError as exc:
            found.append(Finding(f"role in {group}", False, str(exc)))
            continue
        role = ROLES.get(level or 0, f"level {level}") if level else "not a member"
        found.append(Finding(f"role in {group}", (level or 0) >= DEVELOPER,
                             role + ("" if (level or 0) >= DEVELOPER else
                                     ": needs Developer or above to post statuses and comments")))
    if not settings.groups:
        found.append(Finding("graded groups", False, "GRADER_GROUPS is empty: every project the hook sees is graded"))
    return found


def _database(settings: Settings) -> Finding:
    from grader.app import App

    try:
        App(settings).open_store().close()  # the store the service would open, built as the root builds it
    except GraderError as exc:
        return Finding("database", False, str(exc))
    return Finding("database", True, "reachable, schema up to date")


def _broker(settings: Settings) -> Finding:
    import redis

    from grader.tasks import broker_ready

    try:
        broker_ready()
    except GraderError as exc:
        return Finding("broker", False, str(exc))
    except (redis.RedisError, OSError) as exc:  # the client's own errors: a broker down is a finding, not a crash
        return Finding("broker", False, f"{urlsplit(settings.broker_url).hostname} does not answer "
                                        f"({type(exc).__name__}); start Redis or fix GRADER_BROKER_URL")
    return Finding("broker", True, f"{urlsplit(settings.broker_url).hostname} answers")


def _workers(settings: Settings) -> Finding:
    from grader.instructor import workers_line

    try:
        line = workers_line(settings)
    except Exception as exc:  # noqa: BLE001 - a broker that fails mid-ping: said, not raised
        return Finding("workers", False, f"cannot ask them: {exc}")
    return Finding("workers", not line.startswith("workers: none") and "engine not answering" not in line,
                   line.removeprefix("workers: "))


def _report_url(settings: Settings) -> Finding:
    url = settings.report_base_url.rstrip("/")
    if _is_loopback(urlsplit(url).hostname or ""):
        return Finding("report URL", False, f"{url} is this machine's loopback: students cannot open the links in "
                                            "their commit statuses; set GRADER_REPORT_BASE_URL to the public address")
    try:
        answer = requests.get(f"{url}/healthz", timeout=5)
    except requests.RequestException as exc:
        return Finding("report URL", False, f"{url}/healthz does not answer ({type(exc).__name__})")
    return Finding("report URL", answer.status_code == 200, f"{url}/healthz answered {answer.status_code}")


PLACEHOLDER = "change-me"  # what .env.example writes where a secret goes
MIN_SECRET = 16


def serving_problems(settings: Settings, host: str) -> tuple[list[str], list[str]]:
    """(refused, warned): settings that are fine on a laptop but wrong on an address GitLab and
    students reach. The example's placeholder secrets and short secrets are refused; report links
    on a loopback address are warned about only, since a container listens on 0.0.0.0 whether or
    not its port is published beyond the host (compose's web service, `grader doctor --service`)."""
    if _is_loopback(host):
        return [], []
    problems = []
    for name, value in (("GRADER_WEBHOOK_SECRET", settings.webhook_secret),
                        ("GRADER_INSTRUCTOR_TOKEN", settings.instructor_token)):
        if value is not None and (PLACEHOLDER in value or len(value) < MIN_SECRET):
            problems.append(f"{name} is the example's placeholder or shorter than {MIN_SECRET} characters: set a "
                            "long random one (openssl rand -hex 32) before serving on " + host)
    if settings.gitlab_token and PLACEHOLDER in settings.gitlab_token:
        problems.append("GRADER_GITLAB_TOKEN is the example's placeholder: set the grader's GitLab token")
    warnings = []
    report_host = urlsplit(settings.report_base_url).hostname or ""
    if report_host.endswith("example.edu"):
        problems.append(f"GRADER_REPORT_BASE_URL={settings.report_base_url} is the example's: set the service's "
                        "public URL (commit statuses link there)")
    elif _is_loopback(report_host):
        warnings.append(f"GRADER_REPORT_BASE_URL={settings.report_base_url} is a loopback address: students "
                        "cannot open the links in their commit statuses unless they are on this machine")
    return problems, warnings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_wall_findings(settings: Settings, iptables: str = "iptables") -> list[Finding]:
    """On a worker host: can a student's build step reach the broker or the database? Build steps
    run on the engine's default bridge and are forwarded like any traffic, so a service this host
    reaches over the network is theirs too unless DOCKER-USER drops it (scripts/setup with
    GRADER_CONTROL_HOST does)."""
    import socket
    import subprocess

    targets = {}
    for what, url in (("broker", settings.broker_url), ("database", settings.database_url.replace("+psycopg", ""))):
        host = urlsplit(url).hostname
        if not host:
            continue  # SQLite: a file
        try:
            address = ipaddress.ip_address(socket.gethostbyname(host))
        except (OSError, ValueError):
            continue
        if not address.is_loopback:
            targets[what] = address
    if not targets:
        return []
    try:
        rules = subprocess.run([iptables, "-w", "5", "-S", "DOCKER-USER"], capture_output=True, text=True,
                               timeout=20).stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        rules = []
    dropped = [ipaddress.ip_network(m.group(1), strict=False) for r in rules
               if (m := re.search(r"-d (\S+) .*-j DROP$", r)) and " -i " in r]
    return [Finding(f"build steps to the {what}", any(address in net for net in dropped),
                    f"{address} is walled off" if any(address in net for net in dropped) else
                    f"a student's RUN step can reach {address} (the {what}): run "
                    f"GRADER_CONTROL_HOST={address} scripts/setup on this host") for what, address in targets.items()]
