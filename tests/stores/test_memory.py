"""The memory store's own ways: its fixed memory, its index, its sweep, its pages.

What every store does is pinned by ``tests/stores/test_contract.py``; this file pins
what only the memory store promises, and checks it against a model under any
sequence of calls.
"""

from __future__ import annotations

import itertools
import math
import tracemalloc
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from jetforce_sesh import BadKey, ConfigError, Conflict, RecordTooLarge, StoreFull
from jetforce_sesh.options import OnFull
from jetforce_sesh.stores import (
    ABSENT,
    ANY_VERSION,
    IImmediateSessionStore,
    MemoryStore,
    Stored,
    StoredRecord,
    StoreStats,
)
from jetforce_sesh.stores.memory import SCAN_LIMIT, SWEEP_BATCH
from jetforce_sesh.testing import START, fingerprint_of


def key(name: object) -> bytes:
    return fingerprint_of(f"player {name}")


A, B, C = key("a"), key("b"), key("c")


def make_store(
    capacity: int = 3,
    *,
    idle_timeout: float = 0,
    on_full: OnFull = "evict",
    record_size: int = 16,
    hash_key: Callable[[bytes], int] = hash,
) -> tuple[MemoryStore, Clock]:
    clock = Clock()
    clock.advance(START)
    store = MemoryStore(
        "test",
        record_size=record_size,
        capacity=capacity,
        clock=clock,
        idle_timeout=idle_timeout,
        on_full=on_full,
        hash_key=hash_key,
    )
    return store, clock


def all_records(store: MemoryStore, limit: int = 256) -> list[StoredRecord]:
    found: list[StoredRecord] = []
    cursor: str | None = None
    while True:
        page = store.records_now(cursor, limit)
        found.extend(page.records)
        if page.cursor is None:
            return found
        cursor = page.cursor


def failure_type(deferred: Deferred[Any]) -> object:
    """The type of the error ``deferred`` failed with (at once), else None."""
    failures: list[Failure] = []
    deferred.addErrback(failures.append)
    return failures[0].type if failures else None


def test_provides_the_immediate_store_contract() -> None:
    store, _ = make_store()
    assert verifyObject(IImmediateSessionStore, store)


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


# -- the index --------------------------------------------------------------------

COLLIDING_HASHES = [
    pytest.param(lambda k: 0, id="all-in-cell-0"),
    pytest.param(lambda k: -1, id="all-in-the-last-cell-wrapping"),
    pytest.param(lambda k: k[0] % 3, id="three-runs"),
]


@pytest.mark.parametrize("hash_key", COLLIDING_HASHES)
def test_colliding_keys_stay_findable_through_deletes(
    hash_key: Callable[[bytes], int],
) -> None:
    """Backward-shift deletion keeps every probe run whole."""
    store, _ = make_store(capacity=12, hash_key=hash_key)
    players = [key(n) for n in range(12)]
    versions = {p: store.save_now(p, p[:4], ABSENT) for p in players}
    gone: set[bytes] = set()
    for n in (0, 5, 11, 6, 1, 10):
        assert store.delete_now(players[n])
        gone.add(players[n])
        for player in players:
            expected = None if player in gone else Stored(player[:4], versions[player])
            assert expected == store.peek_now(player)
            assert (player not in gone) == (player in store)
    for n in (5, 0):  # made again, into the holes
        versions[players[n]] = store.save_now(players[n], b"again", ABSENT)
        gone.discard(players[n])
    assert sorted(set(players) - gone) == sorted(r.key for r in all_records(store))
    assert Stored(b"again", versions[players[5]]) == store.load_now(players[5])


def test_a_prefix_of_a_colliding_key_finds_nothing() -> None:
    store, _ = make_store(hash_key=lambda k: 0)
    store.save_now(A, b"secret of a", ABSENT)
    for prefix in (A[:5], A[:1], b""):
        assert prefix not in store
        for call in (store.load_now, store.peek_now, store.delete_now):
            with pytest.raises(BadKey):
                call(prefix)
    assert Stored(b"secret of a", 1) == store.peek_now(A)
    assert StoreStats(in_use=1, capacity=3, creations=1) == store.stats()


def test_data_that_is_not_bytes_is_refused_before_any_change() -> None:
    store, _ = make_store()
    created: list[bytes] = []
    store.on_created(created.append)
    with pytest.raises(TypeError) as raised:
        store.save_now(A, "text", ABSENT)  # type: ignore[arg-type]
    assert (
        "record data must be bytes (got str): encode the record with the slab's codec"
    ) == str(raised.value)
    assert (0, None, [], []) == (
        len(store),
        store.peek_now(A),
        all_records(store),
        created,
    )
    assert TypeError is failure_type(store.save(A, "text", ABSENT))  # type: ignore[arg-type]


def test_a_bad_key_is_reported_before_a_record_too_large() -> None:
    store, _ = make_store(record_size=4)
    with pytest.raises(BadKey):
        store.save_now(A[:31], bytes(5), ABSENT)


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


# -- paging -----------------------------------------------------------------------


def test_a_sparse_store_pages_through_at_most_scan_limit_slots_a_page() -> None:
    """Pages may come back empty; each moves the cursor on, and all 3 records
    are found, each once."""
    capacity = 100_000
    store, _ = make_store(capacity=capacity, record_size=1)
    players = [n.to_bytes(32, "big") for n in range(capacity)]
    for player in players:
        store.save_now(player, b"", ABSENT)
    kept = [players[0], players[50_000], players[-1]]
    for player in players:
        if player not in kept:
            store.delete_now(player)
    found: list[bytes] = []
    starts: list[int] = []
    cursor: str | None = None
    while True:
        starts.append(0 if cursor is None else int(cursor))
        page = store.records_now(cursor)
        found.extend(record.key for record in page.records)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert kept == found
    assert math.ceil(capacity / SCAN_LIMIT) == len(starts)
    assert [SCAN_LIMIT] * (len(starts) - 1) == [
        b - a for a, b in itertools.pairwise(starts)
    ]


def test_a_page_stops_at_its_limit() -> None:
    store, _ = make_store(capacity=5)
    for n in range(5):
        store.save_now(key(n), b"", ABSENT)
    page = store.records_now(None, 2)
    assert (2, "2") == (len(page.records), page.cursor)


@pytest.mark.parametrize("cursor", ["x", "-1", "²", "1.5", "", "4"], ids=repr)
def test_a_cursor_the_store_did_not_give_is_refused(cursor: str) -> None:
    store, _ = make_store(capacity=3)
    with pytest.raises(ValueError) as raised:
        store.records_now(cursor)
    assert f"cursor {cursor!r} is not one this store gave" == str(raised.value)
    assert ValueError is failure_type(store.records(cursor))


@pytest.mark.parametrize("limit", [0, -1])
def test_a_page_of_no_records_is_refused(limit: int) -> None:
    """It would hand its own cursor back, and the listing would never end."""
    store, _ = make_store()
    with pytest.raises(ValueError) as raised:
        store.records_now(None, limit)
    assert f"limit must be 1 or more records (got {limit})" == str(raised.value)


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


# -- against a model --------------------------------------------------------------


@attrs.define
class Entry:
    data: bytes
    version: int
    last_used: float


@attrs.define
class Model:
    """What the memory store should hold: a dict in recency order (oldest first),
    the version counter, the counters, and hooks queued until an operation ends.
    Idle records stay until a request, the sweep or a new record meets them."""

    capacity: int
    idle_timeout: float
    on_full: OnFull
    record_size: int
    clock: Clock
    records: OrderedDict[bytes, Entry] = attrs.Factory(OrderedDict)
    version: int = 0
    stats: dict[str, int] = attrs.Factory(
        lambda: dict.fromkeys(
            [
                "hits",
                "misses",
                "creations",
                "evictions",
                "expirations",
                "refusals",
                "conflicts",
            ],
            0,
        )
    )
    hooks: dict[str, list[Callable[[bytes], None]]] = attrs.Factory(
        lambda: {"created": [], "evicted": [], "expired": []}
    )
    pending: deque[tuple[str, bytes]] = attrs.Factory(deque)
    running: bool = False

    def idle(self, entry: Entry) -> bool:
        return (
            self.idle_timeout > 0
            and self.clock.seconds() - entry.last_used >= self.idle_timeout
        )

    def run(self) -> None:
        if self.running:
            return
        self.running = True
        try:
            while self.pending:
                kind, k = self.pending.popleft()
                for hook in self.hooks[kind]:
                    hook(k)
        finally:
            self.running = False

    def queue(self, kind: str, k: bytes) -> None:
        self.pending.append((kind, k))

    def expire(self, k: bytes) -> None:
        del self.records[k]
        self.stats["expirations"] += 1
        self.queue("expired", k)

    def use(self, k: bytes) -> Entry | None:
        entry = self.records.get(k)
        if entry is None:
            return None
        if self.idle(entry):
            self.expire(k)
            return None
        entry.last_used = self.clock.seconds()
        self.records.move_to_end(k)
        return entry

    def conflict(self) -> None:
        self.stats["conflicts"] += 1
        raise Conflict()

    def load(self, k: bytes) -> Stored | None:
        entry = self.use(k)
        if entry is None:
            self.stats["misses"] += 1
            self.run()
            return None
        self.stats["hits"] += 1
        return Stored(entry.data, entry.version)

    def peek(self, k: bytes) -> Stored | None:
        entry = self.records.get(k)
        if entry is None or self.idle(entry):
            return None
        return Stored(entry.data, entry.version)

    def save(self, k: bytes, data: bytes, expected: int) -> int:
        if len(data) > self.record_size:
            raise RecordTooLarge()
        try:
            entry = self.use(k)
            if entry is None:
                if expected not in (ANY_VERSION, ABSENT):
                    self.conflict()
                self.make_room()
                entry = self.records[k] = Entry(b"", 0, self.clock.seconds())
                self.stats["creations"] += 1
                self.queue("created", k)
            elif expected not in (ANY_VERSION, entry.version):
                self.conflict()
            self.version += 1
            entry.data, entry.version = data, self.version
            return self.version
        finally:
            self.run()

    def make_room(self) -> None:
        if len(self.records) < self.capacity:
            return
        oldest = next(iter(self.records))
        if self.idle(self.records[oldest]):
            self.expire(oldest)
        elif self.on_full == "refuse":
            self.stats["refusals"] += 1
            raise StoreFull()
        else:
            del self.records[oldest]
            self.stats["evictions"] += 1
            self.queue("evicted", oldest)

    def delete(self, k: bytes, expected: int) -> bool:
        entry = self.records.get(k)
        if entry is None or self.idle(entry):
            if expected not in (ANY_VERSION, ABSENT):
                self.conflict()
            return False
        if expected not in (ANY_VERSION, entry.version):
            self.conflict()
        del self.records[k]
        return True

    def sweep(self) -> int:
        dropped = 0
        while self.records and self.idle(next(iter(self.records.values()))):
            self.expire(next(iter(self.records)))
            dropped += 1
        self.run()
        return dropped


class RunawayHooks(BaseException):
    """Hooks that keep feeding each other; not an Exception, so that the store
    does not log it and carry on."""


PLAYERS = [bytes([n]) * 32 for n in range(8)]
player = st.sampled_from(PLAYERS)
version_kind = st.sampled_from(["absent", "current", "stale", "any"])
#: A hook: when it runs, what it does, to which key (None: its own), naming
#: which version.
hook_spec = st.tuples(
    st.sampled_from(["created", "evicted", "expired"]),
    st.sampled_from(["save", "delete"]),
    st.one_of(st.none(), player),
    st.sampled_from([ABSENT, ANY_VERSION]),
)


def outcome_of(call: Callable[[], object]) -> object:
    """What a call gave: its result, or the kind of error it raised."""
    try:
        return call()
    except (Conflict, StoreFull, RecordTooLarge) as error:
        return type(error)


class MemoryStoreAgainstModel(RuleBasedStateMachine):
    """The store answers as the model does, under any sequence of calls,
    including hooks that write to the store they watch."""

    @initialize(
        capacity=st.integers(2, 5),
        on_full=st.sampled_from(["evict", "refuse"]),
        hooks=st.lists(hook_spec, max_size=2),
    )
    def make(
        self,
        capacity: int,
        on_full: OnFull,
        hooks: list[tuple[str, str, bytes | None, int]],
    ) -> None:
        self.store, self.clock = self.new_store(capacity, on_full)
        self.model = Model(capacity, 10, on_full, 8, self.clock)
        self.hook_log: tuple[list[object], list[object]] = ([], [])
        self.hooks_installed = 0
        for spec in hooks:
            self.install_hook(spec)

    def new_store(self, capacity: int, on_full: OnFull) -> tuple[MemoryStore, Clock]:
        """The store under test: 8-byte records, idle after 10 s."""
        # Four home cells make every probe run collide, and some wrap around
        # the end of the table: backward-shift deletion is exercised all along.
        return make_store(
            capacity,
            idle_timeout=10,
            on_full=on_full,
            record_size=8,
            hash_key=lambda k: k[-1] % 4 + 5,
        )

    def expected_version(self, k: bytes, kind: str, stale: int) -> int:
        entry = self.model.records.get(k)
        current = ABSENT if entry is None else entry.version
        return {
            "absent": ABSENT,
            "current": current,
            "stale": stale,
            "any": ANY_VERSION,
        }[kind]

    @rule(
        k=player,
        data=st.binary(max_size=10),
        kind=version_kind,
        stale=st.integers(1, 40),
    )
    def save(self, k: bytes, data: bytes, kind: str, stale: int) -> None:
        expected = self.expected_version(k, kind, stale)
        assert outcome_of(lambda: self.model.save(k, data, expected)) == outcome_of(
            lambda: self.store.save_now(k, data, expected)
        )

    @rule(k=player, data=st.binary(max_size=8))
    def save_what_was_read(self, k: bytes, data: bytes) -> None:
        """The usual request: save naming the version read (ABSENT if none)."""
        self.save(k, data, "current", 0)

    @rule(k=player)
    def load(self, k: bytes) -> None:
        assert self.model.load(k) == self.store.load_now(k)

    @rule(k=player)
    def peek(self, k: bytes) -> None:
        assert self.model.peek(k) == self.store.peek_now(k)

    @rule(k=player, kind=version_kind, stale=st.integers(1, 40))
    def delete(self, k: bytes, kind: str, stale: int) -> None:
        expected = self.expected_version(k, kind, stale)
        assert outcome_of(lambda: self.model.delete(k, expected)) == outcome_of(
            lambda: self.store.delete_now(k, expected)
        )

    @rule(seconds=st.sampled_from([0.5, 1, 4, 9.75, 10, 12]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def sweep(self) -> None:
        assert self.model.sweep() == self.store.sweep()

    @precondition(lambda self: self.hooks_installed < 2)
    @rule(spec=hook_spec)
    def install_hook(self, spec: tuple[str, str, bytes | None, int]) -> None:
        """A hook that saves or deletes its own key (None) or another one.

        Hooks that would feed each other for ever are left out: one that saves
        the key it was told was evicted (it evicts another, whose hook saves it
        again...) and one that saves when a record is made (with another that
        deletes it, each made record makes another).
        """
        kind, action, other, expected = spec
        if kind == "evicted" and action == "save" and other is None:
            other = PLAYERS[0]
        if kind == "created":
            action = "delete"
        self.hooks_installed += 1
        model, store = self.model, self.store
        Save = Callable[[bytes, bytes, int], int]
        Delete = Callable[[bytes, int], bool]
        Register = Callable[[Callable[[bytes], None]], None]
        sides: list[tuple[Save, Delete, Register, list[object]]] = [
            (model.save, model.delete, model.hooks[kind].append, self.hook_log[0]),
            (
                store.save_now,
                store.delete_now,
                getattr(store, f"on_{kind}"),
                self.hook_log[1],
            ),
        ]
        for save, delete, register, log in sides:

            def hook(
                k: bytes,
                save: Save = save,
                delete: Delete = delete,
                log: list[object] = log,
            ) -> None:
                if len(log) > 10_000:
                    raise RunawayHooks(f"hooks keep calling each other: {log[-4:]}")
                aim = k if other is None else other
                if action == "save":
                    done = outcome_of(lambda: save(aim, b"hook", expected))
                else:
                    done = outcome_of(lambda: delete(aim, expected))
                log.append((kind, k, done))

            register(hook)

    @invariant()
    def same_records(self) -> None:
        model, store = self.model, self.store
        assert len(model.records) == len(store) <= store.capacity
        for k in PLAYERS:
            assert model.peek(k) == store.peek_now(k)
        listed = all_records(store, limit=2)
        assert len({record.key for record in listed}) == len(listed)
        assert sorted(
            StoredRecord(k, e.data, e.version, e.last_used)
            for k, e in model.records.items()
            if not model.idle(e)
        ) == sorted(listed)

    @invariant()
    def same_counts_and_hook_calls(self) -> None:
        assert (
            StoreStats(
                in_use=len(self.model.records),
                capacity=self.model.capacity,
                **self.model.stats,
            )
            == self.store.stats()
        )
        assert self.hook_log[0] == self.hook_log[1]


TestMemoryStoreAgainstModel = MemoryStoreAgainstModel.TestCase
TestMemoryStoreAgainstModel.settings = settings(max_examples=200, deadline=None)
