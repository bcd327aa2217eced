"""Shared fixtures: paths to the real fixture submissions, and a real engine for docker tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE_REPO = FIXTURES / "reference"
REFERENCE_SOURCE = REFERENCE_REPO / "counter-backend"
BROKEN = FIXTURES / "broken"


@pytest.fixture(scope="session")
def reference_source() -> Path:
    return REFERENCE_SOURCE


# -- PostgreSQL: one database `grader_test_<random>` per run, one schema per test ------------------
PG_ADMIN = os.environ.get("GRADER_TEST_PG_ADMIN", "host=127.0.0.1 port=5432 user=postgres dbname=test")
PG_HOST = os.environ.get("GRADER_TEST_PG_HOST", "postgres@127.0.0.1:5432")


def _admin_connection():
    import psycopg

    return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh database for this test run; its name."""
    try:
        admin = _admin_connection()
    except Exception as e:  # noqa: BLE001 - any failure to reach the server means: no PostgreSQL here
        pytest.fail(f"PostgreSQL unreachable ({PG_ADMIN}): {e}; start it (see .ci/run)")
    name = f"grader_test_{secrets.token_hex(6)}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with _admin_connection() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A URL whose connections work in a schema of their own, created for this test."""
    import psycopg

    schema = f"t_{secrets.token_hex(6)}"
    admin_db = f"host=127.0.0.1 port=5432 user=postgres dbname={pg_database}"
    with psycopg.connect(admin_db, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"postgresql+psycopg://{PG_HOST}/{pg_database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(admin_db, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')




@pytest.fixture
def redis_client() -> Iterator:
    """The machine's Redis (database 0, shared; GRADER_TEST_REDIS_URL elsewhere): a test keeps to keys of its
    own instance name."""
    import redis

    url = os.environ.get("GRADER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"Redis unreachable at {url}: {e}; start it (see .ci/run) or set GRADER_TEST_REDIS_URL")
    yield client
    client.close()


# -- The images of compose.yaml, made the operator's way -------------------------------------------
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def stack_images() -> Iterator[dict[str, str]]:
    """REDIS_IMAGE, POSTGRES_IMAGE and GRADER_IMAGE from `scripts/setup --stack`: the standard
    images when present or pullable, else local stand-ins; the grader's image under a tag of this
    run (removed afterwards), built from worker.Dockerfile."""
    import subprocess

    tag = f"grader-test:{secrets.token_hex(6)}"
    result = subprocess.run([str(ROOT / "scripts" / "setup"), "--stack"], capture_output=True, text=True,
                            timeout=1800, env={**os.environ, "GRADER_IMAGE": tag})
    if result.returncode != 0:
        pytest.fail(f"scripts/setup --stack failed:\n{result.stderr[-4000:]}")
    images = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    assert images.get("GRADER_IMAGE") == tag, result.stdout
    try:
        yield images
    finally:
        subprocess.run(["/usr/bin/docker", "rmi", "-f", tag], capture_output=True, timeout=120)


# -- test tiers ---------------------------------------------------------------------------------
# pure: nothing but Python and the filesystem; services: also Redis/PostgreSQL; docker: an engine.
# `make test-pure` runs the first tier on a laptop with none of them.
SERVICE_FIXTURES = {"pg_url", "pg_database", "store_url", "store", "push", "graded", "broker_url", "database_url",
                    "redis_client"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())) and not item.get_closest_marker("docker"):
            item.add_marker(pytest.mark.services)
