"""HTTP readiness and probes, with caps on time and on how much of a response is read."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import requests

from grader.assignment import Probe
from grader.facts import ProbeResult


class NotReady(Exception):
    """Nothing answered HTTP before the deadline (or the container exited)."""


ALIVE_EVERY_S = 0.25  # how often a poll that got no answer also asks the engine whether the container still runs


def wait_ready(url: str, timeout_s: float, alive: Callable[[], bool], path: str) -> float:
    """Seconds until the server answered any HTTP response; raises NotReady with the reason.

    Polled every 20 ms (a server is usually up within 0.3 s; a coarse poll adds its step to every
    run). The engine is asked about the container at the first miss, then every ALIVE_EVERY_S, not
    at every poll: six containers starting at once would otherwise have it inspect one every few
    milliseconds, on the same cores the servers start on."""
    started = time.monotonic()
    last_error = "no answer"
    ask_at = started  # the first miss asks at once: a server that crashed on start is told at once
    with requests.Session() as session:
        while time.monotonic() - started < timeout_s:
            try:
                with session.get(url + path, timeout=1.0, stream=True):
                    return time.monotonic() - started
            except requests.RequestException as exc:
                last_error = type(exc).__name__
            now = time.monotonic()
            if now >= ask_at:
                if not alive():
                    raise NotReady("the container exited")
                ask_at = now + ALIVE_EVERY_S
            time.sleep(0.02)
    if not alive():  # it may have died since the last question: say that, not a timeout
        raise NotReady("the container exited")
    raise NotReady(f"no HTTP answer within {timeout_s:.0f} s ({last_error})")


def run_probes(url: str, probes: tuple[Probe, ...], timeout_s: float, cap_bytes: int) -> list[ProbeResult]:
    results = []
    for probe in probes:
        results.append(_one(url, probe, timeout_s, cap_bytes))
        if not results[-1].passed:
            break  # later probes depend on the earlier ones' effect on the counter
    return results


def _one(url: str, probe: Probe, timeout_s: float, cap_bytes: int) -> ProbeResult:
    result = ProbeResult(probe.method, probe.path, None, None, False, probe.status, probe.json)
    try:
        with requests.request(probe.method, url + probe.path, timeout=timeout_s, stream=True) as r:
            result.status = r.status_code
            result.content_type = r.headers.get("Content-Type")
            result.body = _read_capped(r, cap_bytes, timeout_s)
    except requests.RequestException as exc:
        result.error = f"{type(exc).__name__}: no answer"
        return result
    json_typed = probe.json is None or (result.content_type or "").split(";")[0].strip() == "application/json"
    result.passed = result.status == probe.status and json_typed and _json_matches(result.body, probe.json)
    return result


def _read_capped(r: requests.Response, cap_bytes: int, timeout_s: float) -> str:
    # A server that streams forever, or trickles a byte at a time, must not hold the grader:
    # read1 returns whatever has arrived, so the deadline is checked after every read.
    deadline = time.monotonic() + timeout_s
    data = b""
    while True:
        chunk = r.raw.read1(4096)
        if not chunk:
            return data.decode(errors="replace")
        data += chunk
        if len(data) >= cap_bytes or time.monotonic() > deadline:
            return data[:cap_bytes].decode(errors="replace") + " [...cut]"


def _json_matches(body: str | None, expected: object) -> bool:
    if expected is None:
        return True
    try:
        return json.loads(body or "") == expected
    except ValueError:
        return False
