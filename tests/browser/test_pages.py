"""Every page in headless Chromium against the running service (tests/browser/conftest.py): what a
student and an instructor see, not what the HTML source says."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from grader.messages import text, title
from grader.pages import REFRESH_S
from grader.store import Store
from tests.browser.conftest import GITLAB, HOSTILE_BRANCH, HOSTILE_ENTRY, HOSTILE_PROJECT, PHONE, Service, Tab, serve
from tests.support import reports as R
from tests.support.site import INSTRUCTOR_TOKEN, T0

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
REPORT_KEYS = ("ivanov-1", "ivanov-2", "ivanov-3", "petrov-1", "sidorov-1", "sidorov-2", "smirnova-1", "smirnova-2",
               "orlova-1", "kuznetsov-1", "volkova-1", "zaitsev-1")
HOSTILE_KEYS = {"petrov-1", "kuznetsov-1"}
INSTRUCTOR_PAGES = ("/scoreboard", "/students/ivanov-docker", "/queue", "/openapi.json", "/scoreboard.csv",
                    "/scoreboard.json")


def ru(key: str, section: str = "report", **params: object) -> str:
    return text(section, key, "ru", **params)


def line_of(path: Path, pattern: str) -> int:
    """The 1-based number of the first line of `path` matching `pattern`: the line a link must open."""
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if re.match(pattern, line):
            return n
    raise AssertionError(f"no line of {path} matches {pattern!r}")


def blob(project: str, sha: str, path: str, line: int) -> str:
    return f"{GITLAB}/{project}/-/blob/{sha}/{path}#L{line}"


def scoreboard_column(t: Tab, css: str) -> list[str]:
    return [str(s).strip() for s in t.page.locator(f"table.board tbody td{css}").all_inner_texts()]


def as_number(cell: str) -> float | None:
    return None if cell in ("", "—") else float(cell.replace(",", "."))


# -- what every report page shows ---------------------------------------------------------------------
@pytest.mark.parametrize("key", REPORT_KEYS)
def test_a_report_page_shows_no_markdown_source_and_fits_a_phone(new_tab: Any, service: Service, key: str) -> None:
    t = new_tab()
    response = t.open(f"/reports/{service.site.tokens[key]}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    seen = t.text()
    if key in HOSTILE_KEYS:
        # The student's own bytes may hold `**` and `|---|`: shown as written, once, and taken out
        # before looking for what the renderer must never leave behind.
        assert R.HOSTILE in seen
        seen = seen.replace(R.HOSTILE, "")
    leftovers = [raw for raw in R.RAW_MARKDOWN if raw in seen]
    assert not leftovers, f"raw Markdown or double escaping on {key}: {leftovers}"
    assert t.page.locator("h1").count() == 1 and t.page.locator("h1").inner_text().strip()
    # The stylesheet arrived and applies (nosniff refuses a stylesheet served with the wrong type).
    assert t.page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") == "992px"
    t.shoot(f"report-{key}")
    t.page.set_viewport_size(PHONE)
    overflow = t.page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= PHONE["width"], f"{key} is {overflow}px wide at phone width: the page scrolls sideways"
    assert not t.dialogs and not t.errors, (t.dialogs, t.errors)


def test_the_one_mistake_report_leads_with_the_fix(tab: Tab, service: Service) -> None:
    tab.open(f"/reports/{service.site.tokens['ivanov-1']}")
    h1 = tab.page.locator("h1").inner_text()
    assert ru("total", score="3,5/5") in h1
    headings = [h.strip() for h in tab.page.locator("main h2").all_inner_texts()]
    assert headings[0] == ru("fix_heading"), headings  # the first thing under the score is what to fix
    assert ru("sizes_heading") in headings and ru("provenance_heading") in headings
    assert tab.page.locator(".rule").inner_text() == ru("rule")
    assert tab.page.locator(".legend").inner_text() == ru("legend")
    fixes = tab.page.locator("#fix ol.items > li.item.fail")
    assert fixes.count() == 2
    first = fixes.nth(0).inner_text()
    assert "multistage" in first and "Dockerfile.multistage:14" in first and "FROM build" in first
    # A fix is a sentence of its own under the file link: it starts with a capital letter.
    assert re.match(r"[A-ZА-ЯЁ]", fixes.nth(0).locator("p.msg").inner_text())
    # The passed checks are collapsed, and everything before them fits one desktop screen.
    passed = tab.page.locator("details#passed")
    assert passed.get_attribute("open") is None
    assert not tab.page.locator("ul.passed").first.is_visible()
    box = passed.bounding_box()
    assert box is not None and box["y"] + box["height"] <= tab.page.viewport_size["height"], box
    tab.shoot("report", docs="report")
    passed.locator("summary").click()
    assert tab.page.locator("ul.passed").first.is_visible()
    assert not tab.errors, tab.errors


def test_file_links_open_the_commits_blob_at_the_failing_line(tab: Tab, service: Service) -> None:
    site = service.site
    tab.open(f"/reports/{site.tokens['ivanov-1']}")
    line = line_of(FIXTURES / "broken" / "final_from_build" / "Dockerfile.multistage", r"FROM build\b")
    expected = blob("devops-2026/ivanov-docker", site.shas["ivanov-1"], "Dockerfile.multistage", line)
    hrefs = tab.page.locator("#fix a.loc").evaluate_all("links => links.map(a => a.href)")
    assert hrefs and set(hrefs) == {expected}, hrefs

    # Following one reaches GitLab's blob page without the report's secret URL as a Referer.
    seen: list[dict] = []

    def gitlab(route: Any) -> None:
        seen.append({"url": route.request.url, "referer": route.request.headers.get("referer")})
        route.fulfill(status=200, content_type="text/html", body="<title>blob</title>")

    tab.page.route(f"{GITLAB}/**", gitlab)
    with tab.page.expect_navigation():
        tab.page.locator("#fix a.loc").first.click()
    # The fragment (#L14) stays in the browser: GitLab's page scrolls to it, the request has none.
    assert seen == [{"url": expected.split("#")[0], "referer": None}], seen
    assert tab.page.url == expected


def test_one_cause_in_three_files_links_each_file_at_its_own_line(tab: Tab, service: Service) -> None:
    site = service.site
    tab.open(f"/reports/{site.tokens['sidorov-1']}")
    items = tab.page.locator("#fix ol.items > li.item")
    assert items.count() == 1  # one cause, once
    reference = FIXTURES / "reference" / "counter-backend"
    expected = [blob("devops-2026/sidorov-docker", site.shas["sidorov-1"], name,
                     line_of(reference / name, r"FROM python:"))
                for name in ("Dockerfile.single", "Dockerfile.multistage", "Dockerfile.nonroot")]
    assert items.locator("a.loc").evaluate_all("links => links.map(a => a.href)") == expected


def test_previous_and_next_attempt_links_walk_a_students_attempts(tab: Tab, service: Service) -> None:
    tokens = service.site.tokens
    tab.open(f"/reports/{tokens['ivanov-1']}")
    assert tab.page.locator("a[rel=prev]").count() == 0
    for key, n in (("ivanov-2", 2), ("ivanov-3", 3)):
        with tab.page.expect_navigation():
            tab.page.click("a[rel=next]")
        assert tab.page.url.endswith(f"/reports/{tokens[key]}")
        assert ru("attempt_of", "pages", n=n, total=3) in tab.page.locator("nav.attempts").inner_text()
    assert tab.page.locator("a[rel=next]").count() == 0  # the newest attempt
    assert ru("heading_queued", "pages") in tab.page.locator("h1").inner_text()
    with tab.page.expect_navigation():
        tab.page.click("a[rel=prev]")
    assert tab.page.url.endswith(f"/reports/{tokens['ivanov-2']}")
    assert ru("total", score="5/5") in tab.page.locator("h1").inner_text()


def test_attempts_without_a_grade_say_why_in_a_sentence(tab: Tab, service: Service) -> None:
    site = service.site
    for key, state, refreshes in (("ivanov-3", "queued", True), ("smirnova-1", "superseded", False),
                                  ("smirnova-2", "ungradable", False)):
        response = tab.open(f"/reports/{site.tokens[key]}")
        assert tab.page.locator("h1").inner_text() == ru(f"heading_{state}", "pages"), key
        said = tab.page.locator("p.state").inner_text()
        assert re.match(r"[A-ZА-ЯЁ]", said), (key, said)  # a sentence of its own, not a status fragment
        # A waiting page keeps itself current with our one script, which only its CSP lets run.
        assert (tab.page.locator('script[src="/static/refresh.js"]').count() == 1) is refreshes, key
        csp = response.headers["content-security-policy"]
        assert ("script-src 'self'" in csp) is refreshes and "unsafe-inline" not in csp, (key, csp)
    # A queued attempt says where it stands: one push waits ahead of ivanov's third, none of zaitsev's.
    # The site's gradings took no time, so the estimate is its floor, a minute.
    tab.open(f"/reports/{site.tokens['ivanov-3']}")
    assert tab.page.locator("ul.waiting li").all_inner_texts() == [
        ru("queue_ahead", "pages", count=1), ru("queue_estimate", "pages", minutes=1)]
    tab.open(f"/reports/{site.tokens['zaitsev-1']}")
    assert tab.page.locator("ul.waiting li").first.inner_text() == ru("queue_next", "pages")
    tab.open(f"/reports/{site.tokens['smirnova-2']}")
    assert tab.page.locator("ul.waiting").count() == 0  # only a queued attempt waits
    # The superseded attempt names the commit that replaced it; the grader's own trouble stays ours.
    tab.open(f"/reports/{site.tokens['smirnova-1']}")
    assert site.shas["smirnova-2"][:8] in tab.text()
    tab.open(f"/reports/{site.tokens['smirnova-2']}")
    assert "Docker daemon" not in tab.text()
    assert not tab.errors, tab.errors
    missing = tab.open("/reports/" + "x" * 22)  # (the browser logs this 404 as a console error)
    assert missing.status == 404 and tab.page.locator("h1").inner_text() == ru("not_found", "pages")


# -- instructor pages -------------------------------------------------------------------------------
@pytest.mark.parametrize("path", INSTRUCTOR_PAGES)
def test_instructor_pages_refuse_without_the_token_and_open_after_signing_in(new_tab: Any, path: str) -> None:
    t = new_tab()
    response = t.open(path)
    # 401, or a redirect that ends on the sign-in form: either way nothing of the course is shown.
    assert response.status == 401 or t.page.url.split("?")[0].endswith("/signin"), (response.status, t.page.url)
    # Nothing of the course: no project path in the page (the form's `next` holds only the URL asked for).
    assert "devops-2026" not in t.page.content() and "ivanov-docker" not in t.text()
    assert "no-store" in response.headers.get("cache-control", "")
    if path.endswith((".json", ".csv")):
        t.open("/signin")  # a script's 401 has no form; a person signs in and comes back
    else:
        assert t.page.locator("form.signin").is_visible()
        assert t.page.locator("input[name=next]").get_attribute("value") == path
        t.shoot("signin" if path == "/scoreboard" else f"signin{path.replace('/', '-')}")
    wrong = t.sign_in("not-the-token")
    assert wrong.status == 401 and ru("wrong_token", "pages") in t.text()
    landed = t.sign_in()
    if path.endswith((".json", ".csv")):
        assert landed.url.endswith("/scoreboard")
        answer = t.page.request.get(t.base + path)  # with the context's cookie, as a click would send it
    else:
        assert landed.url == t.base + path
        answer = landed
    assert answer.status == 200, (path, answer.status)
    assert "no-store" in answer.headers.get("cache-control", "")
    if path == "/openapi.json":
        assert "/webhooks/gitlab" in json.loads(answer.text())["paths"]
    else:
        shown = {"/queue": "Cannot connect to the Docker daemon"}.get(path, "devops-2026/ivanov-docker")
        assert shown in answer.text(), path


def test_a_bearer_token_opens_the_instructor_pages_for_a_script(new_tab: Any, service: Service) -> None:
    t = new_tab(extra_http_headers={"Authorization": f"Bearer {INSTRUCTOR_TOKEN}"})
    assert t.open("/queue").status == 200
    board = t.page.request.get(t.base + "/scoreboard.json")  # a download, not a page: fetched
    assert board.status == 200 and {e["student"] for e in board.json()["entries"]} >= {"ivanov-docker"}
    wrong = new_tab(extra_http_headers={"Authorization": "Bearer not-the-token"})
    assert wrong.page.request.get(wrong.base + "/scoreboard.json").status == 401
    assert wrong.open("/queue").status == 401


def _board_scores(t: Tab) -> list[float | None]:
    return [as_number(c) for c in scoreboard_column(t, ".latest")]


def test_the_scoreboard_sorts_when_a_column_header_is_clicked(instructor: Tab) -> None:
    t = instructor
    students = [s.split("\n")[0] for s in scoreboard_column(t, ".student")]
    assert len(students) >= 5 and "ivanov-docker" in students
    header = t.page.locator("table.board thead th", has_text=ru("col_latest", "pages"))
    with t.page.expect_navigation():
        header.locator("a").click()
    assert "sort=latest_score" in t.page.url
    scores = _board_scores(t)
    assert scores == sorted(scores, key=lambda s: -(s or 0)), scores  # highest first on the first click
    assert header.get_attribute("aria-sort") == "descending"
    with t.page.expect_navigation():
        header.locator("a").click()
    ascending = _board_scores(t)
    assert ascending == sorted(scores, key=lambda s: s or 0) and ascending != scores, ascending
    assert header.get_attribute("aria-sort") == "ascending"
    student_header = t.page.locator("table.board thead th", has_text=ru("col_student", "pages"))
    with t.page.expect_navigation():
        student_header.locator("a").click()
    names = [s.split("\n")[0] for s in scoreboard_column(t, ".student")]
    assert names == sorted(names) and set(names) == set(students)
    t.open("/scoreboard")
    # On a laptop every column shows without scrolling the table sideways.
    assert t.page.evaluate("(() => { const s = document.querySelector('.scroll'); "
                           "return s.scrollWidth <= s.clientWidth; })()"), "the scoreboard scrolls at 1280px"
    t.shoot("scoreboard", docs="scoreboard")
    assert not t.errors, t.errors


def test_the_scoreboard_draws_the_distribution_and_the_failing_checks(instructor: Tab) -> None:
    t = instructor
    columns = t.page.locator("#distribution .col")
    labels = [label.strip() for label in t.page.locator("#distribution .label").all_inner_texts()]
    assert labels == ["0", "0,5", "1", "1,5", "2", "2,5", "3", "3,5", "4", "4,5", "5"]  # every half point
    counts = [int(n) for n in t.page.locator("#distribution .n").all_inner_texts()]
    # six students: the refused one at 0, three at 3,5
    assert columns.count() == 11 and sum(counts) == 6 and counts[0] == 1 and counts[labels.index("3,5")] == 3, counts
    # CSS bars: a class sets the height (the CSP allows no style attribute); the tallest is full height.
    heights = t.page.locator("#distribution .stick").evaluate_all(
        "els => els.map(e => e.getBoundingClientRect().height / e.parentElement.getBoundingClientRect().height)")
    assert heights[labels.index("3,5")] == pytest.approx(1, abs=0.02)
    assert heights[labels.index("5")] == pytest.approx(1 / 3, abs=0.02) and heights[1] == 0, heights
    # Of the five latest reports that ran checks (a refusal runs none), one fails the build, two (the
    # hostile ones) the HTTP contract.
    shares = dict(row.split("\t")[::2] for row in t.page.locator("#failing tr").all_inner_texts())
    assert shares[title("built", "ru")].strip() == "20 %", shares
    assert shares[title("http_contract", "ru")].strip() == "40 %", shares
    rows = t.page.locator("#failing tr").all_inner_texts()
    assert rows[0].startswith(title("http_contract", "ru")), rows  # the most failed first


def test_a_students_history_and_the_queue_page(instructor: Tab, service: Service, redis_client: Any) -> None:
    from grader import heartbeat
    from tests.browser.conftest import INSTANCE

    # two workers beat: one whose engine answers, one whose engine does not (grader/engine_gate.py)
    heartbeat.worker_alive(redis_client, INSTANCE, "h1@vm", engine_up=True, every_s=60)
    heartbeat.worker_alive(redis_client, INSTANCE, "h2@vm", engine_up=False, every_s=60)
    t = instructor
    t.open("/students/ivanov-docker")
    rows = t.page.locator("table.history tbody tr")
    assert rows.count() == 3
    links = t.page.locator("table.history a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert set(links) == {f"/reports/{service.site.tokens[k]}" for k in ("ivanov-1", "ivanov-2", "ivanov-3")}
    # what changed a grade after it was given, newest first: who asked, why, old -> new
    changes = t.page.locator("table.changes tbody tr")
    assert changes.count() == 2
    newest = changes.nth(0).inner_text()
    assert ru("change_regraded", "pages", old="3", new="4,5") in newest, newest
    assert ru("change_assignment", "pages") in newest and "prof-smirnova" in newest and "rubric 1.1" in newest
    assert ru("change_requested", "pages") in changes.nth(1).inner_text()
    t.shoot("student")
    t.open("/students/petrov-docker")  # control: a student whose grades never changed says so
    assert t.page.locator("table.changes").count() == 0
    assert ru("changes_none", "pages") in t.page.locator("main").inner_text()
    t.open("/queue")
    assert t.page.locator("#count-queued").inner_text() == "2"
    assert t.page.locator("#count-ungradable").inner_text() == "1"
    assert "Cannot connect to the Docker daemon" in t.page.locator("table.history").inner_text()
    assert t.page.locator("#workers").inner_text() == ru("workers_answering", "pages", count=2)
    workers = t.page.locator("ul.workers li").all_inner_texts()
    assert workers == [f"h1@vm — {ru('worker_engine_up', 'pages')}", f"h2@vm — {ru('worker_engine_down', 'pages')}"]
    t.shoot("queue")
    redis_client.delete(*redis_client.keys(f"{heartbeat.WORKERS}:{INSTANCE}:*"))
    assert not t.errors, t.errors


# -- student-controlled strings and headers ------------------------------------------------------
def _assert_inert(t: Tab) -> None:
    # Our pages carry no script at all, so any <script> or <svg> element was injected.
    assert t.page.locator("script").count() == 0
    assert t.page.locator("svg").count() == 0
    assert t.page.evaluate("[...document.querySelectorAll('*')].filter(e => "
                           "[...e.attributes].some(a => a.name.startsWith('on'))).length") == 0
    assert not t.dialogs, t.dialogs


def test_student_controlled_strings_are_shown_as_text_and_never_run(instructor: Tab, service: Service) -> None:
    t = instructor
    tokens = service.site.tokens
    t.open(f"/reports/{tokens['petrov-1']}")
    _assert_inert(t)
    seen = t.text()
    assert "Dockerfile.<script>x</script>" in seen  # the file name, as the student wrote it
    assert R.HOSTILE in seen  # the probe's body and the Dockerfile line
    t.open(f"/reports/{tokens['kuznetsov-1']}")
    _assert_inert(t)
    assert t.page.locator(".branch").first.inner_text() == HOSTILE_BRANCH
    assert HOSTILE_PROJECT in t.page.locator(".project").first.inner_text()
    t.shoot("report-hostile-branch")
    t.open(f"/reports/{tokens['volkova-1']}")  # a refusal quoting a path of the student's archive
    _assert_inert(t)
    assert t.page.locator("h1").inner_text() == ru("refused_heading")
    assert HOSTILE_ENTRY in t.page.locator("p.state").inner_text()
    t.open("/students/kuznetsov-docker")
    _assert_inert(t)
    assert t.page.locator("td.branch").inner_text() == HOSTILE_BRANCH
    assert R.HOSTILE in t.page.locator("table.changes").inner_text()  # an instructor's reason, shown as text
    t.open("/scoreboard")
    _assert_inert(t)
    assert not t.errors, t.errors


def test_security_headers_on_every_kind_of_page(instructor: Tab, service: Service) -> None:
    t = instructor
    for path, instructors_only in ((f"/reports/{service.site.tokens['ivanov-1']}", False), ("/scoreboard", True),
                                   ("/queue", True), ("/signin", False),
                                   (f"/reports/{service.site.tokens['ivanov-3']}", False)):  # runs refresh.js
        headers = t.open(path).all_headers()
        csp = headers.get("content-security-policy", "")
        directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";") if d.strip())
        scripts = directives.get("script-src", directives.get("default-src", ""))
        assert scripts and "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (path, csp)
        assert "'unsafe-inline'" not in directives.get("style-src", ""), (path, csp)
        assert headers.get("x-content-type-options") == "nosniff", path
        assert headers.get("referrer-policy") in ("no-referrer", "same-origin", "strict-origin"), path
        assert "server" not in headers, (path, headers.get("server"))
        if instructors_only:
            assert "no-store" in headers.get("cache-control", ""), path
    # The browser enforces the policy: an inline script put into the page does not run, neither where
    # no script may run nor where our own does.
    for path in ("/signin", f"/reports/{service.site.tokens['ivanov-3']}"):
        t.open(path)
        ran = t.page.evaluate("""() => { const s = document.createElement('script');
            s.textContent = 'window.injected = 1'; document.body.appendChild(s); return window.injected === 1; }""")
        assert ran is False, path


# -- a waiting page follows the queue ------------------------------------------------------------
@pytest.fixture
def queue_of_two(tmp_path: Path) -> Iterator[tuple[str, Store, list[Any]]]:
    """A service of its own over two queued pushes (the session's site must not change under the
    other tests): its URL, its store and the two submissions, oldest first."""
    store = Store(f"sqlite:///{tmp_path / 'grader.db'}")
    subs = [store.record_push(project_id=20 + n, project_path=f"devops-2026/queue-{n}", student=f"queue-{n}",
                              sha=f"{n + 1}" * 40, ref="refs/heads/main", event_uuid=None,
                              received_at=T0 + timedelta(minutes=n), late=False)[0] for n in range(2)]
    with serve(store.url, tmp_path) as url:
        yield url, store, subs


def test_a_waiting_page_follows_the_queue_without_reloading(new_tab: Any, queue_of_two: Any) -> None:
    from playwright.sync_api import expect  # here: a laptop without playwright still collects this module

    url, store, (first, second) = queue_of_two
    t = new_tab(base=url)
    t.open(f"/reports/{second.token}")
    waiting = t.page.locator("#waiting li").first
    assert waiting.inner_text() == ru("queue_ahead", "pages", count=1)
    t.page.evaluate("window.sameDocument = true")  # gone if the page is loaded again
    assert store.start(first.id)  # a worker takes the push ahead of it
    # (Playwright's own waiting, not wait_for_function: the page's CSP forbids evaluating strings.)
    expect(waiting).to_have_text(ru("queue_next", "pages"), timeout=30_000)
    assert t.page.evaluate("window.sameDocument") is True  # rewritten in place, not reloaded
    assert store.start(second.id)  # its own grading starts: the page shows that, loaded again
    expect(t.page.locator("h1")).to_have_text(ru("heading_running", "pages"), timeout=30_000)
    assert t.page.evaluate("window.sameDocument") is None
    assert not t.errors and not t.dialogs, (t.errors, t.dialogs)


def test_without_javascript_a_waiting_page_reloads_itself(new_tab: Any, service: Service) -> None:
    t = new_tab(java_script_enabled=False)
    t.open(f"/reports/{service.site.tokens['ivanov-3']}")
    refresh = t.page.locator("meta[http-equiv=refresh]")
    assert refresh.count() == 1 and refresh.get_attribute("content") == str(REFRESH_S)
    t.open(f"/reports/{service.site.tokens['ivanov-2']}")  # graded: nothing to wait for
    assert t.page.locator("meta[http-equiv=refresh]").count() == 0
