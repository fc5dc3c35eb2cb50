"""The store contract across a restart with other settings, for the kinds
whose records outlive their store (SQLite, Redis): an idle timeout switched
off keeps every record from then on, one switched on counts from the last
use, a smaller max_records holds at most as many, and versions go on above
every one given before, whatever changed.

Run against every store kind (see ``tests/stores/contract_support.py``); the
memory kinds skip, and what the Redis store does not do yet is marked so.
"""

from __future__ import annotations

import pytest

from jetforce_sesh.stores import ABSENT, Stored
from tests.stores.contract_support import (
    A,
    B,
    C,
    D,
    E,
    StoreMaker,
    advance_to,
    keys_listed,
)

DAY = 86400.0


def test_an_idle_timeout_switched_off_keeps_every_record_from_then_on(
    maker: StoreMaker,
) -> None:
    """A record made under an idle timeout must not expire once it is 0: not
    at the restart, not long after, by the store's clock or by a real one (a
    Redis TTL left from before runs on Redis's own)."""
    store, _ = maker.make(idle_timeout=0.2)
    a = maker.settle(store.save(A, b"a", ABSENT))
    store, clock = maker.restart(store, down=0.1, idle_timeout=0)
    maker.real_time_passes(0.5)
    advance_to(clock, clock.seconds() + 30 * DAY)
    assert Stored(b"a", a) == maker.settle(store.load(A))
    assert [A] == keys_listed(maker, store)


def test_an_idle_timeout_switched_on_counts_from_the_last_use(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make(idle_timeout=0)
    maker.settle(store.save(A, b"a", ABSENT))
    maker.clock.advance(50)
    b = maker.settle(store.save(B, b"b", ABSENT))
    store, clock = maker.restart(store, down=60, idle_timeout=100)
    assert None is maker.settle(store.load(A))  # used 110 s ago
    assert Stored(b"b", b) == maker.settle(store.peek(B))  # 60 s ago
    advance_to(clock, clock.seconds() + 40)
    assert None is maker.settle(store.peek(B))


def test_a_smaller_max_records_holds_at_most_as_many_once_it_saves(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make(capacity=4)
    for key in (A, B, C, D):
        maker.settle(store.save(key, key[:1], ABSENT))
        maker.clock.advance(1)
    store, _ = maker.restart(store, capacity=2)
    maker.settle(store.save(E, b"e", ABSENT))
    assert 2 >= len(keys_listed(maker, store))
    assert E in keys_listed(maker, store)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"capacity": 8}, id="more-records"),
        pytest.param({"record_size": 32}, id="larger-records"),
        pytest.param({"idle_timeout": DAY}, id="idle-timeout-on"),
        pytest.param({"on_full": "refuse"}, id="refuse"),
    ],
)
def test_versions_go_on_above_every_one_given_whatever_changed(
    maker: StoreMaker, change: dict[str, object]
) -> None:
    """A record that still fits is kept as it was; the next version is above
    every one given before the restart, those of records deleted too."""
    store, _ = maker.make()
    a = maker.settle(store.save(A, b"a", ABSENT))
    b = maker.settle(store.save(B, b"b", ABSENT))
    assert maker.settle(store.delete(B, b))
    store, _ = maker.restart(store, **change)  # type: ignore[arg-type]
    assert Stored(b"a", a) == maker.settle(store.load(A))
    assert b < maker.settle(store.save(C, b"c", ABSENT))
