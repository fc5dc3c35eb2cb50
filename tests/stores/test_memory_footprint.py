"""The memory store's fixed memory: reserved up front by a known formula, never
more however it is used, and the settings it refuses, each with the fix."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import ConfigError
from jetforce_sesh.stores import ANY_VERSION, MemoryStore
from tests.stores.memory_support import key, make_store

# -- memory -----------------------------------------------------------------------


def test_memory_is_reserved_up_front_by_a_known_formula() -> None:
    store, _ = make_store(capacity=100, record_size=64)
    # Each slot: the record, then key 32 + hash 8 + length 4 + last use 8 +
    # version 8 + two links 4 + 4; then 4 bytes an index cell, 256 cells (the
    # power of two at or above twice the capacity).
    assert 100 * (64 + 68) + 4 * 256 == store.reserved_bytes


@pytest.mark.parametrize(
    "capacity, cells", [(1, 8), (4, 8), (5, 16), (100, 256), (1000, 2048)]
)
def test_the_index_has_a_power_of_two_cells_at_least_twice_the_capacity(
    capacity: int, cells: int
) -> None:
    store, _ = make_store(capacity=capacity, record_size=1)
    assert capacity * 69 + 4 * cells == store.reserved_bytes


@settings(max_examples=30, deadline=None)
@given(record_size=st.integers(1, 512), capacity=st.integers(1, 3000))
def test_bytes_needed_is_what_a_store_reserves(record_size: int, capacity: int) -> None:
    store, _ = make_store(capacity=capacity, record_size=record_size)
    assert MemoryStore.bytes_needed(record_size, capacity) == store.reserved_bytes


def test_memory_never_grows_however_the_store_is_used() -> None:
    store, clock = make_store(capacity=100, record_size=64, idle_timeout=50)
    before = store.reserved_bytes

    def churn(rounds: int) -> None:
        for n in range(rounds):
            store.save_now(key(n % 400), bytes(n % 65), ANY_VERSION)
            store.load_now(key(n % 7))
            if n % 5 == 0:
                store.delete_now(key((n * 3) % 400))
            if n % 50 == 0:
                clock.advance(20)
                store.sweep()

    churn(1000)  # warm up whatever Python keeps around
    tracemalloc.start()
    try:
        held = tracemalloc.get_traced_memory()[0]
        churn(2000)
        grown = tracemalloc.get_traced_memory()[0] - held
    finally:
        tracemalloc.stop()
    assert before == store.reserved_bytes
    assert grown < 4096, f"{grown} bytes more after 2000 more saves"


# -- settings ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings_, message",
    [
        (
            {"capacity": 0},
            "max_records must be a whole number from 1 to 268435456 (got 0): use"
            " e.g. 10000 (--max-records 10000)",
        ),
        (
            {"capacity": True},
            "max_records must be a whole number from 1 to 268435456 (got True): use"
            " e.g. 10000 (--max-records 10000)",
        ),
        (
            {"record_size": 0},
            "record_size must be a whole number of bytes from 1 to 1048576 (got 0):"
            " use e.g. 256 (--record-size 256)",
        ),
        (
            {"record_size": 2**20 + 1},
            "record_size must be a whole number of bytes from 1 to 1048576 (got"
            " 1048577): use e.g. 256 (--record-size 256)",
        ),
        (
            {"idle_timeout": -1},
            "idle_timeout must be a number of seconds, 0 or more (got -1): use e.g."
            " 86400 (--idle-timeout 86400), or 0 to keep idle records",
        ),
        (
            {"idle_timeout": float("inf")},
            "idle_timeout must be a number of seconds, 0 or more (got inf): use e.g."
            " 86400 (--idle-timeout 86400), or 0 to keep idle records",
        ),
        (
            {"on_full": "drop"},
            "on_full must be 'evict' or 'refuse' (got 'drop'): 'evict' drops the"
            " least recently used record, 'refuse' turns new players away",
        ),
    ],
)
def test_bad_settings_are_refused_with_the_fix(
    settings_: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_store(**settings_)  # type: ignore[arg-type]
    assert message == str(raised.value)
