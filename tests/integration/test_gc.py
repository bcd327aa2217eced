"""`grader gc`: what a killed run left behind goes, other graders' work stays."""

from __future__ import annotations

import uuid

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


def test_a_jobs_leftovers_are_swept_when_it_ends_and_its_error_wins_over_a_failed_sweep(engine, settings, caplog,
                                                                                      monkeypatch):
    from grader.errors import GraderError
    job = f"sweep-{uuid.uuid4().hex[:8]}"
    mine = {"label": f"{LABEL_JOB}={job}"}
    with engine.job(job, isolate=False):
        engine.client.containers.create(settings_image(engine), command=["true"], labels=engine._labels(job))
        assert engine.client.containers.list(all=True, filters=mine)
    assert engine.client.containers.list(all=True, filters=mine) == []  # swept on leaving

    def broken_sweep(*_a, **_k):
        raise GraderError("the engine refused the sweep")

    monkeypatch.setattr(engine, "remove_job", broken_sweep)
    with pytest.raises(ValueError, match="the grading's own error"):
        with engine.job(job, isolate=False):
            raise ValueError("the grading's own error")
    assert "sweeping job" in caplog.text and "the engine refused the sweep" in caplog.text
    with pytest.raises(GraderError, match="refused the sweep"):  # control: without an error it is the error
        with engine.job(job, isolate=False):
            pass


def settings_image(_engine) -> str:
    from grader import assignment as assignment_mod
    return assignment_mod.load().base_image


def test_a_job_taken_over_from_a_killed_worker_first_removes_what_that_worker_left(engine, settings):
    """A worker SIGKILLed mid-job leaves its container, its network and the firewall rules on that
    network's bridge; the worker that takes the grading over runs the same job name on the same
    engine, so without this the network's name is taken and every retry fails."""
    job = f"takeover-{uuid.uuid4().hex[:8]}"
    mine = {"label": f"{LABEL_JOB}={job}"}
    killed = engine.job(job, isolate=True)
    network = killed.__enter__()  # entered and never left: what SIGKILL does to a `with`
    old = engine.client.networks.get(network)
    engine.client.containers.create(settings_image(engine), command=["true"], labels=engine._labels(job))
    bridge = "br-" + old.id[:12]
    assert _rules_on(bridge)  # control: the killed job's wall is up
    with engine.job(job, isolate=True) as again:
        assert engine.client.containers.list(all=True, filters=mine) == []
        assert engine.client.networks.get(again).id != old.id
        assert not _rules_on(bridge)
    assert engine.client.networks.list(names=[network]) == [] and not _rules_on(bridge)


def _rules_on(bridge: str) -> list[str]:
    import subprocess

    out = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if bridge in line]
