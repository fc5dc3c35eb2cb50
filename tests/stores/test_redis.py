"""The Redis store beyond the shared contract: several stores (as several
processes) on one prefix, Redis's own TTL, and Redis that goes away.

Each store has a connection of its own to a real ``valkey-server``, as each
process would; store time is a ``Clock``, network waits are on the real reactor
(``pytest_twisted.blockon``).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from jetforce_sesh import (
    Conflict,
    RedisStores,
    StoreFull,
    StoreUnavailable,
    StoreUnsure,
)
from jetforce_sesh.options import OnFull, SlabOptions
from jetforce_sesh.stores import ABSENT, RedisStore, Stored, StoreSpec
from jetforce_sesh.testing import START, fingerprint_of
from tests.redis_support import RedisServer

T = TypeVar("T")
A, B, C = (fingerprint_of(f"redis {name}") for name in "abc")


def wait(deferred: Deferred[T]) -> T:
    result: T = pytest_twisted.blockon(deferred)
    return result


class Processes:
    """Stores of one slab under one prefix, each as another process would have it:
    a connection of its own, a clock of its own (all at the same time)."""

    def __init__(self, server: RedisServer, **options: Any) -> None:
        self.server = server
        self.prefix = f"unit-{uuid.uuid4().hex[:8]}"
        self.options = SlabOptions(record_size=16, **options)
        self.stores: list[tuple[RedisStore, Clock]] = []

    def start(self) -> tuple[RedisStore, Clock]:
        clock = Clock()
        clock.advance(START)
        stores = RedisStores(self.server.url, prefix=self.prefix, reactor=reactor)
        store = stores(StoreSpec("slab", self.options, clock, 16, "raw"))
        wait(store.open())
        self.stores.append((store, clock))
        return store, clock

    def close(self) -> None:
        for store, _ in self.stores:
            wait(store.close())


@pytest.fixture
def processes(redis_server: RedisServer) -> Iterator[Any]:
    made: list[Processes] = []

    def make(**options: Any) -> Processes:
        made.append(Processes(redis_server, **options))
        return made[-1]

    yield make
    for each in made:
        each.close()


def test_two_processes_share_records_and_versions(processes: Any) -> None:
    """A save in one is loaded by the other; a save naming a version the other
    has moved on from conflicts, and changes nothing."""
    two = processes()
    (one, _), (other, _) = two.start(), two.start()
    first = wait(one.save(A, b"from one", ABSENT))
    assert Stored(b"from one", first) == wait(other.load(A))
    second = wait(other.save(A, b"from other", first))
    with pytest.raises(Conflict):
        wait(one.save(A, b"stale", first))
    assert Stored(b"from other", second) == wait(one.load(A))
    assert (1, 0) == (one.stats().conflicts, other.stats().conflicts)


@pytest.mark.parametrize("on_full", ["evict", "refuse"])
def test_capacity_is_one_for_all_processes(processes: Any, on_full: OnFull) -> None:
    """The slab holds max_records over all processes; the eviction's hook fires
    in the process whose save evicted, and only there."""
    two = processes(max_records=2, on_full=on_full)
    (one, _), (other, _) = two.start(), two.start()
    evicted: dict[str, list[bytes]] = {"one": [], "other": []}
    one.on_evicted(evicted["one"].append)
    other.on_evicted(evicted["other"].append)
    wait(one.save(A, b"a", ABSENT))
    wait(one.save(B, b"b", ABSENT))
    if on_full == "refuse":
        with pytest.raises(StoreFull):
            wait(other.save(C, b"c", ABSENT))
        assert {"one": [], "other": []} == evicted
    else:
        wait(other.save(C, b"c", ABSENT))
        assert {"one": [], "other": [A]} == evicted
        assert None is wait(one.load(A))
    assert 2 == other.stats().in_use


def test_a_record_key_carries_the_idle_timeout_as_its_ttl(
    processes: Any, redis_server: RedisServer
) -> None:
    """Redis forgets a record nobody uses even with no capsule running; a
    record without a timeout never expires in Redis."""
    timed = processes(idle_timeout=3600)
    store, _ = timed.start()
    wait(store.save(A, b"a", ABSENT))
    client = redis_server.client()
    ttl = client.pttl(f"{timed.prefix}:slab:r:{A.hex()}")
    assert 3_599_000 < ttl <= 3_600_000
    untimed = processes()
    store, _ = untimed.start()
    wait(store.save(A, b"a", ABSENT))
    assert -1 == client.pttl(f"{untimed.prefix}:slab:r:{A.hex()}")


def test_a_record_redis_dropped_is_told_as_expired(
    processes: Any, redis_server: RedisServer
) -> None:
    """As when its TTL ran out, or maxmemory's volatile-lru chose it."""
    one = processes(idle_timeout=3600)
    store, _ = one.start()
    expired: list[bytes] = []
    store.on_expired(expired.append)
    wait(store.save(A, b"a", ABSENT))
    redis_server.client().delete(f"{one.prefix}:slab:r:{A.hex()}")
    assert None is wait(store.load(A))
    assert ([A], 0) == (expired, store.stats().in_use)


def test_scripts_redis_forgot_are_sent_again(
    processes: Any, redis_server: RedisServer
) -> None:
    """After SCRIPT FLUSH (as after a restart), EVALSHA fails with NOSCRIPT and
    the store sends the script whole."""
    store, _ = processes().start()
    version = wait(store.save(A, b"a", ABSENT))
    redis_server.client().script_flush()
    assert Stored(b"a", version) == wait(store.load(A))


def test_a_bad_cursor_is_refused(processes: Any) -> None:
    store, _ = processes().start()
    with pytest.raises(ValueError) as raised:
        wait(store.records("12"))
    assert "cursor '12' is not one this store gave" == str(raised.value)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    if server.process is not None:
        os.kill(server.process.pid, signal.SIGCONT)
    server.stop()


def sleep(seconds: float) -> None:
    wait(task.deferLater(reactor, seconds, lambda: None))


def until(condition: Callable[[], bool], failure: str) -> None:
    """Let the reactor run until ``condition`` holds, for 10 s at most."""
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, failure
        sleep(0.05)


def test_redis_away_fails_at_once_and_the_store_comes_back(
    own_redis: RedisServer,
) -> None:
    many = Processes(own_redis)
    store, clock = many.start()
    version = wait(store.save(A, b"a", ABSENT))
    own_redis.kill()
    until(lambda: store.link._live() is None, "the store never saw Redis go")
    began = time.monotonic()
    with pytest.raises(StoreUnavailable) as raised:
        wait(store.load(A))
    assert time.monotonic() - began < 0.1
    assert (
        f"no connection to Redis at redis://127.0.0.1:{own_redis.port}/0; reconnecting"
    ) == str(raised.value)
    own_redis.start()
    until(lambda: store.link._live() is not None, "the store never reconnected")
    # No append-only file: Redis came back empty, and the store serves it. The
    # versions it gives now start from the time (a second on), above those
    # given before.
    clock.advance(1)
    assert None is wait(store.load(A))
    assert version < wait(store.save(A, b"again", ABSENT))
    many.close()


def test_a_save_to_a_stalled_redis_fails_unsure_within_the_limit(
    own_redis: RedisServer,
) -> None:
    """Sent and not answered: the script may have run, so the save fails with
    StoreUnsure, within 1.2 s and a watchdog period."""
    many = Processes(own_redis)
    store, _ = many.start()
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    began = time.monotonic()
    saving = store.save(A, b"a", ABSENT)
    loading = store.load(B)
    with pytest.raises(StoreUnsure) as raised:
        wait(saving)
    with pytest.raises(StoreUnavailable) as other:
        wait(loading)
    took = time.monotonic() - began
    # At least the reply timeout; within the 2 s a player may wait (a watchdog
    # period more, and room for a busy machine).
    assert 1.2 <= took < 2.0
    assert not isinstance(other.value, StoreUnsure)
    assert str(raised.value).startswith(
        f"Redis at redis://127.0.0.1:{own_redis.port}/0: "
    )
    os.kill(own_redis.process.pid, signal.SIGCONT)
    many.close()


def test_closing_while_redis_stalls_waits_for_the_watchdog_not_forever(
    own_redis: RedisServer,
) -> None:
    """A store closing with a script in flight waits for its answer, and the
    watchdog still ends that wait when Redis has stopped answering."""
    store, _ = Processes(own_redis).start()
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    saving = store.save(A, b"a", ABSENT)
    began = time.monotonic()
    wait(store.close())
    assert time.monotonic() - began < 2.0
    with pytest.raises(StoreUnsure):
        wait(saving)
