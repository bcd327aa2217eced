"""Hostile submissions: the verdict, and the host's health afterwards."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from grader import assignment as assignment_mod
from grader.pipeline import grade
from grader.report import to_json
from tests.conftest import FIXTURES, REFERENCE_SOURCE

pytestmark = pytest.mark.docker
HOSTILE = FIXTURES / "hostile"
ASSIGNMENT = assignment_mod.load()
CANARY_PORT = 47123  # the port tests/fixtures/hostile/reach_host tries on its gateway


@contextmanager
def canary() -> Iterator[list[str]]:
    """A listener on every host address that records who connected."""
    server = socket.create_server(("0.0.0.0", CANARY_PORT), reuse_port=True)
    server.settimeout(0.2)
    seen: list[str] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            seen.append(addr[0])
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=2)
        server.close()


def single(report: dict) -> dict:
    return next(v for v in report["variants"] if v["name"] == "single")


def grade_hostile(name: str, settings, engine) -> dict:
    facts, scored = grade(HOSTILE / name, ASSIGNMENT, settings, engine, reference=REFERENCE_SOURCE)
    return to_json(facts, scored, ASSIGNMENT, "en")


def test_container_cannot_reach_a_listener_on_the_host(settings, engine):
    with canary() as seen:
        report = grade_hostile("reach_host", settings, engine)
    assert single(report)["score"] == 1.5  # the host still probes it
    assert seen == []


def test_without_isolation_the_same_container_does_reach_the_host(settings, engine):
    # The control experiment: proves the fixture really tries, so the test above can fail.
    open_settings = settings.model_copy(update={"isolate_network": False})
    with canary() as seen:
        grade_hostile("reach_host", open_settings, engine)
    assert seen != []


def test_isolation_leaves_no_network_or_firewall_rule_behind(settings, engine):
    grade_hostile("reach_host", settings, engine)
    assert [n.name for n in engine.client.networks.list() if n.name.startswith("grader-")] == []
    rules = subprocess_output(["iptables", "-S", "INPUT"])
    assert "br-" not in rules


def subprocess_output(cmd: list[str]) -> str:
    import subprocess

    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
