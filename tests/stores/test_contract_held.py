"""The store contract for records requests hold (``StoreSpec.held``): while a
key is held its record is in use, so neither the sweep, nor a use after its
idle timeout, nor an eviction drops it; let go, it is idle again as its last
load or save says.

Run against every store kind (see ``tests/stores/contract_support.py``).
"""

from __future__ import annotations

import pytest

from jetforce_sesh import StoreFull
from jetforce_sesh.stores import ABSENT, Stored
from tests.stores.contract_support import (
    A,
    B,
    C,
    D,
    StoreMaker,
    advance_to,
    keys_listed,
)


def test_a_held_record_outlives_its_idle_timeout_and_is_dropped_once_let_go(
    maker: StoreMaker,
) -> None:
    held: set[bytes] = set()
    store, clock = maker.make(idle_timeout=10, held=held)
    expired: list[bytes] = []
    store.on_expired(expired.append)
    start = clock.seconds()
    a = maker.settle(store.save(A, b"a", ABSENT))
    b = maker.settle(store.save(B, b"b", ABSENT))
    held.add(A)  # a request read A and is still answering
    advance_to(clock, start + 30)  # sweeps at 5, 10, 15...: B goes, A stays
    assert ([B], [A]) == (expired, keys_listed(maker, store))
    assert Stored(b"a", a) == maker.settle(store.peek(A))
    a2 = maker.settle(store.save(A, b"a2", a))  # its save names what it read
    assert a2 > b
    held.discard(A)  # the request is done
    advance_to(clock, start + 39)
    assert [A] == keys_listed(maker, store)  # 10 s from its save, not its read
    advance_to(clock, start + 45)
    assert ([B, A], []) == (expired, keys_listed(maker, store))


def test_a_held_record_loaded_after_its_idle_timeout_is_still_there(
    maker: StoreMaker,
) -> None:
    """A request that conflicted loads again, long after it first read."""
    held: set[bytes] = set()
    store, clock = maker.make(idle_timeout=100, held=held)
    start = clock.seconds()
    a = maker.settle(store.save(A, b"a", ABSENT))
    held.add(A)
    clock.advance(100)  # no sweep has run yet for a timeout this long
    assert Stored(b"a", a) == maker.settle(store.load(A))
    held.discard(A)
    advance_to(clock, start + 199)
    assert Stored(b"a", a) == maker.settle(store.peek(A))  # used at 100


def test_eviction_passes_over_held_records(maker: StoreMaker) -> None:
    held: set[bytes] = set()
    store, _ = maker.make(capacity=3, held=held)
    evicted: list[bytes] = []
    store.on_evicted(evicted.append)
    for key in (A, B, C):
        maker.settle(store.save(key, key[:1], ABSENT))
    held.add(A)  # the least recently used, but in use
    maker.settle(store.save(D, b"d", ABSENT))
    assert ([B], sorted([A, C, D])) == (evicted, keys_listed(maker, store))


def test_a_store_whose_every_record_is_held_refuses_a_new_one(
    maker: StoreMaker,
) -> None:
    held: set[bytes] = set()
    store, _ = maker.make(capacity=2, held=held)
    for key in (A, B):
        maker.settle(store.save(key, key[:1], ABSENT))
    held.update((A, B))
    with pytest.raises(StoreFull) as raised:
        maker.settle(store.save(C, b"c", ABSENT))
    assert (
        "slab 'test' is full (2 records) and every record is in use by a request:"
        " try again in a moment"
    ) == str(raised.value)
    held.discard(B)
    maker.settle(store.save(C, b"c", ABSENT))
    assert sorted([A, C]) == keys_listed(maker, store)
