"""The memory store as a whole: it promises to answer at once, and it answers as
a model does under any sequence of calls, hooks that write to it included.

What every store does is pinned by ``tests/stores/test_contract_*.py``; what only
the memory store promises is pinned by the other ``tests/stores/test_memory_*.py``.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from jetforce_sesh import Conflict, RecordTooLarge, StoreFull, StoreUnavailable
from jetforce_sesh.options import OnFull
from jetforce_sesh.stores import (
    ABSENT,
    ANY_VERSION,
    MAX_VERSION,
    IImmediateSessionStore,
    MemoryStore,
    Stored,
    StoredRecord,
    StoreStats,
)
from jetforce_sesh.testing import START
from tests.stores.memory_support import A, B, all_records, make_store


def test_provides_the_immediate_store_contract() -> None:
    store, _ = make_store()
    assert verifyObject(IImmediateSessionStore, store)


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


def test_a_store_that_gave_its_last_version_refuses_saves_changing_nothing() -> None:
    """A version is never given twice, so past MAX_VERSION there is none left to
    give: saves are refused (the store cannot keep the record), and the store
    is as it was, hooks untold."""
    store, _ = make_store(capacity=1)
    store.restore_now(A, b"a", MAX_VERSION - 1, START)
    created: list[bytes] = []
    evicted: list[bytes] = []
    store.on_created(created.append)
    store.on_evicted(evicted.append)
    assert MAX_VERSION == store.save_now(A, b"a2", MAX_VERSION - 1)
    for key, expected in [(A, MAX_VERSION), (B, ABSENT)]:
        with pytest.raises(StoreUnavailable) as raised:
            store.save_now(key, b"b", expected)
        assert (
            f"slab 'test' has given every version up to {MAX_VERSION}: it keeps its"
            f" records but can save no more"
        ) == str(raised.value)
    assert ([Stored(b"a2", MAX_VERSION)], [], []) == (
        [store.peek_now(A)],
        created,
        evicted,
    )
    with pytest.raises(ValueError):
        store.restore_now(B, b"b", MAX_VERSION + 1, START)
