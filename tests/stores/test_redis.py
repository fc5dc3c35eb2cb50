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
    ConfigError,
    Conflict,
    RedisStores,
    StoreFull,
    StoreUnavailable,
    StoreUnsure,
)
from jetforce_sesh.options import OnFull, SlabOptions
from jetforce_sesh.stores import ABSENT, RedisStore, Stored, StoreSpec
from jetforce_sesh.testing import START, fingerprint_of
from tests.redis_support import PausingProxy, RedisServer

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
    ttl = client.pttl(f"{timed.prefix}:{{slab}}:r:{A.hex()}")
    assert 3_599_000 < ttl <= 3_600_000
    untimed = processes()
    store, _ = untimed.start()
    wait(store.save(A, b"a", ABSENT))
    assert -1 == client.pttl(f"{untimed.prefix}:{{slab}}:r:{A.hex()}")


def test_a_record_redis_dropped_is_told_as_expired(
    processes: Any, redis_server: RedisServer
) -> None:
    """As when its TTL ran out, or maxmemory's volatile-lru chose it."""
    one = processes(idle_timeout=3600)
    store, _ = one.start()
    expired: list[bytes] = []
    store.on_expired(expired.append)
    wait(store.save(A, b"a", ABSENT))
    redis_server.client().delete(f"{one.prefix}:{{slab}}:r:{A.hex()}")
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
    pending = store.load(A)
    # At once: failed before the reactor ran again, not after a time-out.
    assert pending.called
    with pytest.raises(StoreUnavailable) as raised:
        wait(pending)
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


def on_clock(url: str, prefix: str | None = None) -> tuple[RedisStore, Clock]:
    """A store whose connection's timers (the watchdog) run on a Clock, as
    does its time: the network is the real reactor's, the time the test's."""
    clock = Clock()
    clock.advance(START)
    stores = RedisStores(
        url, prefix=prefix or f"clock-{uuid.uuid4().hex[:8]}", reactor=clock
    )
    store = stores(StoreSpec("slab", SlabOptions(record_size=16), clock, 16, "raw"))
    wait(store.open())
    return store, clock


def close_on(store: RedisStore, clock: Clock) -> None:
    closing = store.close()
    clock.advance(0)  # the link tells its waiters on the next turn
    wait(closing)


def test_a_save_to_a_stalled_redis_fails_unsure_after_the_reply_timeout(
    own_redis: RedisServer,
) -> None:
    """Sent and not answered: the script may have run, so the save fails with
    StoreUnsure (a load with StoreUnavailable) at the first look of the
    watchdog once 1.2 s have gone by, and not before."""
    store, clock = on_clock(own_redis.url)
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    saving = store.save(A, b"a", ABSENT)
    loading = store.load(B)
    outcomes: list[object] = []
    saving.addBoth(outcomes.append)
    loading.addBoth(outcomes.append)
    clock.advance(1.0)  # looks at 0.25, 0.5, 0.75 and 1.0: under the limit
    sleep(0.1)
    assert [] == outcomes
    clock.advance(0.25)  # the look at 1.25 s drops the connection
    until(lambda: len(outcomes) == 2, "the watchdog never gave up")
    saved, loaded = (outcome.value for outcome in outcomes)  # type: ignore[attr-defined]
    assert StoreUnsure is type(saved)
    assert StoreUnavailable is type(loaded)
    assert str(saved).startswith(f"Redis at redis://127.0.0.1:{own_redis.port}/0: ")
    os.kill(own_redis.process.pid, signal.SIGCONT)
    close_on(store, clock)


def test_the_watchdog_keeps_an_eval_sent_again_after_noscript_in_sight(
    redis_server: RedisServer,
) -> None:
    """A save whose EVALSHA meets NOSCRIPT is sent again as EVAL; if that EVAL
    is never answered, the watchdog gives up on it 1.2 s after the save was
    first sent, even though a later load was answered meanwhile."""
    proxy = PausingProxy(redis_server.port)
    try:
        store, clock = on_clock(proxy.url)
        redis_server.client().script_flush()
        wait(store.load(A))  # the load script is known again, the save's is not
        proxy.hold = b"$4\r\nEVAL\r\n"
        saving = store.save(A, b"a", ABSENT)
        outcomes: list[object] = []
        saving.addBoth(outcomes.append)
        clock.advance(0.9)
        assert None is wait(store.load(B))  # answered after the save's NOSCRIPT
        until(lambda: bool(proxy.held), "the save's EVAL was never sent")
        assert proxy.held.startswith(b"*")  # the save's EVAL, held back
        assert [] == outcomes
        clock.advance(0.35)  # 1.25 s after the save was sent
        until(lambda: bool(outcomes), "the watchdog lost the EVAL")
        assert StoreUnsure is type(outcomes[0].value)  # type: ignore[attr-defined]
        proxy.hold = None
        proxy.held.clear()
        close_on(store, clock)
    finally:
        proxy.close()


def test_closing_while_redis_stalls_waits_for_the_watchdog_not_forever(
    own_redis: RedisServer,
) -> None:
    """A store closing with a script in flight waits for its answer, and the
    watchdog still ends that wait when Redis has stopped answering."""
    store, _ = Processes(own_redis).start()
    assert own_redis.process is not None
    os.kill(own_redis.process.pid, signal.SIGSTOP)
    saving = store.save(A, b"a", ABSENT)
    closing = store.close()
    # Not a time bound: a guard so that a close that waits forever fails here
    # instead of hanging the suite. The watchdog ends the wait well within it.
    closing.addTimeout(30, reactor)
    wait(closing)
    assert saving.called
    with pytest.raises(StoreUnsure):
        wait(saving)


def open_slab(
    url: str, prefix: str, name: str = "slab", **options: Any
) -> tuple[RedisStore, Clock]:
    clock = Clock()
    clock.advance(START)
    spec = StoreSpec(name, SlabOptions(record_size=16, **options), clock, 16, "raw")
    store = RedisStores(url, prefix=prefix, reactor=reactor)(spec)
    wait(store.open())
    return store, clock


def test_closing_one_slabs_store_twice_leaves_the_shared_link_up(
    redis_server: RedisServer,
) -> None:
    """The slabs of a capsule share one connection: a store closed a second
    time (a second Slab.close() in its grace period) does not take it away
    from the others, and both closes fire."""
    stores = RedisStores(
        redis_server.url, prefix=f"twice-{uuid.uuid4().hex[:6]}", reactor=reactor
    )
    clock = Clock()
    options = SlabOptions(record_size=16)
    first, second = (
        stores(StoreSpec(name, options, clock, 16, "raw")) for name in "ab"
    )
    wait(first.open())
    wait(second.open())
    closes = [first.close(), first.close()]
    for closing in closes:
        assert None is wait(closing)
    sleep(0.1)
    assert wait(second.save(A, b"b saves", ABSENT)) > ABSENT
    wait(second.close())
    assert None is stores.link._live()  # the last user gone, the link is


def test_a_colon_in_the_prefix_or_the_slab_name_never_joins_two_key_spaces(
    redis_server: RedisServer,
) -> None:
    """Prefix 'cap:a' with slab 'b', and prefix 'cap' with slab 'a:b': two
    capsules, two players' records."""
    prefix = f"cap{uuid.uuid4().hex[:6]}"
    one, _ = open_slab(redis_server.url, f"{prefix}:a", "b")
    two, _ = open_slab(redis_server.url, prefix, "a:b")
    wait(one.save(A, b"one's player", ABSENT))
    assert None is wait(two.load(A))
    wait(two.save(A, b"two's player", ABSENT))
    assert b"one's player" == wait(one.load(A)).data
    wait(one.close())
    wait(two.close())


@pytest.mark.parametrize(
    "prefix, name, said",
    [
        (
            "cap{x}",
            "slab",
            "the Redis key prefix must be a word without spaces or braces"
            " (got 'cap{x}')",
        ),
        (
            "cap",
            "a}b",
            "slab 'a}b' cannot be kept in Redis: a slab's name there must not be"
            " empty or hold braces, which mark Redis Cluster hash tags; give it"
            " another name",
        ),
    ],
)
def test_braces_are_refused_in_the_prefix_and_the_slab_name(
    prefix: str, name: str, said: str
) -> None:
    spec = StoreSpec(name, SlabOptions(record_size=16), Clock(), 16, "raw")
    with pytest.raises(ConfigError) as raised:
        RedisStores("redis://127.0.0.1/0", prefix=prefix, reactor=reactor)(spec)
    assert said == str(raised.value)


def record_ttl(server: RedisServer, store: RedisStore, key: bytes) -> int:
    ttl: int = server.client().pttl(f"{store.base}r:{key.hex()}")
    return ttl


def test_an_idle_timeout_switched_off_across_a_restart_leaves_no_ttl(
    redis_server: RedisServer,
) -> None:
    """Records made under --idle-timeout 60 keep no TTL once the capsule
    restarts with 0, used since or not; switched on again, they get the new
    timeout's."""
    prefix = f"retime-{uuid.uuid4().hex[:6]}"
    before, _ = open_slab(redis_server.url, prefix, idle_timeout=60)
    for player in (A, B):
        wait(before.save(player, b"x", ABSENT))
    wait(before.close())
    off, _ = open_slab(redis_server.url, prefix, idle_timeout=0)
    assert [-1, -1] == [record_ttl(redis_server, off, k) for k in (A, B)]
    version = wait(off.load(A)).version
    wait(off.save(A, b"y", version))
    assert -1 == record_ttl(redis_server, off, A)
    wait(off.close())
    on, _ = open_slab(redis_server.url, prefix, idle_timeout=3600)
    ttls = [record_ttl(redis_server, on, k) for k in (A, B)]
    assert all(3_590_000 < ttl <= 3_600_000 for ttl in ttls), ttls
    wait(on.close())


def test_after_redis_lost_its_data_a_second_process_starts_and_a_restart_too(
    redis_server: RedisServer,
) -> None:
    """FLUSHDB under a running capsule: it goes on serving, making its slab's
    keys again, meta included, so the keys it wrote are known for its own."""
    prefix = f"flushed-{uuid.uuid4().hex[:6]}"
    running, _ = open_slab(redis_server.url, prefix)
    wait(running.save(A, b"before", ABSENT))
    redis_server.client().flushdb()
    assert wait(running.save(B, b"after", ABSENT)) > ABSENT
    second, _ = open_slab(redis_server.url, prefix)
    assert b"after" == wait(second.load(B)).data
    wait(second.close())
    wait(running.close())
    again, _ = open_slab(redis_server.url, prefix)
    assert b"after" == wait(again.load(B)).data
    wait(again.close())


def test_a_sweep_that_fails_does_not_stop_the_sweeping(
    redis_server: RedisServer,
) -> None:
    """Something under the slab's keys that the store did not write (a member
    of `used` that is no key) is dropped with a warning, and the next sweep
    still drops the idle records."""
    prefix = f"sweep-{uuid.uuid4().hex[:6]}"
    store, clock = open_slab(redis_server.url, prefix, idle_timeout=10)
    expired: list[bytes] = []
    store.on_expired(expired.append)
    redis_server.client().zadd(f"{store.base}used", {"not a key": 0})
    clock.advance(5)  # the first sweep meets it
    wait(store.link.quiet())
    assert 0 == redis_server.client().zcard(f"{store.base}used")
    wait(store.save(A, b"a", ABSENT))
    clock.advance(10)  # A is idle; the sweep at 10 s drops it
    wait(store.link.quiet())
    assert [A] == expired
    wait(store.close())
