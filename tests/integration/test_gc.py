"""`grader gc`: what a killed run left behind goes, other graders' work stays."""

from __future__ import annotations

import pytest

from grader.engine import LABEL_INSTANCE, LABEL_JOB, Engine
from tests.integration.conftest import INSTANCE

pytestmark = pytest.mark.docker


def _leftover(engine: Engine, instance: str):
    return engine.client.containers.create("python:3.11.6-slim-bookworm", command=["true"],
                                           labels={LABEL_JOB: "crashed", LABEL_INSTANCE: instance})


def test_gc_removes_this_instances_leftovers_and_spares_others(engine):
    mine = _leftover(engine, INSTANCE)
    net = engine.client.networks.create(f"grader-gc-{INSTANCE}", internal=True,
                                        labels={LABEL_JOB: "crashed", LABEL_INSTANCE: INSTANCE})
    theirs = _leftover(engine, INSTANCE + "-other")
    try:
        report = engine.gc(older_than_s=0, cache_bytes=100 * 1024**3)
        ids = {c.id for c in engine.client.containers.list(all=True)}
        assert mine.id not in ids and theirs.id in ids
        assert report.containers >= 1 and report.networks >= 1
        assert engine.client.networks.list(names=[net.name]) == []
    finally:
        theirs.remove(force=True)


def test_gc_leaves_recent_leftovers_for_running_jobs(engine):
    fresh = _leftover(engine, INSTANCE)
    try:
        engine.gc(older_than_s=3600, cache_bytes=100 * 1024**3)
        assert fresh.id in {c.id for c in engine.client.containers.list(all=True)}
    finally:
        fresh.remove(force=True)
