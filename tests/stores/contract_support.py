"""The store contract's machinery: every test of ``tests/stores/test_contract_*.py``
runs against every store kind, the same tests, the same answers.

Each test gets a :class:`StoreMaker` for one store kind (the ``maker`` fixture of
``tests/stores/conftest.py``) and speaks to the store only through
:class:`~jetforce_sesh.ISessionStore`'s Deferreds, on a ``Clock``. A new kind of
store (SQLite, Redis) joins the suite as one more entry in :data:`STORE_KINDS`; if
its answers need more than the Clock to arrive (a thread, a socket), its maker
overrides :meth:`StoreMaker.settle`.

The stores here act on a call when it is made and answer it later (the memory
store at once, ``LaterStore`` half a second on), so tests that pin a moment
(alive at ``idle_timeout - EPSILON``, gone at ``idle_timeout``) make their calls
at that moment and settle the answers afterwards. Outcomes that depend on
whether the periodic sweep or a request met an idle record first are not pinned
here, only what both ways must give; ``tests/stores/test_memory_*.py`` pin the
rest for the memory store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Container
from itertools import count
from pathlib import Path
from typing import TypeVar

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure

from jetforce_sesh import memory_stores
from jetforce_sesh.options import OnFull, SlabOptions
from jetforce_sesh.stores import ISessionStore, StoredRecord, StoreSpec
from jetforce_sesh.stores.contract import StoreFactory
from jetforce_sesh.stores.redis.store import RedisStore, RedisStores
from jetforce_sesh.stores.sqlite.store import SQLiteStore
from jetforce_sesh.testing import START, fingerprint_of, later_stores
from tests.redis_support import Cluster, RedisServer

T = TypeVar("T")


def persistent_stores(directory: Path) -> StoreFactory:
    """Persistent stores, each in a file of its own: Hypothesis makes many
    stores in one test, and each must start empty."""
    made = count()

    def make(spec: StoreSpec) -> SQLiteStore:
        return SQLiteStore(spec, directory / f"store-{next(made)}.sqlite3")

    return make


#: Less than any store's answer takes: calls made this far apart are both made
#: before either answers.
EPSILON = 0.25


#: Makes the store of a restart: the same records' place as ``old``, for ``spec``.
Again = Callable[[ISessionStore, StoreSpec], ISessionStore]


class StoreMaker:
    """Makes open stores of one kind on Clocks, and waits for their answers.

    ``again``, for a kind whose records outlive its store, makes the store of a
    restart on what an earlier one kept (:meth:`restart`)."""

    def __init__(self, factory: StoreFactory, again: Again | None = None) -> None:
        self.factory = factory
        self.again = again
        self.clock = Clock()
        self.made: list[tuple[ISessionStore, Clock]] = []

    def make(
        self,
        *,
        capacity: int = 4,
        idle_timeout: float = 0.0,
        on_full: OnFull = "evict",
        record_size: int = 16,
        held: Container[bytes] = frozenset(),
    ) -> tuple[ISessionStore, Clock]:
        """An open store on a Clock of its own that starts at ``START``;
        ``held`` is the keys the slab tells it requests use."""
        self.clock = self.new_clock()
        self.clock.advance(START)
        options = SlabOptions(
            max_records=capacity,
            record_size=record_size,
            idle_timeout=idle_timeout,
            on_full=on_full,
        )
        spec = StoreSpec("test", options, self.clock, record_size, "raw", held)
        store = self.factory(spec)
        self.made.append((store, self.clock))
        self.settle(store.open())
        return store, self.clock

    def restart(
        self,
        store: ISessionStore,
        *,
        down: float = 60.0,
        capacity: int = 4,
        idle_timeout: float = 0.0,
        on_full: OnFull = "evict",
        record_size: int = 16,
    ) -> tuple[ISessionStore, Clock]:
        """Close ``store`` and open the store of a restart ``down`` seconds
        later, with these settings, on what it kept. Skips the test for a kind
        whose records go with its store."""
        if self.again is None:
            pytest.skip("nothing outlives a store of this kind")
        self.settle(store.close())
        before = self.clock.seconds()
        self.clock = self.new_clock()
        self.clock.advance(before + down)
        options = SlabOptions(
            max_records=capacity,
            record_size=record_size,
            idle_timeout=idle_timeout,
            on_full=on_full,
        )
        spec = StoreSpec("test", options, self.clock, record_size, "raw")
        again = self.again(store, spec)
        self.made.append((again, self.clock))
        self.settle(again.open())
        return again, self.clock

    def new_clock(self) -> Clock:
        return Clock()

    def real_time_passes(self, seconds: float) -> None:
        """Let ``seconds`` of real time pass, for what a store keeps by the
        real clock rather than the store's (Redis's TTLs); nothing here."""

    def settle(self, deferred: Deferred[T]) -> T:
        """The result of ``deferred``, moving the clock of the last store made
        from one delayed call to the next until it fires; raises its failure."""
        results: list[T | Failure] = []
        deferred.addBoth(results.append)
        for _ in range(10_000):
            if results:
                break
            calls = self.clock.getDelayedCalls()
            if not calls:
                raise AssertionError(f"{deferred!r} waits for nothing scheduled")
            soonest = min(call.getTime() for call in calls)
            self.clock.advance(max(0.0, soonest - self.clock.seconds()))
        else:
            raise AssertionError(f"{deferred!r} never fired")
        result = results[0]
        if isinstance(result, Failure):
            result.raiseException()
        return result

    def close_all(self) -> None:
        """Close every store made; each must leave nothing on its clock."""
        for store, clock in self.made:
            self.clock = clock
            self.settle(store.close())
            assert [] == clock.getDelayedCalls()


def sqlite_again(old: ISessionStore, spec: StoreSpec) -> ISessionStore:
    assert isinstance(old, SQLiteStore)
    return SQLiteStore(spec, old.path)


def redis_again(url: str) -> Again:
    """The store of a restart on what a Redis store kept at ``url``: a new
    process, so a new connection and a new name for its holds."""

    def again(old: ISessionStore, spec: StoreSpec) -> ISessionStore:
        assert isinstance(old, RedisStore)
        prefix = old.prefix
        return RedisStores(url, prefix=prefix, reactor=reactor)(spec)

    return again


def redis_stores(server: RedisServer) -> StoreFactory:
    """Redis stores on the session's server, each under a prefix of its own so
    that each starts empty, each on a connection of its own."""
    made = count()
    run = uuid.uuid4().hex[:8]

    def make(spec: StoreSpec) -> RedisStore:
        stores = RedisStores(
            server.url, prefix=f"contract-{run}-{next(made)}", reactor=reactor
        )
        return stores(spec)

    return make


def cluster_stores(cluster: Cluster) -> StoreFactory:
    """Redis stores on the session's cluster, as :func:`redis_stores` does on
    its server; they run on the asyncio reactor only (see
    ``tests/stores/test_redis_cluster.py``)."""
    made = count()
    run = uuid.uuid4().hex[:8]

    def make(spec: StoreSpec) -> RedisStore:
        stores = RedisStores(
            cluster.url, prefix=f"contract-{run}-{next(made)}", reactor=reactor
        )
        return stores(spec)

    return make


#: The mark of the tests that need Twisted's asyncio reactor (the cluster
#: store's): the suite runs them in a pytest of their own, started with
#: ``--reactor=asyncio`` by ``tests/stores/test_redis_cluster.py``.
ASYNCIO = pytest.mark.asyncio_reactor


class SettlingClock(Clock):
    """A Clock that, once it has run what was due, waits (on the real reactor)
    for the answers of the scripts that made Redis stores send: what a sweep
    found is known when ``advance`` returns, as with stores on the Clock alone."""

    def __init__(self, maker: StoreMaker) -> None:
        super().__init__()
        self.maker = maker

    def advance(self, amount: float) -> None:
        super().advance(amount)
        for store, _ in self.maker.made:
            if isinstance(store, RedisStore):
                while store.link.in_flight:
                    pytest_twisted.blockon(store.link.quiet())


class RedisMaker(StoreMaker):
    """Redis stores: answers come over a real socket, so settling waits on the
    reactor (which pytest-twisted runs) instead of moving the Clock."""

    def new_clock(self) -> Clock:
        return SettlingClock(self)

    def settle(self, deferred: Deferred[T]) -> T:
        result: T = pytest_twisted.blockon(deferred)
        return result

    def real_time_passes(self, seconds: float) -> None:
        pytest_twisted.blockon(deferLater(reactor, seconds, lambda: None))


#: Every store kind the suite runs against: how to make its maker, given the
#: test's request (for a directory of its own, or a server).
STORE_KINDS = [
    pytest.param(lambda request: StoreMaker(memory_stores), id="memory"),
    pytest.param(lambda request: StoreMaker(later_stores(0.5)), id="later"),
    pytest.param(
        lambda request: StoreMaker(
            persistent_stores(request.getfixturevalue("tmp_path")), sqlite_again
        ),
        id="persistent",
    ),
    pytest.param(
        lambda request: RedisMaker(
            redis_stores(request.getfixturevalue("redis_server")),
            redis_again(request.getfixturevalue("redis_server").url),
        ),
        id="redis",
    ),
    pytest.param(
        lambda request: RedisMaker(
            cluster_stores(request.getfixturevalue("redis_cluster")),
            redis_again(request.getfixturevalue("redis_cluster").url),
        ),
        id="cluster",
        marks=ASYNCIO,
    ),
]


def key(name: object) -> bytes:
    """A player's 32-byte key."""
    return fingerprint_of(f"player {name}")


def advance_to(clock: Clock, when: float) -> None:
    """Move ``clock`` on to ``when``, stopping at each delayed call on the way
    so that it runs at its own time (a sweep sees the time it was due at)."""
    assert when >= clock.seconds()
    while True:
        due = [call.getTime() for call in clock.getDelayedCalls()]
        soonest = min([time for time in due if time <= when], default=when)
        clock.advance(soonest - clock.seconds())
        if soonest == when:
            return


def listing(
    maker: StoreMaker, store: ISessionStore, limit: int = 256
) -> list[StoredRecord]:
    """Every record of every page, from the first page to the last."""
    found: list[StoredRecord] = []
    cursor: str | None = None
    while True:
        page = maker.settle(store.records(cursor, limit))
        assert len(page.records) <= limit
        found.extend(page.records)
        if page.cursor is None:
            return found
        cursor = page.cursor


def keys_listed(maker: StoreMaker, store: ISessionStore) -> list[bytes]:
    return sorted(record.key for record in listing(maker, store))


def conflict_message(player: bytes, now: str, expected: str) -> str:
    return (
        f"record {player[:4].hex()}… of slab 'test' is {now}, not {expected}: load"
        f" it again and redo the change"
    )


def refused_message(capacity: int) -> str:
    return (
        f"slab 'test' is full ({capacity} records) and refuses new players: raise"
        f" max_records or use on_full='evict'"
    )


A, B, C, D, E = (key(name) for name in "abcde")
