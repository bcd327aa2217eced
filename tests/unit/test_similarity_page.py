"""The instructor's similarity pages (grader/similarity/page.py) over a SQLite store, served for
real as tests/unit/test_web.py does (FastAPI's TestClient needs httpx, which is not a dependency):
the scoreboard's authentication, the flagged pairs, the side-by-side view with its matched regions,
and a student's hostile text escaped."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator

import pytest
import requests

from grader.config import Settings
from grader.store import Store
from grader.web import create_app
from tests.support.asgi import serve
from tests.unit.test_similarity_store import COHORT, GROUP, grade_into

TOKEN = "instructor-token-for-the-similarity-tests"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[tuple[str, Store, dict[str, int]]]:
    """(base URL, store, submission ids by student) of the service's app: a copy pair, two honest
    students, orlova's copy of one variant, and mallory, whose copy of sokolov's files carries a
    hostile line in the non-root one."""
    tmp = tmp_path_factory.mktemp("site")
    mallory = tmp / "mallory"
    shutil.copytree(COHORT / "sokolov", mallory)
    nonroot = mallory / "counter-backend" / "Dockerfile.nonroot"
    nonroot.write_text(nonroot.read_text() + f'LABEL note="{HOSTILE}"\n# {HOSTILE}\n')
    store = Store(f"sqlite:///{tmp / 'grader.db'}")
    dirs = [COHORT / n for n in ("abramova", "belov", "kuznetsova", "zaitsev", "orlova", "sokolov")] + [mallory]
    ids = {d.name: grade_into(store, d, i) for i, d in enumerate(dirs, start=1)}
    settings = Settings(webhook_secret="s3cret", instructor_token=TOKEN, groups=[GROUP])
    with serve(create_app(settings, store, lambda _id: None)) as url:
        yield url, store, ids
    store.close()


def get(url: str, token: str | None = TOKEN, **kwargs) -> requests.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return requests.get(url, headers=headers, timeout=30, **kwargs)


def marked(body: str, variant: str) -> tuple[set[int], set[int]]:
    """The lines highlighted on each side of one variant's side-by-side view."""
    section = body.split(f'<h2 id="{variant}">')[1].split("<h2 ")[0]
    left, right = section.split('<table class="file">')[1:3]
    def lines(side: str) -> set[int]:
        return {int(n) for n in re.findall(r'<tr class="match"><td class="ln">(\d+)</td><td class="rg">#\d+</td>'
                                           r'<td class="code"><mark>', side)}
    return lines(left), lines(right)


def span(*ranges: tuple[int, int]) -> set[int]:
    return {n for first, last in ranges for n in range(first, last + 1)}


def test_without_the_instructor_token_the_pages_answer_401(site):
    url, _, ids = site
    for path in ("/similarity", f"/similarity/{ids['kuznetsova']}/{ids['zaitsev']}"):
        assert get(url + path, token=None).status_code == 401
        wrong = get(url + path, token="not-the-token")
        assert wrong.status_code == 401 and "kuznetsova" not in wrong.text
    assert get(url + "/similarity").status_code == 200  # control: with it


def test_a_signed_in_session_opens_the_page_as_on_the_scoreboard(site):
    url, _, _ = site
    session = requests.Session()
    signed = session.post(url + "/signin", data={"token": TOKEN, "next": "/similarity"}, timeout=10,
                          allow_redirects=False)
    assert signed.status_code == 303
    assert session.get(url + "/similarity", timeout=30).status_code == 200
    assert requests.get(url + "/similarity", timeout=30).status_code == 401  # control: no cookie


def test_the_flagged_pairs_are_listed_the_honest_one_is_not(site):
    url, _, ids = site
    page = get(url + "/similarity")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    def row(a: str, b: str) -> str:
        link = f'href="/similarity/{ids[a]}/{ids[b]}"'
        found = [r for r in page.text.split("<tr") if link in r]
        assert len(found) <= 1  # one row per two students
        return found[0] if found else ""

    copy, one_variant = row("kuznetsova", "zaitsev"), row("orlova", "sokolov")
    assert all(re.search(rf">{v} 0\.\d\d<", copy) for v in ("single", "multistage", "nonroot"))
    assert re.search(r">nonroot 0\.\d\d<", one_variant) and "single" not in one_variant  # that variant only
    assert row("mallory", "sokolov")
    assert row("abramova", "belov") == ""  # the lecture's followers
    assert "script-src" not in page.headers["content-security-policy"] and "<script" not in page.text


def test_the_side_by_side_view_highlights_the_matched_regions_and_links_both_reports(site):
    url, store, ids = site
    page = get(url + f"/similarity/{ids['kuznetsova']}/{ids['zaitsev']}")
    assert page.status_code == 200
    a, b = marked(page.text, "nonroot")
    assert a == span((4, 15), (18, 19), (22, 24), (28, 33))  # the regions of test_similarity's copy
    assert b == span((4, 12), (21, 21), (18, 20), (25, 30))
    for name in ("kuznetsova", "zaitsev"):
        assert f'href="/reports/{store.get(ids[name]).token}"' in page.text
    assert "A pushed first" in page.text
    swapped = get(url + f"/similarity/{ids['zaitsev']}/{ids['kuznetsova']}")  # asked the other way round
    assert marked(swapped.text, "nonroot") == (b, a) and "B pushed first" in swapped.text


def test_a_hostile_line_in_a_dockerfile_is_shown_as_text(site):
    url, _, ids = site
    page = get(url + f"/similarity/{ids['mallory']}/{ids['sokolov']}")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "<script" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert marked(page.text, "nonroot")[0]  # and the copy is still highlighted


def test_an_unknown_pair_is_404_and_the_stylesheet_is_served(site):
    url, _, ids = site
    assert get(url + f"/similarity/{ids['kuznetsova']}/999999").status_code == 404
    assert get(url + "/similarity/x/y").status_code == 404
    assert get(url + "/similarity/%C2%B2/1").status_code == 404  # a digit to str.isdigit, not to int()
    css = requests.get(url + "/similarity.css", timeout=10)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css") and "mark" in css.text



def test_the_listing_parses_no_dockerfile_the_side_by_side_view_only_its_two_students(site, monkeypatch):
    from tests.unit.test_similarity_store import Parses

    url, store, ids = site
    parses = Parses(monkeypatch)
    assert get(url + "/similarity").status_code == 200
    assert parses.texts == []  # scores from the stored fingerprints, no lines shown
    assert get(url + f"/similarity/{ids['kuznetsova']}/{ids['zaitsev']}").status_code == 200
    theirs = {d.text for n in ("kuznetsova", "zaitsev") for d in store.dockerfiles(ids[n])}
    assert parses.texts and set(parses.texts) <= theirs  # control: showing lines parses those two only
