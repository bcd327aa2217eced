"""One typed settings object, read once from GRADER_* environment variables (or a .env file)."""

from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from grader.errors import ConfigError


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADER_", env_file=".env", extra="ignore")

    # Labels everything this grader creates, so cleanup never touches another grader's work
    # on a shared engine (several workers, a student's local run, the tests).
    instance: str = "default"
    docker_cli: str | None = None  # None: detect (docker with buildx, else a CLI with built-in BuildKit)
    work_dir: Path = Path("/tmp/grader")  # per-job workspaces and build logs live under it
    build_logs_keep_days: float = 14.0  # each submission's build logs, kept for grade disputes (grader/build_logs.py)
    build_timeout_s: float = 600.0  # per build: each variant's own wall clock, also when they build at once
    parallel_builds: int = 3  # variants built at once; 1 builds one after another
    verdict_cache: bool = True  # reuse the verdict of an identical input (grader/verdict_cache.py)
    reconcile_s: float = 15.0  # how often workers re-send what the broker lost, and deliver due posts
    # A worker beats in Redis every heartbeat_s for the grading it holds; a running grading nobody
    # beats for is taken over after takeover_after_s (grader/heartbeat.py). Worst case until another
    # worker starts it: takeover_after_s + reconcile_s.
    heartbeat_s: float = 5.0
    takeover_after_s: float = 30.0
    job_timeout_s: float = 2400.0  # watchdog on a whole grading: builds, runs, cleanup
    ready_timeout_s: float = 30.0
    probe_timeout_s: float = 5.0
    stop_timeout_s: float = 10.0
    memory_bytes: int = 512 * 1024 * 1024
    pids_limit: int = 256
    cpus: float = 1.0
    log_cap_bytes: int = 1024 * 1024  # kept of each build log: head + tail, the middle is cut
    response_cap_bytes: int = 64 * 1024  # read of each HTTP response body
    keep_images: bool = False
    max_image_bytes: int = 2 * 1024**3  # a bigger image is a verdict, and is removed at once
    max_context_bytes: int = 200 * 1024**2  # a bigger build context is a verdict: it is not sent
    max_context_files: int = 20_000
    build_cache_bytes: int = 10 * 1024**3  # `grader gc` (and every grading) prunes BuildKit's cache above this
    gc_after_s: float = 3600.0  # what a run of this instance left behind is removed after this long
    # Student containers run on a per-job internal network whose bridge may not talk to the host
    # (iptables INPUT DROP); needs root and a local engine. Off: port 8080 published on 127.0.0.1.
    isolate_network: bool = True
    iptables: str = "iptables"

    # -- the service (webhook, queue, results) -----------------------------------------------
    gitlab_url: str | None = None  # required by serve/worker/grade: e.g. https://gitlab.example.edu
    gitlab_token: str | None = None  # a token with `api` scope
    webhook_secret: str | None = None  # the "Secret token" of the GitLab webhook
    broker_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "sqlite:///grader.sqlite3"  # a file in the working directory
    report_base_url: str = "http://127.0.0.1:8000"  # statuses link to {report_base_url}/reports/{token}
    branches: list[str] = ["main", "master"]  # pushes to other branches are not graded
    groups: list[str] = []  # when set, only projects under these group paths are graded
    assignment_file: Path | None = None  # the rubric; default checks/assignments/counter_backend.toml
    student_rule: str = "project"  # who a project belongs to: project | namespace | roster (grader/intake.py)
    roster_file: Path | None = None  # CSV project,student,name,email,student_id (student_rule = roster)
    deadline: datetime | None = None  # pushes received later are graded and marked late
    max_webhook_bytes: int = 1024 * 1024  # bigger bodies get 413
    status_name: str = "autograder"  # the commit status context shown in GitLab
    max_archive_bytes: int = 200 * 1024**2  # a fetched repository archive, uncompressed
    max_archive_files: int = 20_000
    max_file_bytes: int = 50 * 1024**2  # one file of a repository archive
    # Merge Request events: grade the source branch head of an opened, reopened or updated MR.
    grade_merge_requests: bool = False
    extensions_file: Path | None = None  # CSV: project or student, until[, reason] (grader/deadlines.py)

    # -- the web pages (grader/pages.py) ------------------------------------------------------
    instructor_token: str | None = None  # Bearer token of the instructor pages; unset: they answer 401
    page_rate_per_minute: int = 120  # requests to report pages per client address and minute
    signin_rate_per_minute: int = 10  # sign-in attempts per client address and minute

    @field_validator("deadline")
    @classmethod
    def _deadline_has_an_offset(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("GRADER_DEADLINE needs a UTC offset, e.g. 2026-12-01T23:59:00+03:00")
        return value

    @property
    def stale_after(self) -> timedelta:
        """A submission running longer than this lost its worker: another may take it over."""
        return timedelta(seconds=self.job_timeout_s + 600)

    def require(self, *names: str) -> None:
        """A clear start-up error for service settings that have no working default."""
        missing = [f"GRADER_{n.upper()}" for n in names if not getattr(self, n)]
        if missing:
            raise ConfigError(f"missing configuration: set {', '.join(missing)} (environment or .env)")


_LIST_SETTINGS = {"groups": '["devops-2026"]', "branches": '["main", "master"]'}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:  # a list given as plain text: say how to write it, in one line
        field = next((f for f in _LIST_SETTINGS if f'"{f}"' in str(exc)), None)
        if field is not None:
            raise ConfigError(f"GRADER_{field.upper()} must be a JSON list, e.g. "
                              f"GRADER_{field.upper()}='{_LIST_SETTINGS[field]}'") from None
        raise ConfigError(f"bad configuration: {str(exc).splitlines()[0]}") from None
    except ValidationError as exc:
        problems = "; ".join(f"GRADER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"bad configuration: {problems}") from None
