"""grader/heartbeat.py on the machine's real Redis: a grading's beat is seen while it runs, gone
when it ends or its worker dies, and only silent running gradings are taken over."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import redis

from grader import heartbeat

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_grading_is_held_while_it_beats_and_released_when_it_ends(redis_client):
    instance = f"hb-{secrets.token_hex(4)}"
    with heartbeat.beating(redis_client, instance, 41, every_s=0.2, holder="host-a:1"):
        time.sleep(0.3)
        during = heartbeat.held(redis_client, instance)
    after = heartbeat.held(redis_client, instance)
    assert during is not None and during[41]["holder"] == "host-a:1"
    assert after == {}


def test_a_beat_expires_by_itself_when_its_worker_stops_beating(redis_client):
    """A SIGKILLed worker deletes nothing: its key must lapse within three beats."""
    instance = f"hb-{secrets.token_hex(4)}"
    redis_client.set(f"{heartbeat.PREFIX}:{instance}:7", '{"holder": "dead"}', ex=1)  # what a beat of 0.33 s writes
    assert 7 in (heartbeat.held(redis_client, instance) or {})  # control: it was held
    time.sleep(1.3)
    assert heartbeat.held(redis_client, instance) == {}


def test_the_beats_of_another_instance_are_not_ours(redis_client):
    mine, theirs = f"hb-{secrets.token_hex(4)}", f"hb-{secrets.token_hex(4)}"
    with heartbeat.beating(redis_client, theirs, 5, every_s=1):
        assert heartbeat.held(redis_client, mine) == {}
        assert 5 in (heartbeat.held(redis_client, theirs) or {})


def test_only_running_gradings_nobody_beats_for_and_older_than_the_grace_are_silent():
    running = [(1, T0 - timedelta(minutes=5)), (2, T0 - timedelta(minutes=5)), (3, T0 - timedelta(seconds=5))]
    silent = heartbeat.silent(running, beating_ids=[2], grace=timedelta(seconds=30), now=T0)
    assert silent == [1]  # 2 beats; 3 has just started and may not have written its first beat


def test_an_unreachable_redis_can_say_nothing_so_nothing_is_taken_over():
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    assert heartbeat.held(dead, "any") is None


def test_a_grading_goes_on_when_its_beat_cannot_be_written(caplog):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    ran = []
    with heartbeat.beating(dead, "any", 9, every_s=0.1):
        ran.append(True)
    assert ran == [True]
    assert "heartbeat of submission 9 not written" in caplog.text


def test_a_workers_beat_says_whether_its_engine_answers_and_lapses_when_it_stops(redis_client):
    instance = f"hb-{secrets.token_hex(4)}"
    heartbeat.worker_alive(redis_client, instance, "h1@vm", engine_up=True, every_s=0.34)
    heartbeat.worker_alive(redis_client, instance, "h2@vm", engine_up=False, every_s=0.34)
    assert heartbeat.workers(redis_client, instance) == {"h1@vm": True, "h2@vm": False}
    time.sleep(1.3)  # three beats missed
    assert heartbeat.workers(redis_client, instance) == {}
