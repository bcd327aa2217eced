"""The composition root: the one place that turns Settings into the parts that do the work — the
store, the GitLab client, the engine factory, the grading Service and the application services
over them (`Instructor`, `Workbench`) — and hands the same ones to `grader serve`, `grader worker`
(grader/tasks.py) and the CLI.

Building a part does no I/O until it is first asked for, so `grader check` never opens a database
and `grader scoreboard` needs no GitLab token. Nothing is imported here at module level but the
settings: Celery's main process and `import grader.cli` must not load BuildKit's parser
(tests/unit/test_worker_start.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING

from grader.config import Settings, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from grader.engine import Engine
    from grader.gitlab import GitLab
    from grader.instructor import Instructor
    from grader.service import Service
    from grader.store import Store
    from grader.workbench import Workbench

EngineFactory = Callable[[Settings], "Engine"]


def new_engine(settings: Settings) -> Engine:
    """A Docker engine client for one grading (or one command), with these settings' CLI and limits."""
    from grader.engine import Engine

    return Engine.from_settings(settings)


class App:
    """The parts of one process, each built once from `settings` when first used."""

    def __init__(self, settings: Settings, engine: EngineFactory = new_engine) -> None:
        self.settings = settings
        self.engine = engine  # called per grading: settings may differ per command (`check --docker-cli`)

    # -- the boundaries --------------------------------------------------------------------------
    def open_store(self) -> Store:
        """A store with a connection pool of its own; raises ConfigError/StoreUnavailable at once."""
        from grader.store import Store

        return Store(self.settings.database_url)

    def open_gitlab(self) -> GitLab:
        """A GitLab session of its own; GRADER_GITLAB_URL and _TOKEN are required (a one-line error)."""
        from grader.gitlab import GitLab

        self.settings.require("gitlab_url", "gitlab_token")
        assert self.settings.gitlab_url is not None and self.settings.gitlab_token is not None
        return GitLab(self.settings.gitlab_url, self.settings.gitlab_token)

    @cached_property
    def store(self) -> Store:
        return self.open_store()

    @cached_property
    def gitlab(self) -> GitLab:
        return self.open_gitlab()

    # -- the services ----------------------------------------------------------------------------
    @cached_property
    def service(self) -> Service:
        """Grading and delivery: one per process, so the store's pool and the GitLab session are reused."""
        from grader.service import Service

        self.settings.require("gitlab_url", "gitlab_token")  # before the database is opened (or created)
        return Service(self.settings, self.store, self.gitlab, engine=self.engine)

    @cached_property
    def courier(self) -> Service:
        """The delivery thread's own Service (grader/tasks.py, `delivering_meanwhile`): its own GitLab
        session and database pool, so posting shares no connection with the grading's archive
        download and writes."""
        from grader.service import Service

        self.settings.require("gitlab_url", "gitlab_token")
        return Service(self.settings, self.open_store(), self.open_gitlab(), engine=self.engine)

    @cached_property
    def instructor(self) -> Instructor:
        from grader.instructor import Instructor

        return Instructor(self)

    @cached_property
    def workbench(self) -> Workbench:
        from grader.workbench import Workbench

        return Workbench(self.settings, self.engine)

    # -- start-up and the web app ----------------------------------------------------------------
    def check_startup(self) -> None:
        """What would otherwise fail every job later: the assignment file, and a database this
        grader can use (reachable, not of a newer schema). ConfigError says what to fix."""
        from grader.assignment import load

        load(self.settings.assignment_file)
        self.store  # noqa: B018 - opening it is the check

    def web(self) -> FastAPI:
        """The webhook and pages app over this process's store, queueing through the broker."""
        from grader.tasks import broker_ready, enqueue_pushes, notify
        from grader.web import create_app

        self.check_startup()
        # notify: a push to a branch that is not graded gets a `skipped` status saying so, so the
        # student is never left waiting in silence
        return create_app(self.settings, self.store, enqueue_pushes, ready=broker_ready, notify=notify)

    def close(self) -> None:
        """Closes the stores opened (a process about to hand over to uvicorn's or Celery's workers);
        the parts are built again if asked for after."""
        courier = self.__dict__.pop("courier", None)
        if courier is not None:
            courier.store.close()
        self.__dict__.pop("service", None)
        store = self.__dict__.pop("store", None)
        if store is not None:
            store.close()


_lock = threading.Lock()
_root: App | None = None


def root() -> App:
    """This process's root, from the GRADER_* settings (built again only if they were reloaded)."""
    global _root
    settings = get_settings()
    with _lock:
        if _root is None or _root.settings is not settings:
            _root = App(settings)
        return _root


def web_app() -> FastAPI:
    """The factory each `grader serve --workers N` process calls (uvicorn imports it by name)."""
    return root().web()
