"""The memory store's sweep of idle records: when it runs, what it drops, batch
by batch, and hooks that write when a request meets the idle record first."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.logger import capturedLogs

from jetforce_sesh import Conflict, StoreFull
from jetforce_sesh.options import OnFull
from jetforce_sesh.stores import ABSENT, ANY_VERSION, MemoryStore
from jetforce_sesh.stores.memory import SWEEP_BATCH
from jetforce_sesh.testing import START
from tests.stores.memory_support import A, B, C, all_records, key, make_store

# -- the sweep --------------------------------------------------------------------


@pytest.mark.parametrize(
    "idle_timeout, interval", [(1, 1.0), (10, 5.0), (120, 60.0), (86400, 60.0)]
)
def test_the_sweep_runs_every_half_timeout_within_one_second_and_one_minute(
    idle_timeout: float, interval: float
) -> None:
    store, clock = make_store(idle_timeout=idle_timeout)
    store.open()
    assert [START + interval] == [call.getTime() for call in clock.getDelayedCalls()]
    store.close()
    assert [] == clock.getDelayedCalls()


def test_the_sweep_drops_a_record_exactly_at_its_timeout() -> None:
    store, clock = make_store(idle_timeout=10)
    expired: list[bytes] = []
    store.on_expired(expired.append)
    store.open()
    store.save_now(A, b"a", ABSENT)
    clock.advance(10 - 0.25)
    assert ([], 1) == (expired, len(store))
    clock.advance(0.25)
    assert ([A], 0) == (expired, len(store))
    store.close()
    assert [] == clock.getDelayedCalls()


def test_no_timeout_means_no_sweep() -> None:
    store, clock = make_store(idle_timeout=0)
    store.open()
    assert [] == clock.getDelayedCalls()
    store.save_now(A, b"a", ABSENT)
    clock.advance(10**9)
    assert 0 == store.sweep()
    assert b"a" == store.load_now(A).data  # type: ignore[union-attr]


def test_the_sweep_drops_a_batch_at_a_time_and_comes_back_for_the_rest() -> None:
    idle = 2 * SWEEP_BATCH + 5
    store, clock = make_store(capacity=idle + 1, record_size=1, idle_timeout=10)
    # Every hook call of one sweep runs after it, so the size of the store each
    # hook sees tells the sweeps apart.
    seen_by_hooks: Counter[int] = Counter()
    store.on_expired(lambda k: seen_by_hooks.update([len(store)]))
    store.open()
    for n in range(idle):
        store.save_now(key(n), b"", ABSENT)
    clock.advance(1)
    store.save_now(key("fresh"), b"", ABSENT)
    clock.advance(4)  # a sweep: nothing is idle yet
    assert {} == dict(seen_by_hooks)
    clock.advance(5)  # a sweep drops one batch; the next come straight after
    assert {idle - SWEEP_BATCH + 1: SWEEP_BATCH, 6: SWEEP_BATCH, 1: 5} == dict(
        seen_by_hooks
    )
    assert 1 == len(store)
    assert [START + 15] == [call.getTime() for call in clock.getDelayedCalls()]
    store.close()
    assert [] == clock.getDelayedCalls()


def test_a_sweep_called_by_hand_drops_one_batch_and_schedules_nothing() -> None:
    store, clock = make_store(capacity=SWEEP_BATCH + 3, record_size=1, idle_timeout=10)
    for n in range(SWEEP_BATCH + 3):
        store.save_now(key(n), b"", ABSENT)
    clock.advance(10)
    assert SWEEP_BATCH == store.sweep()
    assert [] == clock.getDelayedCalls()
    assert 3 == store.sweep()
    assert 0 == store.sweep()


def test_closing_between_two_batches_cancels_the_rest() -> None:
    store, clock = make_store(capacity=SWEEP_BATCH + 3, record_size=1, idle_timeout=10)
    closed: list[bytes] = []

    def close_once(k: bytes) -> None:
        if not closed:
            store.close()
        closed.append(k)

    store.on_expired(close_once)  # runs after the first batch, before the next
    store.open()
    for n in range(SWEEP_BATCH + 3):
        store.save_now(key(n), b"", ABSENT)
    clock.advance(5)
    clock.advance(5)  # the sweep drops a batch; the hooks close the store
    assert (SWEEP_BATCH, 3) == (len(closed), len(store))
    assert [] == clock.getDelayedCalls()


@settings(max_examples=200, deadline=None)
@given(
    idle_timeout=st.one_of(
        st.sampled_from([10.0, 3.3, 1 / 3, 0.1, 86400.0]),
        st.floats(0.001, 10**6),
    ),
    saved_after=st.floats(0, 10**4),
    nudge=st.sampled_from([-1e-6, -1e-7, 0.0, 1e-7, 1e-6]),
)
def test_peek_listing_and_sweep_agree_on_what_is_idle(
    idle_timeout: float, saved_after: float, nudge: float
) -> None:
    """At any instant, a record peek finds is listed and kept by the sweep, and
    one it does not find is neither: floats near the timeout round alike."""
    store, clock = make_store(idle_timeout=idle_timeout)
    clock.advance(saved_after)
    store.save_now(A, b"a", ABSENT)
    clock.advance(max(0.0, idle_timeout + nudge))
    alive = store.peek_now(A) is not None
    assert [A] * alive == [record.key for record in all_records(store)]
    assert int(not alive) == store.sweep()


# -- hooks that write, when a request meets the idle record first ------------------


@pytest.mark.parametrize("on_full", ["evict", "refuse"])
def test_an_expired_hook_saving_while_room_is_made_runs_after_the_save(
    on_full: OnFull,
) -> None:
    """The old slab ran the hook in the middle of making room: the hook took
    the freed slot and the save wrote past the end of the free list."""
    store, clock = make_store(capacity=2, idle_timeout=10, on_full=on_full)
    tomb = key("tomb")
    outcomes: list[object] = []

    def graveyard(gone: bytes) -> None:
        try:
            outcomes.append(store.save_now(tomb, b"gone", ANY_VERSION))
        except StoreFull as error:
            outcomes.append(type(error))

    store.on_expired(graveyard)
    store.save_now(A, b"a", ABSENT)
    clock.advance(5)
    store.save_now(B, b"b", ABSENT)
    clock.advance(6)
    assert 3 == store.save_now(C, b"c", ABSENT)
    if on_full == "evict":
        assert ([4], sorted([C, tomb])) == (outcomes, sorted_keys(store))
    else:
        assert ([StoreFull], sorted([B, C])) == (outcomes, sorted_keys(store))
    assert 2 == len(store)


def sorted_keys(store: MemoryStore) -> list[bytes]:
    listed = [record.key for record in all_records(store)]
    assert len(set(listed)) == len(listed)
    return sorted(listed)


@pytest.mark.parametrize(
    "hook_expects, outcome, data",
    [(ANY_VERSION, 3, b"welcome back"), (ABSENT, Conflict, b"new")],
)
def test_an_expired_hook_remaking_the_key_being_saved_leaves_it_once(
    hook_expects: int, outcome: object, data: bytes
) -> None:
    store, clock = make_store(capacity=4, idle_timeout=10)
    outcomes: list[object] = []

    def welcome(gone: bytes) -> None:
        try:
            outcomes.append(store.save_now(gone, b"welcome back", hook_expects))
        except Conflict as error:
            outcomes.append(type(error))

    store.on_expired(welcome)
    store.save_now(A, b"old", ABSENT)
    clock.advance(11)
    assert 2 == store.save_now(A, b"new", ABSENT)
    assert [outcome] == outcomes
    assert ([A], 1) == (sorted_keys(store), len(store))
    assert data == store.load_now(A).data  # type: ignore[union-attr]
    assert store.delete_now(A)
    assert (None, [], 0, False) == (
        store.load_now(A),
        sorted_keys(store),
        len(store),
        A in store,
    )


def test_a_hook_failure_is_logged_with_the_hook() -> None:
    store, _ = make_store(capacity=1)

    def broken(key: bytes) -> None:
        raise RuntimeError("hook bug")

    store.on_evicted(broken)
    with capturedLogs() as events:
        store.save_now(A, b"a", ABSENT)
        store.save_now(B, b"b", ABSENT)
    [event] = events
    assert (broken, RuntimeError) == (event["hook"], event["log_failure"].type)
