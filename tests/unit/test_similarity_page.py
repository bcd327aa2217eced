"""The instructor's similarity pages (grader/similarity/page.py) over a SQLite store, served for
real as tests/unit/test_web.py does (FastAPI's TestClient needs httpx, which is not a dependency):
the scoreboard's authentication, the flagged pairs, the side-by-side view with its matched regions,
a student's hostile text escaped, and the course's language (Russian): every word from
checks/messages/pages.toml, scores with a decimal comma, none of the pages' old English left."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from markupsafe import escape

from grader.config import Settings
from grader.history import when
from grader.html import TEMPLATES
from grader.messages import text
from grader.store import Store
from grader.web import create_app
from tests.support.asgi import serve
from tests.unit.test_similarity_store import COHORT, GROUP, grade_into

TOKEN = "instructor-token-for-the-similarity-tests"
HOSTILE = "<script>alert(1)</script>"
TEMPLATE_FILES = ("similarity.html", "similarity_pair.html")
# Every English word the two templates and page.py used to show before they took the catalogue's
# (but "A" and "B"): none of them may be left on the Russian pages outside the students' files.
OLD_ENGLISH = set("""
    similarity between students dockerfiles pair pairs of listed score at least flagged each project's
    latest graded submission high is reason to look not verdict open and read the matched lines side by
    only every student pushed first overall variants report all time order unknown these two submissions
    share nothing that counts as evidence regions are highlighted numbered alike on both skeleton part
    region in common no file for this variant configured such give ids must be with stored threshold
""".split())


def ru(key: str, **params: object) -> str:
    """A sentence of the pages in Russian as a page holds it (autoescaped)."""
    return str(escape(text("pages", key, "ru", **params)))


def visible(html: str) -> str:
    """The words a reader sees: no markup, no student's Dockerfile (its lines are the student's own),
    no report link's path (a random token, which may spell "is" or "at")."""
    html = re.sub(r'<table class="file">.*?</table>', " ", html, flags=re.S)
    html = re.sub(r"<code>.*?</code>", " ", html, flags=re.S)
    html = re.sub(r"/reports/[\w-]+", " ", html)
    return re.sub(r"<[^>]+>", " ", html)


def english_left(html: str) -> set[str]:
    return {word for word in re.findall(r"[A-Za-z']+", visible(html)) if word.lower() in OLD_ENGLISH}


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
    with serve(create_app(settings, store, lambda _ids: None)) as url:
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
    url, store, ids = site
    page = get(url + "/similarity")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]

    def row(a: str, b: str) -> str:
        link = f'href="/similarity/{ids[a]}/{ids[b]}"'
        found = [r for r in page.text.split("<tr") if link in r]
        assert len(found) <= 1  # one row per two students
        return found[0] if found else ""

    copy, one_variant = row("kuznetsova", "zaitsev"), row("orlova", "sokolov")
    assert all(re.search(rf">{v} (0,\d\d?|1)<", copy) for v in ("single", "multistage", "nonroot"))  # a decimal comma
    assert re.search(r">nonroot (0,\d\d?|1)<", one_variant) and "single" not in one_variant  # that variant only
    assert row("mallory", "sokolov")
    assert row("abramova", "belov") == ""  # the lecture's followers
    assert "script-src" not in page.headers["content-security-policy"] and "<script" not in page.text
    assert ru("similarity_compare") in copy and ru("similarity_report_link") in copy
    assert when(store.get(ids["kuznetsova"]).pushed_at) in copy  # dates as the other pages write them
    assert not re.search(r"\d\.\d", visible(page.text))  # no decimal point left


def test_the_listing_speaks_the_course_language(site):
    url, _, _ = site
    page = get(url + "/similarity").text
    count = page.count('href="/similarity/')
    assert f"<title>{ru('similarity_title')}</title>" in page and f"<h1>{ru('similarity_heading')}</h1>" in page
    assert ru("similarity_count_flagged", count=count, threshold="0,5") in page  # the rubric's threshold
    assert ru("similarity_not_a_verdict") in page and ru("similarity_show_all") in page
    for key in ("similarity_col_a", "similarity_col_b", "similarity_col_pushed", "similarity_col_first",
                "similarity_col_overall", "similarity_col_variants"):
        assert f"<th>{ru(key)}</th>" in page
    listed = get(url + "/similarity?all=1").text
    assert ru("similarity_count_listed", count=listed.count('href="/similarity/'), threshold="0,25") in listed
    assert ru("similarity_only_flagged") in listed
    assert english_left(page) == set() and english_left(listed) == set()
    assert english_left(page.replace(ru("similarity_heading"), "Similarity between students")) == {
        "Similarity", "between", "students"}  # control: the check sees English where it is


def test_the_instructor_navigation_links_the_similarity_page(site):
    url, _, ids = site
    for path in ("/similarity", f"/similarity/{ids['kuznetsova']}/{ids['zaitsev']}"):
        nav = get(url + path).text.split('<nav class="top">')[1].split("</nav>")[0]
        assert f'<a href="/similarity">{ru("nav_similarity")}</a>' in nav
        assert 'href="/scoreboard"' in nav and 'href="/queue"' in nav  # next to the others
    signin = requests.get(url + "/signin", timeout=10).text  # a page for anyone: no instructor navigation
    assert ru("nav_similarity") not in signin and 'href="/similarity"' not in signin


@pytest.mark.parametrize("name", TEMPLATE_FILES)
def test_the_similarity_templates_hold_no_words_of_their_own(name):
    """Outside Jinja's tags, the templates are markup and punctuation: every word is a `w(...)`."""
    source = (TEMPLATES / name).read_text(encoding="utf-8")
    assert 'w("' in source  # control: this is a template of words
    tags = re.findall(r"{[{%#].*?[}%#]}", source, flags=re.S)
    bare = re.sub(r"{[{%#].*?[}%#]}", " ", source, flags=re.S)
    bare = re.sub(r"<[^>]+>", " ", bare)
    bare = re.sub(r"/[\w/.-]*", " ", bare)  # a link's path shown as its text (/reports/<token>)
    assert re.findall(r"[^\W\d_]{2,}", bare) == []
    literals = {s for tag in tags for _, s in re.findall(r"""(["'])(.*?)\1""", tag)}
    assert "similarity_heading" in literals or "similarity_pair_heading" in literals  # control: the keys are seen
    assert {s for s in literals if " " in s.strip() and re.search(r"[^\W\d_]", s)} == set()  # no sentence


def test_page_py_builds_no_sentence_of_its_own():
    source = (Path(__file__).resolve().parents[2] / "grader" / "similarity" / "page.py").read_text(encoding="utf-8")
    assert "_problem(" in source and 'self.pages.w("similarity_' in source  # control
    assert re.findall(r'_problem\(\d+, ["f]', source) == []


def test_the_side_by_side_view_highlights_the_matched_regions_and_links_both_reports(site):
    url, store, ids = site
    page = get(url + f"/similarity/{ids['kuznetsova']}/{ids['zaitsev']}")
    assert page.status_code == 200
    a, b = marked(page.text, "nonroot")
    assert a == span((4, 15), (18, 19), (22, 24), (28, 33))  # the regions of test_similarity's copy
    assert b == span((4, 12), (21, 21), (18, 20), (25, 30))
    for name in ("kuznetsova", "zaitsev"):
        assert f'href="/reports/{store.get(ids[name]).token}"' in page.text
        assert when(store.get(ids[name]).pushed_at) in page.text
    assert ru("similarity_a_first") in page.text and ru("similarity_b_first") not in page.text
    swapped = get(url + f"/similarity/{ids['zaitsev']}/{ids['kuznetsova']}")  # asked the other way round
    assert marked(swapped.text, "nonroot") == (b, a) and ru("similarity_b_first") in swapped.text


def test_the_side_by_side_view_speaks_the_course_language(site):
    url, _, ids = site
    page = get(url + f"/similarity/{ids['kuznetsova']}/{ids['zaitsev']}").text
    assert f"<h1>{ru('similarity_pair_heading')}</h1>" in page and ru("similarity_back") in page
    assert ru("similarity_regions") in page and ru("similarity_over_threshold", threshold="0,5") in page
    score = re.search(r'<h2 id="nonroot">nonroot: ([^ <]+)', page)
    assert score and re.fullmatch(r"0,\d\d?|1", score.group(1))  # a decimal comma
    overall = re.search(r"— (0,\d\d?|1)\.", page)
    assert overall and ru("similarity_overall", score=overall.group(1)) in page
    assert f"<td>{ru('similarity_a')}</td>" in page and f"<td>{ru('similarity_b')}</td>" in page
    assert english_left(page) == set()
    assert "FROM" in page  # control: the students' files are shown, only left out of the check above


def test_a_hostile_line_in_a_dockerfile_is_shown_as_text(site):
    url, _, ids = site
    page = get(url + f"/similarity/{ids['mallory']}/{ids['sokolov']}")
    assert page.status_code == 200
    assert HOSTILE not in page.text and "<script" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert marked(page.text, "nonroot")[0]  # and the copy is still highlighted


def test_an_unknown_pair_is_404_and_the_stylesheet_is_served(site):
    url, _, ids = site
    missing = get(url + f"/similarity/{ids['kuznetsova']}/999999")
    assert missing.status_code == 404 and ru("similarity_no_pair") in missing.text
    not_ids = get(url + "/similarity/x/y")
    assert not_ids.status_code == 404 and ru("similarity_bad_ids") in not_ids.text
    assert english_left(missing.text) == set() and english_left(not_ids.text) == set()
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
