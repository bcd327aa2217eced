"""The store's schema over time (grader/store/migrate.py, Alembic revisions in grader/store/migrations/):
databases of every earlier version, as their release made them, upgraded in place on a real SQLite
file and a real PostgreSQL database; newer ones refused."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest
from sqlalchemy import JSON, bindparam, create_engine, inspect, text

from grader.errors import ConfigError
from grader.store import SCHEMA_VERSION, Base, Dockerfile, Store
from grader.store import migrate as migrate_mod
from tests.conftest import FIXTURES
from tests.unit.conftest import T0, make_report

HEAD = f"{SCHEMA_VERSION:04d}"


def _load_schema_fixture(url: str, version: int) -> None:
    """A database as the release of schema `version` made it (tests/fixtures/schema/)."""
    engine = create_engine(url)
    sql = (FIXTURES / "schema" / f"v{version}-{engine.dialect.name}.sql").read_text()
    sql = "\n".join(ln for ln in sql.splitlines() if not ln.startswith("--"))  # before splitting: the
    statements = [s.strip() for s in sql.split(";\n") if s.strip()]  # header must not hide the first table
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    engine.dispose()


def _scalars(url: str, sql: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).scalars())
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def _versions(url: str) -> tuple[list, list]:
    """(grader_schema's version, Alembic's revisions); a table that is not there holds none."""
    tables = _tables(url)
    return (_scalars(url, "SELECT version FROM grader_schema") if "grader_schema" in tables else [],
            _scalars(url, "SELECT version_num FROM alembic_version") if "alembic_version" in tables else [])


def _naive_on_sqlite(url: str):
    return T0.replace(tzinfo=None) if url.startswith("sqlite") else T0


def _insert_graded_submission(url: str, version: int = SCHEMA_VERSION) -> None:
    """Submission 1, graded, with the columns a database of `version` has."""
    columns = {"id": 1, "project_id": 7, "project_path": "devops-2026/ivanov", "student": "ivanov", "sha": "a" * 40,
               "ref": "refs/heads/main", "state": "graded", "received_at": _naive_on_sqlite(url), "late": False,
               "score": 4.5, "max_score": 5.0}
    if version >= 1:
        columns["token"] = "tok-000000000000000001"
    if version >= 2:
        columns.update(pushed_at=_naive_on_sqlite(url), pushed_at_source="received", origin="push")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"INSERT INTO submissions ({', '.join(columns)}) VALUES (:{', :'.join(columns)})"), columns)
    engine.dispose()


# -- the first release, and the versions numbered before Alembic --------------------------------


def test_database_of_the_first_release_gets_report_tokens_and_keeps_its_rows(store_url, store, push):
    """Version 0 (no grader_schema, no token column) is migrated in place on the next start."""
    kept = [push(), push(project_id=2)]
    with store._session() as s:  # back to version 0's shape
        s.execute(text("DROP TABLE grader_schema"))
        s.execute(text("DROP TABLE alembic_version"))
        s.execute(text("DROP INDEX ix_submissions_token"))
        s.execute(text("ALTER TABLE submissions DROP COLUMN token"))
    store.close()
    migrated = Store(store_url)
    rows = [migrated.get(sub.id) for sub in kept]
    assert [(r.project_id, r.sha) for r in rows] == [(k.project_id, k.sha) for k in kept]
    assert all(r.token for r in rows) and rows[0].token != rows[1].token
    assert migrated.by_token(rows[1].token).id == kept[1].id
    fresh = push()  # the unique index is back
    assert fresh.token not in {r.token for r in rows}
    with migrated._session(write=False) as s:  # migrated all the way: 0 -> 1 -> 2 ...
        assert s.execute(text("SELECT version FROM grader_schema")).scalar_one() == SCHEMA_VERSION
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    migrated.close()


def test_new_database_is_stamped_with_the_schema_version_and_reopens(store_url):
    Store(store_url).close()
    again = Store(store_url)  # a second start finds its own version
    with again._session(write=False) as s:
        assert s.execute(text("SELECT version FROM grader_schema")).scalar_one() == SCHEMA_VERSION
        assert s.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == HEAD
    again.close()


def test_database_of_a_newer_schema_is_refused_with_what_to_do(store_url):
    store = Store(store_url)
    with store._session() as s:
        s.execute(text("UPDATE grader_schema SET version = :v"), {"v": SCHEMA_VERSION + 1})
    store.close()
    with pytest.raises(ConfigError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than this grader's .*backup"):
        Store(store_url)


def test_database_at_a_revision_this_grader_does_not_know_is_refused_the_same_way(store_url):
    Store(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    with pytest.raises(ConfigError) as info:
        Store(store_url)
    message = str(info.value)
    assert "schema version 0099, newer than this grader's" in message and "backup" in message
    assert "\n" not in message


def test_a_version_2_database_migrates_keeping_its_rows_and_takes_dockerfiles(store_url):
    _load_schema_fixture(store_url, 2)
    engine = create_engine(store_url)
    at = T0.replace(tzinfo=None) if engine.dialect.name == "sqlite" else T0
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grader_schema (id, version) VALUES (1, 2)"))
        conn.execute(text(
            "INSERT INTO submissions (id, project_id, project_path, student, sha, ref, state, received_at, late, score,"
            " max_score, token, pushed_at, pushed_at_source, origin) VALUES (1, 7, 'devops-2026/ivanov', 'ivanov', "
            ":sha, 'refs/heads/main', 'graded', :at, false, 4.5, 5.0, 'tok-000000000000000001', :at, 'received', "
            "'push')"), {"sha": "a" * 40, "at": at})
    engine.dispose()
    migrated = Store(store_url)
    with migrated._session(write=False) as s:
        assert s.execute(text("SELECT version FROM grader_schema")).scalar_one() == SCHEMA_VERSION
    old = migrated.get(1)
    assert (old.state, old.score, old.token, old.pushed_at) == ("graded", 4.5, "tok-000000000000000001", T0)
    assert migrated.dockerfiles(1) == [] and migrated.compared_submissions() == []  # graded before: none kept
    assert migrated.requeue([1]) == [1] and migrated.start(1)  # a regrade stores them
    files = [Dockerfile("single", "counter-backend/Dockerfile.single", "FROM python\n")]
    assert migrated.finish(1, make_report(5), "0.2.0", dockerfiles=files)
    assert [(d.variant, d.path, d.text) for d in migrated.dockerfiles(1)] == [
        ("single", "counter-backend/Dockerfile.single", "FROM python\n")]
    assert [c.id for c in migrated.compared_submissions(["devops-2026"])] == [1]
    migrated.close()
    again = Store(store_url)  # control: a migrated database is not migrated twice
    assert len(again.dockerfiles(1)) == 1
    again.close()


def test_a_version_3_database_gains_the_history_and_keeps_every_row(store_url):
    """Only `grader_schema` saying 3, no `alembic_version`: what the last release before Alembic left."""
    _load_schema_fixture(store_url, 3)
    _insert_graded_submission(store_url, 3)
    engine = create_engine(store_url)
    at = _naive_on_sqlite(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grader_schema (id, version) VALUES (1, 3)"))
        insert_post = text("INSERT INTO pending_posts (id, submission_id, kind, payload, attempts, next_attempt_at, "
                           "delivered_at, created_at) VALUES (:id, 1, :kind, :payload, 0, :at, :delivered, :at)"
                           ).bindparams(bindparam("payload", type_=JSON))
        conn.execute(insert_post, {"id": 1, "kind": "status", "payload": {"state": "success"}, "at": at,
                                   "delivered": at})
        conn.execute(insert_post, {"id": 2, "kind": "comment", "payload": {"note": "## 4.5/5"}, "at": at,
                                   "delivered": None})
        conn.execute(text("INSERT INTO extensions (id, key, until, reason, created_at) "
                          "VALUES (1, 'ivanov', :at, 'ill', :at)"), {"at": at})
        conn.execute(text("INSERT INTO submission_dockerfiles (id, submission_id, variant, path, text, digest, "
                          "fingerprint) VALUES (1, 1, 'single', 'Dockerfile.single', 'FROM python\n', :digest, :fp)"
                          ).bindparams(bindparam("fp", type_=JSON)), {"digest": "d" * 64, "fp": {"key": "k"}})
    engine.dispose()
    assert "submission_events" not in _tables(store_url)  # control: not there before

    migrated = Store(store_url)
    assert _versions(store_url) == ([SCHEMA_VERSION], [HEAD])
    old = migrated.get(1)
    assert (old.state, old.score, old.token, old.pushed_at) == ("graded", 4.5, "tok-000000000000000001", T0)
    assert [(p.id, p.payload) for p in migrated.due_posts(T0.replace(year=2100))] == [(2, {"note": "## 4.5/5"})]
    assert migrated.extensions() == {"ivanov": (T0, "ill")}
    assert [(d.id, d.variant, d.fingerprint) for d in migrated.dockerfiles(1)] == [(1, "single", {"key": "k"})]
    assert migrated.events(1) == []  # graded before the history existed

    assert migrated.requeue([1], event="regrade_requested", actor="petrova", reason="rubric fixed") == [1]
    assert migrated.start(1) and migrated.finish(1, make_report(5), "0.3.0", event="regraded")
    assert [(e.kind, e.actor, e.reason, e.detail) for e in migrated.events(1)] == [
        ("regrade_requested", "petrova", "rubric fixed", None),
        ("regraded", "petrova", "rubric fixed", {"old_score": 4.5, "new_score": 5.0})]
    migrated.close()
    again = Store(store_url)  # control: not migrated twice, the history kept
    assert len(again.events(1)) == 2 and _versions(store_url) == ([SCHEMA_VERSION], [HEAD])
    again.close()


def test_a_database_alembic_stamped_at_an_older_revision_is_upgraded_from_there(store_url):
    Store(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:  # back to revision 0003, as a release of that revision left it
        conn.execute(text("DROP TABLE submission_events"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0003'"))
        conn.execute(text("UPDATE grader_schema SET version = 3"))
    engine.dispose()
    _insert_graded_submission(store_url)
    store = Store(store_url)
    store.add_event(1, "config_changed", detail={"assignment": "sha256:abc"})
    assert [(e.kind, e.detail) for e in store.events(1)] == [("config_changed", {"assignment": "sha256:abc"})]
    assert _versions(store_url) == ([SCHEMA_VERSION], [HEAD])
    store.close()


def test_a_version_4_outbox_keeps_its_waiting_posts_as_never_claimed(store_url):
    _load_schema_fixture(store_url, 4)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grader_schema (id, version) VALUES (1, 4)"))
    engine.dispose()
    _insert_graded_submission(store_url, 4)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pending_posts (id, submission_id, kind, payload, attempts, next_attempt_at, "
                          "created_at) VALUES (1, 1, 'status', :payload, 0, :at, :at)").bindparams(
                              bindparam("payload", type_=JSON)), {"payload": {"state": "success"},
                                                                   "at": _naive_on_sqlite(store_url)})
    engine.dispose()
    store = Store(store_url)
    try:
        assert _versions(store_url) == ([SCHEMA_VERSION], [HEAD])
        post = store.get_post(1)
        assert post is not None and post.leased_at is None and post.delivered_at is None
        [due] = store.due_posts(T0.replace(year=T0.year + 1))
        assert due.id == 1 and due.payload == {"state": "success"}
    finally:
        store.close()


# -- every way to the head gives the same tables ------------------------------------------------


def _differences(url: str) -> list:
    """What Alembic's autogenerate would change to make the database match the ORM's tables."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


# The ORM's indexes → whether each is partial (autogenerate compares no index's WHERE).
EXPECTED_PARTIAL = {index.name: index.dialect_options["sqlite"]["where"] is not None
                    for table in Base.metadata.tables.values() for index in table.indexes}


def _index_predicates(url: str) -> dict[str, bool]:
    """The ORM's indexes as the database has them → whether each is partial (has a WHERE)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
            else:
                rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                         "WHERE schemaname = current_schema()"))
            return {name: " WHERE " in sql.upper() for name, sql in rows if name in EXPECTED_PARTIAL}
    finally:
        engine.dispose()


def _version_0(url: str) -> None:
    """The first release's tables: version 1's, without report tokens and the version table."""
    _load_schema_fixture(url, 1)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE grader_schema"))
        conn.execute(text("DROP INDEX ix_submissions_token"))
        conn.execute(text("ALTER TABLE submissions DROP COLUMN token"))
    engine.dispose()


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_a_database_of_every_earlier_version_ends_with_the_tables_a_new_one_has(store_url, version):
    if version == 0:
        _version_0(store_url)
    else:
        _load_schema_fixture(store_url, version)
        engine = create_engine(store_url)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO grader_schema (id, version) VALUES (1, :v)"), {"v": version})
        engine.dispose()
    _insert_graded_submission(store_url, version)
    assert _differences(store_url) != []  # control: the comparison sees an old schema

    Store(store_url).close()
    assert _differences(store_url) == []
    assert _index_predicates(store_url) == EXPECTED_PARTIAL  # the one-live-row-per-commit index is still partial
    assert _versions(store_url) == ([SCHEMA_VERSION], [HEAD])
    assert _scalars(store_url, "SELECT count(*) FROM submissions") == [1]
    assert _scalars(store_url, "SELECT pushed_at_source FROM submissions") == ["received"]


def test_a_new_database_has_the_orms_tables(store_url):
    Store(store_url).close()
    assert _differences(store_url) == []
    assert _index_predicates(store_url) == EXPECTED_PARTIAL


def test_the_head_revision_is_this_graders_schema_version_and_the_revisions_are_one_line():
    scripts = migrate_mod.scripts()
    assert scripts.get_current_head() == migrate_mod.HEAD == HEAD
    chain = [s.revision for s in scripts.walk_revisions()]  # head first
    assert chain == [f"{n:04d}" for n in range(SCHEMA_VERSION, 0, -1)]
    for script in scripts.walk_revisions():
        assert Path(script.path).name.startswith(f"v{script.revision}_")


# -- upgrading safely -------------------------------------------------------------------------


def test_an_upgrade_that_fails_part_way_leaves_the_database_as_it_was(store_url, monkeypatch):
    from grader.store.migrations import helpers

    _load_schema_fixture(store_url, 2)
    _insert_graded_submission(store_url, 2)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grader_schema (id, version) VALUES (1, 2)"))
    engine.dispose()
    real = helpers.set_legacy_version

    def fails_at_4(version: int) -> None:
        real(version)
        if version == 4:  # revision 0003 done, 0004 made its table: then the disk fills up
            raise RuntimeError("no space left on device")

    monkeypatch.setattr(helpers, "set_legacy_version", fails_at_4)
    with pytest.raises(RuntimeError, match="no space left"):
        Store(store_url)
    assert _versions(store_url) == ([2], [])  # one transaction: nothing of 0003 or 0004 stayed
    assert not _tables(store_url) & {"submission_dockerfiles", "submission_events"}
    monkeypatch.undo()
    Store(store_url).close()  # the next start upgrades it
    assert _versions(store_url) == ([SCHEMA_VERSION], [HEAD])


def _open_at(url: str, start: float) -> int:
    time.sleep(max(0.0, start - time.time()))
    store = Store(url)
    try:
        return len(store.dockerfiles(1)) + len(store.events(1))
    finally:
        store.close()


def test_two_processes_opening_an_old_database_at_once_upgrade_it_once(store_url):
    _load_schema_fixture(store_url, 2)
    _insert_graded_submission(store_url, 2)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO grader_schema (id, version) VALUES (1, 2)"))
    engine.dispose()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        start = time.time() + 2.0  # both processes past their imports, then both at once
        assert pool.starmap(_open_at, [(store_url, start)] * 2) == [0, 0]
    assert _versions(store_url) == ([SCHEMA_VERSION], [HEAD])
    assert _scalars(store_url, "SELECT token FROM submissions") == ["tok-000000000000000001"]
