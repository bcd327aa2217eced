"""The pages in a real browser: Debian's Chromium (headless, driven by Playwright) against the real
service (`grader serve`, a subprocess on a free loopback port) over a SQLite store that
tests/support/site.py fills with every kind of report, plus one push whose branch name is markup.

Playwright never downloads a browser here (no internet; `playwright install` is never run): it
launches /usr/bin/chromium, which scripts/setup installs. Screenshots of every page go to
artifacts/screenshots/ (CI keeps them); GRADER_UPDATE_SCREENSHOTS=1 also refreshes the two the
README shows (docs/screenshots/).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

from grader.errors import SubmissionError
from grader.messages import refusal
from grader.report import SCHEMA, with_provenance
from grader.store import Store
from tests.support import reports as R
from tests.support.site import GITLAB, INSTRUCTOR_TOKEN, T0, Site, populate

# Keys in the machine's Redis (the workers' beats the queue page reads) are this run's own.
INSTANCE = f"browser-{os.getpid()}"  # the same however often this module is imported

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# Known to work headless as root on these machines; without the background-networking flags
# Chromium waits on connections to Google's services that the network refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
DOCS_SCREENSHOTS = ROOT / "docs" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# A branch name git accepts (no spaces, no `:?*[\~^`) that is an element with a handler in HTML.
HOSTILE_BRANCH = "x<svg/onload=alert(1)>"
HOSTILE_PROJECT = "devops-2026/kuznetsov-docker"
# A path in a student's archive, quoted by the refusal that names it.
HOSTILE_ENTRY = "../<img src=x onerror=alert(2)>"


@dataclass
class Service:
    url: str
    site: Site


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    tmp = tmp_path_factory.mktemp("site")
    store = Store(f"sqlite:///{tmp / 'grader.db'}")
    site = populate(store, tmp)
    _add_hostile_branch(site, store, tmp)
    _add_refused(site, store)
    # Queued before ivanov's third push: one submission waits ahead of that one.
    sub, _ = store.record_push(project_id=8, project_path="devops-2026/zaitsev-docker", student="zaitsev-docker",
                               sha="ef" * 20, ref="refs/heads/main", event_uuid=None,
                               received_at=T0 + timedelta(minutes=15), late=False)
    site.tokens["zaitsev-1"], site.shas["zaitsev-1"] = sub.token or "", sub.sha
    _add_changes(site, store)
    return site


def _add_changes(site: Site, store: Store) -> None:
    """A regrade under a changed assignment file, asked for by an instructor; and a hostile reason."""
    regraded = store.by_token(site.tokens["ivanov-2"])
    hostile = store.by_token(site.tokens["kuznetsov-1"])
    assert regraded is not None and hostile is not None
    store.add_event(regraded.id, "regrade_requested", actor="prof-smirnova", reason="rubric 1.1: exec form")
    store.add_event(regraded.id, "regraded", actor="prof-smirnova", reason="rubric 1.1: exec form",
                    detail={"old_score": 3.0, "new_score": 4.5, "assignment": "b" * 12, "assignment_before": "a" * 12})
    store.add_event(hostile.id, "extension", actor=R.HOSTILE[:200], reason=R.HOSTILE,
                    detail={"until": "2026-12-08T23:59:00+03:00"})


def _add_hostile_branch(site: Site, store: Store, tmp: Path) -> None:
    """A graded push of the hostile report to a branch whose name is markup: the branch reaches the
    report page, the student's history and the scoreboard."""
    sha = "ab" * 20
    sub, _ = store.record_push(project_id=6, project_path=HOSTILE_PROJECT, student="kuznetsov-docker", sha=sha,
                               ref=f"refs/heads/{HOSTILE_BRANCH}", event_uuid=None,
                               received_at=T0 + timedelta(hours=2), late=False)
    report = with_provenance(R.report(R.hostile(tmp), provenance=False), sha=sha, project=HOSTILE_PROJECT,
                             project_url=f"{GITLAB}/{HOSTILE_PROJECT}", received_at=sub.received_at.isoformat(),
                             graded_at=(sub.received_at + timedelta(minutes=3)).isoformat(), late=False)
    assert store.start(sub.id) and store.finish(sub.id, report, "0.1.0")
    site.tokens["kuznetsov-1"], site.shas["kuznetsov-1"] = sub.token or "", sha


def _add_refused(site: Site, store: Store) -> None:
    """A submission refused as given (its archive holds a path out of it), stored as the worker
    stores a refusal: zero, no variants, the reason in the report's language."""
    sha = "cd" * 20
    sub, _ = store.record_push(project_id=7, project_path="devops-2026/volkova-docker", student="volkova-docker",
                               sha=sha, ref="refs/heads/main", event_uuid=None,
                               received_at=T0 + timedelta(hours=3), late=False)
    reason = refusal(SubmissionError("path out of the archive", "archive_path", entry=HOSTILE_ENTRY), "ru")
    report = {"schema": SCHEMA, "grader_version": "0.1.0", "assignment": "counter-backend", "language": "ru",
              "score": 0.0, "max_score": 5.0, "variants": [], "checks": [], "notes": [reason], "error": reason}
    assert store.start(sub.id) and store.finish(sub.id, report, "0.1.0")
    site.tokens["volkova-1"], site.shas["volkova-1"] = sub.token or "", sha


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def service(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with serve(site.store.url, tmp_path_factory.mktemp("serve")) as url:
        yield Service(url, site)


@contextmanager
def serve(database_url: str, workdir: Path) -> Iterator[str]:
    """`grader serve` as an operator starts it (so its uvicorn options, e.g. no server banner, are
    the ones under test), configured by environment only, in a directory with no `.env`; its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env.update(GRADER_DATABASE_URL=database_url,
               GRADER_WEBHOOK_SECRET="webhook-secret-of-the-browser-tests", GRADER_GITLAB_URL=GITLAB,
               GRADER_GITLAB_TOKEN="unused-by-the-pages", GRADER_INSTRUCTOR_TOKEN=INSTRUCTOR_TOKEN,
               GRADER_REPORT_BASE_URL=url, GRADER_WORK_DIR=str(workdir / "work"), GRADER_INSTANCE=INSTANCE,
               # Every request of these tests comes from 127.0.0.1: the per-address limits are
               # tests/unit's business, not something to run into halfway through this module.
               GRADER_PAGE_RATE_PER_MINUTE="10000", GRADER_SIGNIN_RATE_PER_MINUTE="10000")
    log = (workdir / "serve.log").open("wb")
    grader = Path(sys.executable).with_name("grader")
    process = subprocess.Popen([str(grader), "serve", "--host", "127.0.0.1", "--port", str(port)], cwd=workdir,
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(url, process, workdir / "serve.log")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"grader serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    pytest.fail(f"grader serve did not answer on {url} within 30 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup (it installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("playwright is missing: run scripts/setup (it installs the project's test extras)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Tab:
    """A page of a fresh browser context, recording what a test must never see happen: a dialog
    (an injected `alert`), a script error, a console error (a CSP violation, a failed resource)."""

    page: Any
    base: str
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None, path
        return response

    def text(self) -> str:
        return str(self.page.inner_text("body"))

    def shoot(self, name: str, *, docs: str | None = None) -> None:
        """Full-page screenshots at desktop and phone width; `docs`: also the README's copy."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        if docs and os.environ.get("GRADER_UPDATE_SCREENSHOTS") == "1":
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(DOCS_SCREENSHOTS / f"{docs}.png"), full_page=True)
        size = self.page.viewport_size
        self.page.set_viewport_size(PHONE)
        try:
            self.page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
            # Wide tables scroll inside their own box; the page itself never scrolls sideways.
            width = self.page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{name} is {width}px wide at phone width"
        finally:
            self.page.set_viewport_size(size)

    def sign_in(self, token: str = INSTRUCTOR_TOKEN) -> Any:
        """Fills and submits the sign-in form of the page shown; the response it lands on."""
        self.page.fill("#token", token)
        with self.page.expect_navigation() as landed:
            self.page.click("form.signin button[type=submit]")
        return landed.value


@pytest.fixture
def new_tab(browser: Any, service: Service) -> Iterator[Any]:
    """Makes tabs, each in a context of its own (no cookies shared), closed after the test."""
    contexts = []

    def make(viewport: dict | None = None, base: str | None = None, **options: Any) -> Tab:
        context = browser.new_context(viewport=viewport or DESKTOP, **options)
        contexts.append(context)
        tab = Tab(context.new_page(), base or service.url)

        def on_dialog(dialog: Any) -> None:
            tab.dialogs.append(dialog.message)
            dialog.dismiss()

        tab.page.on("dialog", on_dialog)
        tab.page.on("pageerror", lambda exc: tab.errors.append(f"page error: {exc}"))
        tab.page.on("console", lambda m: tab.errors.append(f"console {m.type}: {m.text}")
                    if m.type == "error" else None)
        return tab

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def tab(new_tab: Any) -> Tab:
    return new_tab()


@pytest.fixture
def instructor(new_tab: Any) -> Tab:
    """A tab signed in through the form, as an instructor does it."""
    t = new_tab()
    t.open("/signin")
    landed = t.sign_in()
    assert landed.status == 200 and t.page.url.endswith("/scoreboard"), (landed.status, t.page.url)
    return t
