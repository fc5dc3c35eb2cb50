"""The store contract when room runs out or time passes: a full store evicts or
refuses, idle records expire (on use or by the sweep), and the counters count it.

Run against every store kind (see ``tests/stores/contract_support.py``).
"""

from __future__ import annotations

from contextlib import suppress

import pytest

from jetforce_sesh import Conflict, StoreFull
from jetforce_sesh.options import OnFull
from jetforce_sesh.stores import ABSENT, Stored, StoreStats
from tests.stores.contract_support import (
    EPSILON,
    A,
    B,
    C,
    D,
    E,
    StoreMaker,
    advance_to,
    keys_listed,
    listing,
    refused_message,
)

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
