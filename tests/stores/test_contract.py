"""The store contract, run against every store: the same tests, the same answers.

Each test gets a :class:`StoreMaker` for one store kind and speaks to the store
only through :class:`~jetforce_sesh.ISessionStore`'s Deferreds, on a ``Clock``.
A new kind of store (SQLite, Redis) joins the suite as one more entry in
:data:`STORE_KINDS`; if its answers need more than the Clock to arrive (a thread,
a socket), its maker overrides :meth:`StoreMaker.settle`.

The stores here act on a call when it is made and answer it later (the memory
store at once, ``LaterStore`` half a second on), so tests that pin a moment
(alive at ``idle_timeout - EPSILON``, gone at ``idle_timeout``) make their calls
at that moment and settle the answers afterwards. Outcomes that depend on
whether the periodic sweep or a request met an idle record first are not pinned
here, only what both ways must give; ``tests/stores/test_memory.py`` pins the
rest for the memory store.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress
from itertools import count
from pathlib import Path
from random import Random
from typing import TypeVar

import pytest
import pytest_twisted
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from jetforce_sesh import BadKey, Conflict, RecordTooLarge, StoreFull, memory_stores
from jetforce_sesh.options import OnFull, SlabOptions
from jetforce_sesh.stores import (
    ABSENT,
    ANY_VERSION,
    ISessionStore,
    Stored,
    StoredRecord,
    StoreSpec,
    StoreStats,
)
from jetforce_sesh.stores.contract import StoreFactory
from jetforce_sesh.stores.redis.store import RedisStore, RedisStores
from jetforce_sesh.stores.sqlite.store import SQLiteStore
from jetforce_sesh.testing import START, fingerprint_of, later_stores
from tests.redis_support import RedisServer

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


class StoreMaker:
    """Makes open stores of one kind on Clocks, and waits for their answers."""

    def __init__(self, factory: StoreFactory) -> None:
        self.factory = factory
        self.clock = Clock()
        self.made: list[tuple[ISessionStore, Clock]] = []

    def make(
        self,
        *,
        capacity: int = 4,
        idle_timeout: float = 0.0,
        on_full: OnFull = "evict",
        record_size: int = 16,
    ) -> tuple[ISessionStore, Clock]:
        """An open store on a Clock of its own that starts at ``START``."""
        self.clock = self.new_clock()
        self.clock.advance(START)
        options = SlabOptions(
            max_records=capacity,
            record_size=record_size,
            idle_timeout=idle_timeout,
            on_full=on_full,
        )
        store = self.factory(StoreSpec("test", options, self.clock, record_size, "raw"))
        self.made.append((store, self.clock))
        self.settle(store.open())
        return store, self.clock

    def new_clock(self) -> Clock:
        return Clock()

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


#: Every store kind the suite runs against: how to make its maker, given the
#: test's request (for a directory of its own, or a server).
STORE_KINDS = [
    pytest.param(lambda request: StoreMaker(memory_stores), id="memory"),
    pytest.param(lambda request: StoreMaker(later_stores(0.5)), id="later"),
    pytest.param(
        lambda request: StoreMaker(
            persistent_stores(request.getfixturevalue("tmp_path"))
        ),
        id="persistent",
    ),
    pytest.param(
        lambda request: RedisMaker(
            redis_stores(request.getfixturevalue("redis_server"))
        ),
        id="redis",
    ),
]


@pytest.fixture(params=STORE_KINDS)
def maker(request: pytest.FixtureRequest) -> Iterator[StoreMaker]:
    kind: Callable[[pytest.FixtureRequest], StoreMaker] = request.param
    made = kind(request)
    yield made
    made.close_all()


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

# -- the interface --------------------------------------------------------------


def test_provides_the_store_contract(maker: StoreMaker) -> None:
    store, _ = maker.make(capacity=3, idle_timeout=60, on_full="refuse")
    assert verifyObject(ISessionStore, store)
    assert ("test", 16, 3, "refuse", 60.0) == (
        store.name,
        store.record_size,
        store.capacity,
        store.on_full,
        store.idle_timeout,
    )


# -- loading, saving, versions --------------------------------------------------


def test_a_missing_key_loads_and_peeks_as_none(maker: StoreMaker) -> None:
    store, _ = maker.make()
    assert None is maker.settle(store.load(A))
    assert None is maker.settle(store.peek(A))


def test_saving_as_absent_creates_the_record(maker: StoreMaker) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"first", ABSENT))
    assert version > ABSENT
    assert Stored(b"first", version) == maker.settle(store.load(A))
    assert Stored(b"first", version) == maker.settle(store.peek(A))


def test_versions_only_go_up_and_are_never_given_twice(maker: StoreMaker) -> None:
    """Also across a delete and the re-making of the same key: a save that
    names the old record's version conflicts with the new record."""
    store, _ = maker.make()
    given = [maker.settle(store.save(A, b"1", ABSENT))]
    given.append(maker.settle(store.save(A, b"2", given[-1])))
    given.append(maker.settle(store.save(B, b"3", ABSENT)))
    assert maker.settle(store.delete(A, given[1]))
    given.append(maker.settle(store.save(A, b"4", ABSENT)))
    given.append(maker.settle(store.save(A, b"5", ANY_VERSION)))
    assert sorted(set(given)) == given
    assert ABSENT < given[0]
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"old", given[1]))
    assert conflict_message(A, f"at version {given[4]}", f"at version {given[1]}") == (
        str(raised.value)
    )
    assert Stored(b"5", given[4]) == maker.settle(store.peek(A))


def test_a_save_naming_a_stale_version_conflicts_and_changes_nothing(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make()
    first = maker.settle(store.save(A, b"first", ABSENT))
    second = maker.settle(store.save(A, b"second", first))
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"lost update", first))
    assert conflict_message(A, f"at version {second}", f"at version {first}") == (
        str(raised.value)
    )
    assert Stored(b"second", second) == maker.settle(store.peek(A))


def test_saving_as_absent_over_a_record_conflicts(maker: StoreMaker) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"mine", ABSENT))
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"also new", ABSENT))
    assert conflict_message(A, f"at version {version}", "absent") == str(raised.value)
    assert Stored(b"mine", version) == maker.settle(store.peek(A))


def test_naming_a_version_of_a_missing_record_conflicts(maker: StoreMaker) -> None:
    store, _ = maker.make()
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"x", 7))
    assert conflict_message(A, "absent", "at version 7") == str(raised.value)
    assert None is maker.settle(store.peek(A))


def test_any_version_overwrites_or_creates(maker: StoreMaker) -> None:
    store, _ = maker.make()
    created = maker.settle(store.save(A, b"made", ANY_VERSION))
    overwritten = maker.settle(store.save(A, b"over", ANY_VERSION))
    assert ABSENT < created < overwritten
    assert Stored(b"over", overwritten) == maker.settle(store.peek(A))


def test_a_record_too_large_leaves_the_previous_one(maker: StoreMaker) -> None:
    store, _ = maker.make(record_size=16)
    version = maker.settle(store.save(A, b"kept", ABSENT))
    assert maker.settle(store.save(B, bytes(16), ABSENT)) > version
    with pytest.raises(RecordTooLarge) as raised:
        maker.settle(store.save(A, bytes(17), version))
    assert (
        "record of 17 bytes does not fit slab 'test' (16-byte slots): raise its"
        " record_size or store less"
    ) == str(raised.value)
    assert Stored(b"kept", version) == maker.settle(store.peek(A))
    with pytest.raises(RecordTooLarge):
        maker.settle(store.save(C, bytes(17), ABSENT))
    assert None is maker.settle(store.peek(C))


# -- deleting -------------------------------------------------------------------


def test_delete_naming_the_stored_version_forgets_the_record(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"a", ABSENT))
    assert maker.settle(store.delete(A, version))
    assert None is maker.settle(store.peek(A))
    assert not maker.settle(store.delete(A, ABSENT))
    assert not maker.settle(store.delete(A))
    assert [] == listing(maker, store)


def test_delete_naming_another_version_conflicts_and_keeps_it(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"a", ABSENT))
    for expected, text in [(version + 1, f"at version {version + 1}"), (0, "absent")]:
        with pytest.raises(Conflict) as raised:
            maker.settle(store.delete(A, expected))
        assert conflict_message(A, f"at version {version}", text) == str(raised.value)
    assert Stored(b"a", version) == maker.settle(store.peek(A))
    with pytest.raises(Conflict) as raised:
        maker.settle(store.delete(B, version))
    assert conflict_message(B, "absent", f"at version {version}") == str(raised.value)


def test_delete_with_any_version_forgets_whatever_is_there(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make(capacity=1, on_full="refuse")
    maker.settle(store.save(A, b"a", ABSENT))
    assert maker.settle(store.delete(A, ANY_VERSION))
    assert None is maker.settle(store.load(A))
    # The slot is free again: a new player is let in, nobody is evicted.
    maker.settle(store.save(B, b"b", ABSENT))
    assert 0 == store.stats().evictions


# -- a full store ---------------------------------------------------------------


def test_evict_drops_the_least_recently_used_record(maker: StoreMaker) -> None:
    """load and save count as use; peek and records() do not."""
    store, _ = maker.make(capacity=3)
    evicted: list[bytes] = []
    store.on_evicted(evicted.append)
    versions = {n: maker.settle(store.save(n, n[:1], ABSENT)) for n in (A, B, C)}
    maker.settle(store.load(A))  # B is now the least recently used
    maker.settle(store.peek(B))
    listing(maker, store)
    maker.settle(store.save(D, b"d", ABSENT))
    assert [B] == evicted
    maker.settle(store.save(C, b"c2", versions[C]))  # A is now the oldest
    maker.settle(store.peek(A))
    maker.settle(store.save(E, b"e", ABSENT))
    assert [B, A] == evicted
    assert sorted([C, D, E]) == keys_listed(maker, store)
    assert 2 == store.stats().evictions


def test_refuse_turns_new_players_away_and_keeps_existing_ones(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make(capacity=2, on_full="refuse")
    a = maker.settle(store.save(A, b"a", ABSENT))
    maker.settle(store.save(B, b"b", ABSENT))
    with pytest.raises(StoreFull) as raised:
        maker.settle(store.save(C, b"c", ABSENT))
    assert refused_message(2) == str(raised.value)
    assert None is maker.settle(store.peek(C))
    again = maker.settle(store.save(A, b"still mine", a))
    assert Stored(b"still mine", again) == maker.settle(store.load(A))
    assert sorted([A, B]) == keys_listed(maker, store)
    assert (1, 0) == (store.stats().refusals, store.stats().evictions)


@pytest.mark.parametrize("on_full", ["evict", "refuse"])
def test_an_idle_record_gives_its_slot_up_before_anyone_is_evicted(
    maker: StoreMaker, on_full: OnFull
) -> None:
    store, clock = maker.make(capacity=2, idle_timeout=10, on_full=on_full)
    expired: list[bytes] = []
    evicted: list[bytes] = []
    store.on_expired(expired.append)
    store.on_evicted(evicted.append)
    start = clock.seconds()
    maker.settle(store.save(A, b"a", ABSENT))
    advance_to(clock, start + 5)
    maker.settle(store.save(B, b"b", ABSENT))
    advance_to(clock, start + 10)  # A idle for 10 s, B for 5 s
    maker.settle(store.save(C, b"c", ABSENT))
    assert ([A], []) == (expired, evicted)
    assert sorted([B, C]) == keys_listed(maker, store)
    assert (1, 0, 0) == (
        store.stats().expirations,
        store.stats().evictions,
        store.stats().refusals,
    )


@pytest.mark.parametrize("loads_first", [True, False])
def test_a_returning_player_whose_record_went_idle_is_let_back_in(
    maker: StoreMaker, loads_first: bool
) -> None:
    """A full store that refuses newcomers frees the returning player's own idle
    slot and admits them (the old slab freed the slot, then refused them)."""
    store, clock = maker.make(capacity=2, idle_timeout=10, on_full="refuse")
    start = clock.seconds()
    old = maker.settle(store.save(A, b"a", ABSENT))
    advance_to(clock, start + 5)
    maker.settle(store.save(B, b"b", ABSENT))
    advance_to(clock, start + 11)  # A idle for 11 s, B for 6 s
    if loads_first:
        assert None is maker.settle(store.load(A))
    new = maker.settle(store.save(A, b"back", ABSENT))
    assert new > old
    assert Stored(b"back", new) == maker.settle(store.load(A))
    assert sorted([A, B]) == keys_listed(maker, store)
    assert (2, 0, 1) == (
        store.stats().in_use,
        store.stats().refusals,
        store.stats().expirations,
    )


# -- idle expiry ----------------------------------------------------------------


def test_a_record_expires_exactly_idle_timeout_after_its_last_load(
    maker: StoreMaker,
) -> None:
    store, clock = maker.make(idle_timeout=10)
    expired: list[bytes] = []
    store.on_expired(expired.append)
    last_use = clock.seconds()
    version = maker.settle(store.save(A, b"a", ABSENT))
    for _ in range(2):
        advance_to(clock, last_use + 10 - EPSILON)
        last_use = clock.seconds()
        assert Stored(b"a", version) == maker.settle(store.load(A))
    advance_to(clock, last_use + 10)
    assert None is maker.settle(store.load(A))
    assert [A] == expired
    assert (0, 1, 2, 1) == (
        store.stats().in_use,
        store.stats().expirations,
        store.stats().hits,
        store.stats().misses,
    )


def test_the_sweep_drops_an_idle_record_nobody_asks_for(maker: StoreMaker) -> None:
    """It is alive to peek and list until the timeout, gone from them at it, and
    dropped by the sweep (on_expired fires) within another timeout."""
    store, clock = maker.make(idle_timeout=10)
    expired: list[bytes] = []
    store.on_expired(expired.append)
    saved_at = clock.seconds()
    version = maker.settle(store.save(A, b"a", ABSENT))
    advance_to(clock, saved_at + 10 - EPSILON)
    before = (store.peek(A), store.records())
    advance_to(clock, saved_at + 10)
    after = (store.peek(A), store.records())
    assert Stored(b"a", version) == maker.settle(before[0])
    assert [A] == [record.key for record in maker.settle(before[1]).records]
    assert None is maker.settle(after[0])
    assert [] == maker.settle(after[1]).records
    advance_to(clock, saved_at + 20)
    assert [A] == expired
    assert (0, 1, 0) == (
        store.stats().in_use,
        store.stats().expirations,
        store.stats().misses,
    )


def test_close_leaves_nothing_scheduled(maker: StoreMaker) -> None:
    store, clock = maker.make(idle_timeout=10)
    maker.settle(store.save(A, b"a", ABSENT))
    assert [] != clock.getDelayedCalls()  # the sweep
    maker.settle(store.close())
    assert [] == clock.getDelayedCalls()


# -- hooks ----------------------------------------------------------------------


def record_hooks(store: ISessionStore) -> list[tuple[str, bytes]]:
    called: list[tuple[str, bytes]] = []
    store.on_created(lambda k: called.append(("created", k)))
    store.on_evicted(lambda k: called.append(("evicted", k)))
    store.on_expired(lambda k: called.append(("expired", k)))
    return called


def hook_scenario(maker: StoreMaker, store: ISessionStore, clock: Clock) -> None:
    """Create A, update it, make B (evicting A), let B go idle and load it."""
    version = maker.settle(store.save(A, b"a", ABSENT))
    maker.settle(store.save(A, b"a2", version))
    saved_at = clock.seconds()
    maker.settle(store.save(B, b"b", ABSENT))
    advance_to(clock, saved_at + 10)
    assert None is maker.settle(store.load(B))


HOOK_CALLS = [("created", A), ("evicted", A), ("created", B), ("expired", B)]


def test_hooks_are_told_the_key_created_evicted_or_expired(
    maker: StoreMaker,
) -> None:
    """on_created fires for a new record, not for an update."""
    store, clock = maker.make(capacity=1, idle_timeout=10)
    called = record_hooks(store)
    hook_scenario(maker, store, clock)
    assert HOOK_CALLS == called


def test_a_hook_that_raises_is_logged_and_changes_nothing(
    maker: StoreMaker,
) -> None:
    store, clock = maker.make(capacity=1, idle_timeout=10)

    def broken(key: bytes) -> None:
        raise RuntimeError("hook bug")

    for register in (store.on_created, store.on_evicted, store.on_expired):
        register(broken)
    called = record_hooks(store)
    with capturedLogs() as events:
        hook_scenario(maker, store, clock)
    failures = [event for event in events if "log_failure" in event]
    assert [f"store hook {broken!r} failed"] * 4 == [
        formatEvent(event) for event in failures
    ]
    assert ["hook bug"] * 4 == [str(event["log_failure"].value) for event in failures]
    assert HOOK_CALLS == called  # the hooks after the broken one still ran
    assert (
        StoreStats(
            in_use=0, capacity=1, misses=1, creations=2, evictions=1, expirations=1
        )
        == store.stats()
    )


def assert_consistent(maker: StoreMaker, store: ISessionStore) -> list[bytes]:
    """The store lists each key once, no more than it holds, and each loads."""
    listed = listing(maker, store)
    keys = [record.key for record in listed]
    assert sorted(set(keys)) == sorted(keys)
    assert len(keys) <= store.capacity
    for record in listed:
        assert Stored(record.data, record.version) == maker.settle(
            store.peek(record.key)
        )
    return sorted(keys)


def test_an_expired_hook_that_saves_while_the_store_makes_room(
    maker: StoreMaker,
) -> None:
    """The hook (a tombstone under another key) runs after the save that made
    room is done; it then evicts a record instead of corrupting the store."""
    store, clock = maker.make(capacity=2, idle_timeout=10)
    tomb = key("tomb")
    written: list[Deferred[int]] = []
    store.on_expired(
        lambda gone: written.append(store.save(tomb, b"gone " + gone[:1], ANY_VERSION))
    )
    evicted: list[bytes] = []
    store.on_evicted(evicted.append)
    start = clock.seconds()
    maker.settle(store.save(A, b"a", ABSENT))
    advance_to(clock, start + 5)
    maker.settle(store.save(B, b"b", ABSENT))
    advance_to(clock, start + 11)  # A idle, B not
    c = maker.settle(store.save(C, b"c", ABSENT))
    [tombstone] = [maker.settle(made) for made in written]
    assert [B] == evicted
    assert sorted([C, tomb]) == assert_consistent(maker, store)
    assert Stored(b"c", c) == maker.settle(store.load(C))
    assert Stored(b"gone " + A[:1], tombstone) == maker.settle(store.load(tomb))
    assert None is maker.settle(store.load(B))
    assert (2, 1, 1) == (
        store.stats().in_use,
        store.stats().evictions,
        store.stats().expirations,
    )


def test_an_expired_hook_that_remakes_the_expired_key_leaves_it_once(
    maker: StoreMaker,
) -> None:
    """Whether the sweep or the player's own save met the idle record first,
    the key ends up stored once, with the hook's data, and deleting it deletes
    it."""
    store, clock = maker.make(capacity=4, idle_timeout=10)
    written: list[Deferred[int]] = []
    store.on_expired(
        lambda gone: written.append(store.save(gone, b"welcome back", ANY_VERSION))
    )
    saved_at = clock.seconds()
    maker.settle(store.save(A, b"old", ABSENT))
    advance_to(clock, saved_at + 11)
    # Conflict if the sweep expired A first and the hook made it again.
    with suppress(Conflict):
        maker.settle(store.save(A, b"new", ABSENT))
    [version] = [maker.settle(made) for made in written]
    assert [A] == assert_consistent(maker, store)
    assert Stored(b"welcome back", version) == maker.settle(store.load(A))
    assert 1 == store.stats().in_use
    assert maker.settle(store.delete(A))
    assert None is maker.settle(store.load(A))
    assert [] == assert_consistent(maker, store)
    assert 0 == store.stats().in_use
    assert not maker.settle(store.delete(A))


def test_an_evicted_hook_that_saves_a_note_keeps_the_store_whole(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make(capacity=2)
    note = key("note")
    written: list[Deferred[int]] = []
    store.on_evicted(
        lambda gone: written.append(store.save(note, gone[:1], ANY_VERSION))
    )
    for player in (A, B, C):  # C evicts A; the note, new, evicts B
        maker.settle(store.save(player, b"p", ABSENT))
    made, updated = (maker.settle(write) for write in written)
    assert made < updated
    assert sorted([C, note]) == assert_consistent(maker, store)
    assert Stored(B[:1], updated) == maker.settle(store.peek(note))
    maker.settle(store.save(D, b"d", ABSENT))  # evicts C; the note is updated
    again = maker.settle(written[-1])
    assert updated < again
    assert sorted([D, note]) == assert_consistent(maker, store)
    assert Stored(C[:1], again) == maker.settle(store.peek(note))
    assert (3, 3, 2) == (
        len(written),
        store.stats().evictions,
        store.stats().in_use,
    )


def test_a_created_hook_that_deletes_the_new_record_really_deletes_it(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make(capacity=2)
    deleted: list[Deferred[bool]] = []
    store.on_created(lambda made: deleted.append(store.delete(made)))
    maker.settle(store.save(A, b"a", ABSENT))
    assert [True] == [maker.settle(done) for done in deleted]
    assert None is maker.settle(store.load(A))
    assert [] == assert_consistent(maker, store)
    assert (0, 1) == (store.stats().in_use, store.stats().creations)


# -- listing --------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 256])
def test_records_lists_every_live_record_once_across_pages(
    maker: StoreMaker, limit: int
) -> None:
    store, clock = maker.make(capacity=8)
    expected = []
    for n in range(5):
        when = clock.seconds()
        version = maker.settle(store.save(key(n), bytes([n]), ABSENT))
        expected.append(StoredRecord(key(n), bytes([n]), version, when))
    maker.settle(store.delete(key(2)))
    del expected[2]
    used_at = clock.seconds()
    maker.settle(store.load(key(3)))
    expected[2] = expected[2]._replace(last_used=used_at)
    listed = listing(maker, store, limit)
    assert sorted(expected) == sorted(listed)


def test_an_empty_store_lists_nothing(maker: StoreMaker) -> None:
    store, _ = maker.make()
    assert [] == listing(maker, store)


# Strategies of the listing test: what happens to the other records between two
# pages. Survivors are keys 0-7, the others 8-15.
others = st.integers(8, 15)
between_pages = st.lists(
    st.one_of(
        st.tuples(st.just("save"), others),
        st.tuples(st.just("delete"), others),
        st.tuples(st.just("load"), st.integers(0, 15)),
    ),
    max_size=4,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    survivors=st.sets(st.integers(0, 7), min_size=1),
    before=st.lists(others, unique=True),
    order=st.randoms(use_true_random=False),
    limit=st.integers(1, 3),
    meanwhile=st.lists(between_pages, max_size=8),
)
def test_a_record_living_through_a_listing_appears_in_it_once(
    maker: StoreMaker,
    survivors: set[int],
    before: list[int],
    order: Random,
    limit: int,
    meanwhile: list[list[tuple[str, int]]],
) -> None:
    """Other records are made, saved, loaded and deleted between the pages."""
    store, _ = maker.make(capacity=16)
    first = [*survivors, *before]
    order.shuffle(first)
    for n in first:
        maker.settle(store.save(key(n), b"v", ANY_VERSION))
    listed: list[bytes] = []
    cursor: str | None = None
    for page_number in range(10_000):
        page = maker.settle(store.records(cursor, limit))
        listed.extend(record.key for record in page.records)
        if page.cursor is None:
            break
        cursor = page.cursor
        for action, n in meanwhile[page_number] if page_number < len(meanwhile) else []:
            if action == "save":
                maker.settle(store.save(key(n), b"w", ANY_VERSION))
            elif action == "delete":
                maker.settle(store.delete(key(n)))
            else:
                maker.settle(store.load(key(n)))
    assert [1] * len(survivors) == [listed.count(key(n)) for n in sorted(survivors)]


# -- keys -----------------------------------------------------------------------

BAD_KEYS = [
    pytest.param(A[:31], "31 bytes", id="31-bytes"),
    pytest.param(A + b"\x00", "33 bytes", id="33-bytes"),
    pytest.param(A[:1], "1 bytes", id="1-byte"),
    pytest.param(b"", "0 bytes", id="empty"),
    pytest.param(A.hex(), "str", id="str"),
    pytest.param(bytearray(A), "bytearray", id="bytearray"),
]
CALLS = [
    pytest.param(lambda store, k: store.load(k), id="load"),
    pytest.param(lambda store, k: store.peek(k), id="peek"),
    pytest.param(lambda store, k: store.save(k, b"x", ANY_VERSION), id="save"),
    pytest.param(lambda store, k: store.save(k, b"x", ABSENT), id="save-new"),
    pytest.param(lambda store, k: store.delete(k), id="delete"),
]


@pytest.mark.parametrize("bad_key, got", BAD_KEYS)
@pytest.mark.parametrize("call", CALLS)
def test_a_key_that_is_not_32_bytes_is_refused_and_finds_nobody(
    maker: StoreMaker,
    bad_key: bytes,
    got: str,
    call: Callable[[ISessionStore, bytes], Deferred[object]],
) -> None:
    """Not even the record of the player whose key it is part of."""
    store, clock = maker.make()
    saved_at = clock.seconds()
    version = maker.settle(store.save(A, b"secret of a", ABSENT))
    before = store.stats()
    with pytest.raises(BadKey) as raised:
        maker.settle(call(store, bad_key))
    assert (
        f"keys are 32 bytes, a certificate fingerprint (got {got}): use"
        f" parse_fingerprint()"
    ) == str(raised.value)
    assert before == store.stats()
    assert [StoredRecord(A, b"secret of a", version, saved_at)] == listing(maker, store)


# -- counters -------------------------------------------------------------------


@pytest.mark.parametrize(
    "on_full, creations, evictions, refusals",
    [("evict", 3, 1, 0), ("refuse", 2, 0, 1)],
)
def test_stats_count_what_happened(
    maker: StoreMaker,
    on_full: OnFull,
    creations: int,
    evictions: int,
    refusals: int,
) -> None:
    store, clock = maker.make(capacity=2, idle_timeout=10, on_full=on_full)
    assert StoreStats(in_use=0, capacity=2) == store.stats()
    start = clock.seconds()
    maker.settle(store.save(A, b"a", ABSENT))
    maker.settle(store.save(B, b"b", ABSENT))
    maker.settle(store.load(A))  # hit; B is the oldest
    maker.settle(store.load(C))  # miss
    maker.settle(store.peek(A))  # neither
    with pytest.raises(Conflict):
        maker.settle(store.save(A, b"a", ABSENT))
    with suppress(StoreFull):
        maker.settle(store.save(C, b"c", ABSENT))  # evicts B, or is refused
    assert not maker.settle(store.delete(D))
    advance_to(clock, start + 100)  # everything idle
    for player in (A, B, C):
        assert None is maker.settle(store.load(player))  # A expires, then B or C
    assert (
        StoreStats(
            in_use=0,
            capacity=2,
            hits=1,
            misses=4,
            creations=creations,
            evictions=evictions,
            expirations=2,
            refusals=refusals,
            conflicts=1,
        )
        == store.stats()
    )
    maker.settle(store.close())
    assert [] == clock.getDelayedCalls()
