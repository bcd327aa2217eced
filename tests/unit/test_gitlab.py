"""grader.gitlab against the GitLab-compatible test server, over real HTTP, with real git repositories.

python-gitlab is the client, unmodified; tests/support/fake_gitlab.py answers as GitLab documents.
"""

from __future__ import annotations

import io
import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from grader.errors import ConfigError, GraderError, SubmissionError
from grader.gitlab import GitLab, GitLabUnavailable, ProjectRef
from tests.conftest import REFERENCE_REPO
from tests.support.fake_gitlab import ZERO_SHA, FakeGitLab, commit_all, git

PROJECT = "course/ivanov-docker"


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    with FakeGitLab() as server:
        yield server


@pytest.fixture
def client(fake: FakeGitLab) -> GitLab:
    return GitLab(fake.url, fake.token, timeout_s=5)


@pytest.fixture
def pushed(fake: FakeGitLab, tmp_path: Path) -> tuple[int, str, Path]:
    """The reference solution pushed to the student's project: (project id, sha, repository)."""
    project, sha = fake.create_repo_project(PROJECT, tmp_path, source=REFERENCE_REPO)
    assert project.repo_dir is not None
    return project.id, sha, project.repo_dir


def members(archive: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {m.name: m for m in tar.getmembers()}


def read_member(archive: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


# -- archives ---------------------------------------------------------------------------------

def test_archive_holds_exactly_the_committed_files_under_gitlabs_top_directory(client, pushed):
    pid, sha, repo = pushed
    archive = client.archive(pid, sha)
    top = f"ivanov-docker-{sha}-{sha}/"
    files = {name.removeprefix(top) for name, m in members(archive).items() if m.isfile()}
    committed = set(git(repo, "ls-files").decode().split())
    assert all(name == top.rstrip("/") or name.startswith(top) for name in members(archive))
    assert files == committed
    assert "counter-backend/Dockerfile.nonroot" in files
    assert read_member(archive, top + "counter-backend/Dockerfile.nonroot") == \
        (REFERENCE_REPO / "counter-backend" / "Dockerfile.nonroot").read_bytes()


def test_archive_is_the_pushed_commit_not_the_branch_tip(client, pushed):
    pid, first, repo = pushed
    commit_all(repo, "Break the Dockerfile", files={"counter-backend/Dockerfile.single": "FROM scratch\n"})
    archive = client.archive(pid, first)
    name = f"ivanov-docker-{first}-{first}/counter-backend/Dockerfile.single"
    assert read_member(archive, name) == (REFERENCE_REPO / "counter-backend" / "Dockerfile.single").read_bytes()


def test_archive_over_the_cap_is_refused_as_the_students_to_fix(fake, client, tmp_path):
    project, sha = fake.create_repo_project(PROJECT, tmp_path, files={"data/blob.bin": os.urandom(400_000)})
    with pytest.raises(SubmissionError, match="too big") as caught:
        client.archive(project.id, sha, max_bytes=100_000)
    assert "KiB" in str(caught.value)
    assert client.archive(project.id, sha, max_bytes=1_000_000)  # the same archive under a higher cap


def test_archive_of_a_commit_gone_from_the_repository_is_the_students_and_names_the_project(client, pushed):
    pid, _, _ = pushed
    gone = "0123456789abcdef0123456789abcdef01234567"
    with pytest.raises(SubmissionError) as caught:
        client.archive(pid, gone)
    assert gone in str(caught.value) and PROJECT in str(caught.value)


def test_archive_of_a_project_the_token_cannot_see_is_a_grader_error(client, pushed):
    _, sha, _ = pushed
    with pytest.raises(GraderError, match="424242") as caught:
        client.archive(424242, sha)
    assert not isinstance(caught.value, GitLabUnavailable)


def test_archive_slower_than_its_total_budget_is_unavailable(fake, pushed):
    pid, sha, _ = pushed
    fake.slow_next(1, 0.6, path_contains="/repository/archive")
    with pytest.raises(GitLabUnavailable, match="too slow"):
        GitLab(fake.url, fake.token, timeout_s=5).archive(pid, sha, total_timeout_s=0.2)


# -- commit statuses ----------------------------------------------------------------------------

def test_statuses_arrive_in_order_with_every_field(fake, client, pushed):
    pid, sha, _ = pushed
    url = "https://grader.example.edu/submissions/7"
    assert client.post_status(pid, sha, "pending", name="autograder", description="queued", target_url=url,
                              coverage=None, ref="main")
    assert client.post_status(pid, sha, "running", name="autograder", description="grading…", target_url=url,
                              ref="main")
    assert client.post_status(pid, sha, "success", name="autograder", description="5/5", target_url=url,
                              coverage=100.0, ref="main")
    got = fake.statuses
    assert [s.state for s in got] == ["pending", "running", "success"]
    assert {(s.project_id, s.sha, s.name, s.ref, s.target_url) for s in got} == {(pid, sha, "autograder", "main", url)}
    assert (got[-1].description, got[-1].coverage) == ("5/5", 100.0)
    assert "coverage" not in got[0].params  # None is not sent
    assert fake.commit_statuses(pid, sha) == {"autograder": "success"}


@pytest.mark.parametrize("state", ["pending", "running"])
def test_posting_the_status_the_commit_already_shows_is_delivered_not_an_error(fake, client, pushed, state):
    pid, sha, _ = pushed
    if state == "running":
        client.post_status(pid, sha, "pending", name="autograder")
    assert client.post_status(pid, sha, state, name="autograder") is True
    assert client.post_status(pid, sha, state, name="autograder") is False  # a redelivery
    refused = fake.rejected_statuses
    assert len(refused) == 1 and refused[0].http_status == 400
    assert refused[0].message.startswith("Cannot transition status via")
    assert [s.state for s in fake.statuses].count(state) == 1
    assert fake.commit_statuses(pid, sha) == {"autograder": state}


def test_a_final_status_posted_again_is_accepted_again(fake, client, pushed):
    pid, sha, _ = pushed
    for _ in range(2):
        assert client.post_status(pid, sha, "failed", name="autograder", description="3/5", coverage=60.0)
    assert [s.state for s in fake.statuses] == ["failed", "failed"]
    assert fake.rejected_statuses == []


def test_shows_status_reads_the_newest_status_of_that_name_and_nothing_else(fake, client, pushed):
    pid, sha, _ = pushed
    assert not client.shows_status(pid, sha, "success", name="autograder")  # nothing posted yet
    client.post_status(pid, sha, "success", name="autograder", description="5/5")
    client.post_status(pid, sha, "failed", name="autograder", description="3/5")  # the first one is retried
    client.post_status(pid, sha, "success", name="lint", description="5/5")
    assert client.shows_status(pid, sha, "failed", name="autograder", description="3/5")
    assert not client.shows_status(pid, sha, "success", name="autograder", description="5/5")  # older, retried
    assert not client.shows_status(pid, sha, "failed", name="autograder", description="4/5")
    assert not client.shows_status(pid, sha, "failed", name="other")
    assert client.shows_status(pid, sha, "failed", name="autograder", description="3/5", coverage=60.0,
                               target_url="http://x")  # the rest of a status payload is not compared


def test_shows_status_compares_the_description_as_gitlab_stored_it(fake, client, pushed):
    pid, sha, _ = pushed
    client.post_status(pid, sha, "failed", name="autograder", description="x" * 400)  # shortened to 255
    assert client.shows_status(pid, sha, "failed", name="autograder", description="x" * 400)


def test_shows_status_while_gitlab_is_down_is_unavailable(fake, client, pushed):
    pid, sha, _ = pushed
    fake.fail_next(1, status=502, path_contains="/statuses")
    with pytest.raises(GitLabUnavailable):
        client.shows_status(pid, sha, "success", name="autograder")


def test_a_long_description_is_shortened_to_what_gitlab_accepts(fake, client, pushed):
    pid, sha, _ = pushed
    client.post_status(pid, sha, "failed", name="autograder", description="x" * 400)
    [status] = fake.statuses
    assert len(status.description) == 255 and status.description.endswith("…")


def test_an_over_long_target_url_is_left_out_rather_than_losing_the_status(fake, client, pushed):
    pid, sha, _ = pushed
    assert client.post_status(pid, sha, "success", name="autograder", target_url="https://x.example/" + "a" * 300)
    [status] = fake.statuses
    assert status.target_url is None and status.state == "success"


def test_status_on_a_commit_gitlab_does_not_have_is_refused_without_asking_for_a_retry(client, pushed):
    pid, _, _ = pushed
    with pytest.raises(GraderError) as caught:
        client.post_status(pid, "f" * 40, "pending", name="autograder")
    assert not isinstance(caught.value, GitLabUnavailable)
    assert PROJECT in str(caught.value)


def test_an_unknown_state_is_refused_before_anything_is_sent(fake, client, pushed):
    pid, sha, _ = pushed
    before = len(fake.requests)
    with pytest.raises(ValueError, match="pending"):
        client.post_status(pid, sha, "done", name="autograder")
    assert len(fake.requests) == before


# -- comments ---------------------------------------------------------------------------------

def test_comment_is_recorded_on_the_commit(fake, client, pushed):
    pid, sha, _ = pushed
    note = "## 5/5\n\n| check | result |\n|---|---|\n| builds | ✅ |\n"
    client.post_comment(pid, sha, note)
    [comment] = fake.comments
    assert (comment.project_id, comment.sha, comment.note) == (pid, sha, note)


def test_an_over_long_comment_is_truncated_to_what_gitlab_accepts(fake, client, pushed):
    pid, sha, _ = pushed
    client.post_comment(pid, sha, "y" * 1_200_000)
    [comment] = fake.comments
    assert len(comment.note) == 1_000_000 and comment.note.endswith("longer than GitLab accepts in a comment)")


# -- projects and groups ----------------------------------------------------------------------

def test_group_listing_covers_subgroups_and_every_page(fake, client):
    expected = [fake.add_project(f"course/2024/group-{i % 4}/student{i}").id for i in range(70)]
    expected += [fake.add_project(f"course/student{i}").id for i in range(70, 130)]
    fake.add_project("course/old-student", archived=True)
    fake.add_project("other-course/student0")
    got = client.group_projects("course")
    assert [p.id for p in got] == sorted(expected)
    assert all(isinstance(p, ProjectRef) and p.path_with_namespace.startswith("course/") for p in got)
    pages = [r for r in fake.requests if r.path == "/api/v4/groups/course/projects"]
    assert len(pages) == 2  # 130 projects at GitLab's maximum of 100 a page


def test_group_listing_by_subgroup_path(fake, client):
    fake.add_project("course/2024/a/s1")
    fake.add_project("course/2025/b/s2")
    assert [p.path_with_namespace for p in client.group_projects("course/2024")] == ["course/2024/a/s1"]


def test_an_unknown_group_is_a_grader_error_naming_it(client):
    with pytest.raises(GraderError, match="no-such-course"):
        client.group_projects("no-such-course")


def test_project_found_by_id_path_and_web_url(fake, client, pushed):
    pid, _, _ = pushed
    want = ProjectRef(pid, PROJECT, "main", f"{fake.url}/{PROJECT}")
    assert client.project(pid) == want
    assert client.project(PROJECT) == want
    assert client.project(f"{fake.url}/{PROJECT}") == want


# -- failures ---------------------------------------------------------------------------------

def test_a_wrong_token_is_a_configuration_error_that_says_so(fake, pushed):
    pid, sha, _ = pushed
    wrong = GitLab(fake.url, "glpat-not-the-right-one")
    with pytest.raises(ConfigError, match="token") as caught:
        wrong.post_status(pid, sha, "pending", name="autograder")
    assert "api" in str(caught.value) and "401" in str(caught.value)
    with pytest.raises(ConfigError, match="token"):
        wrong.archive(pid, sha)
    assert fake.statuses == []


def test_a_token_without_api_scope_is_told_apart(fake, pushed):
    pid, sha, _ = pushed
    fake.add_token("glpat-read-only", scopes=("read_api",))
    read_only = GitLab(fake.url, "glpat-read-only")
    assert read_only.archive(pid, sha)  # reading works with read_api
    with pytest.raises(ConfigError, match="lacks the `api` scope"):
        read_only.post_comment(pid, sha, "report")
    assert fake.comments == []


@pytest.mark.parametrize("status", [500, 502, 503, 429, 409])
def test_gitlab_failing_is_unavailable_and_the_retry_is_delivered_once(fake, client, pushed, status):
    pid, sha, _ = pushed
    fake.fail_next(1, status, path_contains="/statuses/")
    with pytest.raises(GitLabUnavailable, match=str(status)):
        client.post_status(pid, sha, "success", name="autograder", description="5/5")
    assert fake.statuses == []
    assert client.post_status(pid, sha, "success", name="autograder", description="5/5")
    assert [s.state for s in fake.statuses] == ["success"]


def test_has_comment_finds_a_keyed_comment_on_any_page_and_no_other(tmp_path):
    with FakeGitLab(max_per_page=2) as fake:  # three comments: the keyed one is on page 2
        project, sha = fake.create_repo_project(PROJECT, tmp_path, source=REFERENCE_REPO)
        client = GitLab(fake.url, fake.token, timeout_s=5)
        client.post_comment(project.id, sha, "a student's question")
        client.post_comment(project.id, sha, "another")
        client.post_comment(project.id, sha, "the report", key="post-7")
        assert client.has_comment(project.id, sha, "post-7") is True
        assert client.has_comment(project.id, sha, "post-70") is False  # the whole marker, not a prefix
        assert client.has_comment(project.id, sha, "post-8") is False


def test_an_over_long_keyed_comment_keeps_its_key(fake, client, pushed):
    from grader.gitlab import MAX_NOTE_CHARS

    project_id, sha, _ = pushed
    client.post_comment(project_id, sha, "x" * (MAX_NOTE_CHARS + 10), key="post-1")
    assert len(fake.comments[0].note) <= MAX_NOTE_CHARS
    assert client.has_comment(project_id, sha, "post-1")


def test_has_comment_while_gitlab_is_down_is_unavailable(fake, client, pushed):
    project_id, sha, _ = pushed
    fake.fail_next(3, status=502, path_contains="/comments")
    with pytest.raises(GitLabUnavailable):
        client.has_comment(project_id, sha, "post-1")


def test_a_comment_refused_by_a_5xx_is_delivered_once_on_retry(fake, client, pushed):
    pid, sha, _ = pushed
    fake.fail_next(1, 500, path_contains="/comments")
    with pytest.raises(GitLabUnavailable):
        client.post_comment(pid, sha, "report")
    client.post_comment(pid, sha, "report")
    assert [c.note for c in fake.comments] == ["report"]


def test_a_server_error_during_listing_is_unavailable(fake, client):
    for i in range(3):
        fake.add_project(f"course/s{i}")
    fake.fail_next(1, 500, path_contains="/groups/")
    with pytest.raises(GitLabUnavailable):
        client.group_projects("course")


def test_gitlab_not_answering_in_time_is_unavailable(fake, pushed):
    pid, sha, _ = pushed
    fake.hang(path_contains="/statuses/")
    with pytest.raises(GitLabUnavailable, match="timed out"):
        GitLab(fake.url, fake.token, timeout_s=0.3).post_status(pid, sha, "running", name="autograder")


def test_a_dropped_connection_is_unavailable(fake, client, pushed):
    pid, sha, _ = pushed
    fake.drop_next(1, path_contains="/repository/archive")
    with pytest.raises(GitLabUnavailable, match="could not be reached"):
        client.archive(pid, sha)


def test_nothing_listening_is_unavailable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free, and closed again before the call
    with pytest.raises(GitLabUnavailable, match="could not be reached"):
        GitLab(f"http://127.0.0.1:{port}", "token", timeout_s=2).project(1)


# -- the test server's push payload (what the webhook tests send) --------------------------------

def test_push_payload_describes_the_real_push(fake, pushed):
    pid, first, repo = pushed
    second = commit_all(repo, "Run as a non-root user", files={"counter-backend/NOTES.md": "done\n"})
    payload = fake.push_payload(pid, before=first, after=second)
    assert (payload["object_kind"], payload["event_name"], payload["ref"]) == ("push", "push", "refs/heads/main")
    assert (payload["before"], payload["after"], payload["checkout_sha"]) == (first, second, second)
    assert payload["project_id"] == payload["project"]["id"] == pid
    assert payload["project"]["path_with_namespace"] == PROJECT
    assert payload["total_commits_count"] == 1
    assert payload["commits"][0]["id"] == second and payload["commits"][0]["added"] == ["counter-backend/NOTES.md"]
    deletion = fake.push_payload(pid, before=second, after=ZERO_SHA)
    assert deletion["checkout_sha"] is None and deletion["commits"] == []
