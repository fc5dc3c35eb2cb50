"""The store contract's hooks: on_created, on_evicted and on_expired are told the
key, a hook that raises is logged, and a hook that writes to the store it watches
leaves the store whole.

Run against every store kind (see ``tests/stores/contract_support.py``).
"""

from __future__ import annotations

from contextlib import suppress

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from jetforce_sesh import Conflict
from jetforce_sesh.stores import ABSENT, ANY_VERSION, ISessionStore, Stored, StoreStats
from tests.stores.contract_support import (
    A,
    B,
    C,
    D,
    StoreMaker,
    advance_to,
    key,
    listing,
)

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
