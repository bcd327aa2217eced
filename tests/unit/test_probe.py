"""grader.probe against real HTTP servers on 127.0.0.1 (threads in this process, no mocks)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from grader import assignment
from grader.assignment import Probe
from grader.config import Settings
from grader.probe import ALIVE_EVERY_S, NotReady, run_probes, wait_ready

PROBES = assignment.load().probes
CAP = Settings().response_cap_bytes
CUT_MARK = " [...cut]"


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class CounterHandler(_Quiet):
    """The contract done right: GET 200 {"count": n}, POST 201 {"count": n + 1}."""

    post_status = 201

    def do_GET(self) -> None:
        if self.path != "/api/counter":
            self.reply(404, b'{"detail": "not found"}')
            return
        self.reply(200, json.dumps({"count": self.server.count}).encode())

    def do_POST(self) -> None:
        self.server.count += 1
        self.reply(self.post_status, json.dumps({"count": self.server.count}).encode())


class WrongPostStatusHandler(CounterHandler):
    post_status = 200


class JsonAsTextHandler(_Quiet):
    """The right JSON body, announced as text/plain."""

    def do_GET(self) -> None:
        self.reply(200, b'{"count": 0}', "text/plain; charset=utf-8")


class PlainTextHandler(_Quiet):
    def do_GET(self) -> None:
        self.reply(200, b"count: 0", "text/plain")


class ServerErrorHandler(_Quiet):
    def do_GET(self) -> None:
        self.reply(500, b"Internal Server Error", "text/plain")


class EndlessHandler(_Quiet):
    """Headers, then a body without length that never ends (HTTP/1.0: ends on close)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        chunk = b'{"count": 0}' * 512
        deadline = time.monotonic() + 10  # a safety net should the client never hang up
        try:
            while time.monotonic() < deadline:
                self.wfile.write(chunk)
        except OSError:
            pass  # the client hung up: what the grader must do


class SlowChunkedHandler(_Quiet):
    """A chunked body that never ends, a small chunk every 50 ms."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                self.wfile.write(b"10\r\n" + b"x" * 16 + b"\r\n")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass


class TrickleHandler(_Quiet):
    """A body without length, one byte every 50 ms: each read gets data well within the timeout."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass


@contextmanager
def http_server(handler: type[BaseHTTPRequestHandler], listen: bool = True) -> Iterator[ThreadingHTTPServer]:
    """A real HTTP server on 127.0.0.1:<free port>, served from a thread; its url is `.url`.

    With listen=False the port is bound but not listening (connections are refused) until
    the test calls `start(server)`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
    server.daemon_threads = True
    server.allow_reuse_address = True
    server.server_bind()
    server.count = 0
    server.stopping = threading.Event()
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    server.thread = None
    if listen:
        start(server)
    try:
        yield server
    finally:
        server.stopping.set()
        if server.thread is not None:
            server.shutdown()
            server.thread.join(timeout=5)
        server.server_close()


def start(server: ThreadingHTTPServer) -> None:
    server.server_activate()
    server.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                                     daemon=True)
    server.thread.start()


@contextmanager
def silent_port() -> Iterator[str]:
    """A TCP port that accepts connections (the kernel completes them) but never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@contextmanager
def closed_port() -> Iterator[str]:
    """A port bound by this test but not listening: connections are refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def timed(fn, *args):
    started = time.monotonic()
    result = fn(*args)
    return result, time.monotonic() - started


# -- probes -----------------------------------------------------------------------------------


def test_default_probes_pass_on_a_correct_counter_server():
    with http_server(CounterHandler) as server:
        results = run_probes(server.url, PROBES, 2.0, CAP)

    assert [(r.method, r.path, r.status, r.passed) for r in results] == [
        ("GET", "/api/counter", 200, True),
        ("POST", "/api/counter", 201, True),
        ("GET", "/api/counter", 200, True),
    ]
    assert [json.loads(r.body) for r in results] == [{"count": 0}, {"count": 1}, {"count": 1}]
    assert all(r.error is None for r in results)
    assert results[0].content_type == "application/json"


def test_probes_record_what_was_expected():
    with http_server(CounterHandler) as server:
        results = run_probes(server.url, PROBES, 2.0, CAP)

    assert [(r.expected_status, r.expected_json) for r in results] == [
        (200, {"count": 0}), (201, {"count": 1}), (200, {"count": 1})]


def test_wrong_status_fails_and_stops_the_later_probes():
    with http_server(WrongPostStatusHandler) as server:
        results = run_probes(server.url, PROBES, 2.0, CAP)
        count_after = server.count

    assert len(results) == 2  # the third GET is never sent
    assert results[0].passed
    assert (results[1].method, results[1].status, results[1].passed) == ("POST", 200, False)
    assert json.loads(results[1].body) == {"count": 1}  # right body, wrong status: still a fail
    assert count_after == 1


def test_first_probe_failing_sends_nothing_more():
    with http_server(CounterHandler) as server:
        results = run_probes(server.url, (Probe("GET", "/missing", 200, None), *PROBES), 2.0, CAP)
        count_after = server.count

    assert [(r.status, r.passed) for r in results] == [(404, False)]
    assert count_after == 0  # the POST never reached the server


def test_non_json_body_fails_even_with_the_right_status():
    with http_server(PlainTextHandler) as server:
        [result] = run_probes(server.url, PROBES[:1], 2.0, CAP)

    assert result.status == 200
    assert result.body == "count: 0"
    assert result.content_type == "text/plain"
    assert not result.passed
    assert result.error is None


def test_json_body_without_a_json_content_type_fails():
    with http_server(JsonAsTextHandler) as server:
        [result] = run_probes(server.url, PROBES[:1], 2.0, CAP)

    assert json.loads(result.body) == {"count": 0}
    assert not result.passed


def test_json_with_the_wrong_value_fails():
    probe = Probe("GET", "/api/counter", 200, {"count": 7})
    with http_server(CounterHandler) as server:
        [result] = run_probes(server.url, (probe,), 2.0, CAP)

    assert (result.status, json.loads(result.body), result.passed) == (200, {"count": 0}, False)


def test_probe_without_expected_json_checks_only_the_status():
    with http_server(PlainTextHandler) as server:
        [result] = run_probes(server.url, (Probe("GET", "/", 200, None),), 2.0, CAP)

    assert result.passed


def test_endless_body_is_cut_at_the_cap_within_the_timeout():
    timeout = 1.5
    with http_server(EndlessHandler) as server:
        [result], seconds = timed(run_probes, server.url, PROBES[:1], timeout, CAP)

    assert seconds < timeout
    assert result.status == 200
    assert result.body.endswith(CUT_MARK)
    assert len(result.body) == CAP + len(CUT_MARK)
    assert result.body.startswith('{"count": 0}{"count": 0}')
    assert not result.passed


def test_endless_slow_body_is_cut_at_the_deadline():
    timeout = 0.5
    with http_server(SlowChunkedHandler) as server:
        [result], seconds = timed(run_probes, server.url, PROBES[:1], timeout, CAP)

    assert seconds < timeout + 0.5
    assert result.body.endswith(CUT_MARK)
    assert 0 < len(result.body) - len(CUT_MARK) < CAP
    assert not result.passed


def test_trickling_body_is_cut_at_the_deadline():
    timeout = 0.5
    with http_server(TrickleHandler) as server:
        done = threading.Event()
        worker = threading.Thread(
            target=lambda: (run_probes(server.url, PROBES[:1], timeout, CAP), done.set()),
            daemon=True)
        worker.start()
        finished = done.wait(timeout + 0.7)
        server.stopping.set()  # let a stuck probe see the end of the body, then the thread ends
        worker.join(timeout=2)

    assert finished


def test_server_that_accepts_but_never_answers_is_a_probe_error_not_a_hang():
    timeout = 0.5
    with silent_port() as url:
        results, seconds = timed(run_probes, url, PROBES, timeout, CAP)

    assert seconds < timeout + 0.5
    assert len(results) == 1
    [result] = results
    assert result.status is None and result.body is None
    assert not result.passed
    assert "Timeout" in result.error


def test_refused_connection_is_a_probe_error():
    with closed_port() as url:
        [result] = run_probes(url, PROBES, 1.0, CAP)

    assert not result.passed
    assert result.status is None
    assert result.error.startswith("ConnectionError")


# -- readiness --------------------------------------------------------------------------------


def test_wait_ready_returns_the_seconds_until_the_server_answered():
    with http_server(CounterHandler) as server:
        seconds = wait_ready(server.url, 5.0, lambda: True, "/api/counter")

    assert isinstance(seconds, float)
    assert 0 <= seconds < 1.0


def test_wait_ready_accepts_any_http_answer_even_an_error():
    with http_server(ServerErrorHandler) as server:
        seconds = wait_ready(server.url, 5.0, lambda: True, "/api/counter")

    assert seconds < 1.0


def test_wait_ready_polls_until_the_server_starts_listening():
    with http_server(CounterHandler, listen=False) as server:
        threading.Timer(0.4, start, args=(server,)).start()
        seconds = wait_ready(server.url, 5.0, lambda: True, "/api/counter")

    assert 0.3 <= seconds < 1.5


def test_wait_ready_gives_up_at_once_when_the_container_exited():
    started = time.monotonic()
    with closed_port() as url, pytest.raises(NotReady, match="the container exited"):
        wait_ready(url, 10.0, lambda: False, "/")

    assert time.monotonic() - started < 0.5


def test_wait_ready_asks_the_engine_about_the_container_at_most_every_quarter_second():
    asked: list[float] = []

    def alive() -> bool:
        asked.append(time.monotonic())
        return True

    with closed_port() as url, pytest.raises(NotReady):
        wait_ready(url, 1.0, alive, "/")
    # 20 ms polls for 1 s: about 50 misses, 4-5 questions (control: at least the first one, at once)
    assert 3 <= len(asked) <= 7, asked  # and once more at the deadline
    polled = asked[:-1]  # the last one is the question at the deadline
    assert all(b - a >= ALIVE_EVERY_S * 0.99 for a, b in zip(polled, polled[1:], strict=False))


def test_wait_ready_notices_a_container_that_exits_later_within_the_interval():
    started = time.monotonic()
    dies_at = started + 0.3
    with closed_port() as url, pytest.raises(NotReady, match="the container exited"):
        wait_ready(url, 10.0, lambda: time.monotonic() < dies_at, "/")
    assert 0.3 <= time.monotonic() - started < 0.3 + ALIVE_EVERY_S + 0.3


def test_wait_ready_says_the_container_exited_when_it_died_in_the_last_interval():
    started = time.monotonic()
    with closed_port() as url, pytest.raises(NotReady, match="the container exited"):
        wait_ready(url, 1.0, lambda: time.monotonic() < started + 0.9, "/")  # dies just before the deadline


def test_wait_ready_raises_after_the_timeout_when_nothing_listens():
    started = time.monotonic()
    with closed_port() as url, pytest.raises(NotReady, match="no HTTP answer within 1 s") as info:
        wait_ready(url, 1.0, lambda: True, "/")
    elapsed = time.monotonic() - started

    assert 1.0 <= elapsed < 1.5
    assert "ConnectionError" in str(info.value)


def test_wait_ready_raises_after_the_timeout_when_the_server_never_answers():
    started = time.monotonic()
    with silent_port() as url, pytest.raises(NotReady, match="ReadTimeout"):
        wait_ready(url, 1.0, lambda: True, "/")

    assert time.monotonic() - started < 2.2
