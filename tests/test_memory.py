"""The memory slab: bounded memory, LRU eviction, idle expiry, the store contract."""

from __future__ import annotations

from collections import OrderedDict

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from twisted.internet.task import Clock
from twisted.logger import capturedLogs
from zope.interface.verify import verifyObject

from jetforce_sesh import (
    ConfigError,
    IImmediateSessionStore,
    ISessionStore,
    MemorySlab,
    RecordTooLarge,
    StoreFull,
    StoreStats,
)
from jetforce_sesh.store import OnFull


def key(n: int) -> bytes:
    return n.to_bytes(32, "big")


def make_slab(
    capacity: int = 3,
    *,
    idle_timeout: float = 0,
    on_full: OnFull = "evict",
    record_size: int = 16,
) -> MemorySlab:
    return MemorySlab(
        "test",
        record_size=record_size,
        capacity=capacity,
        clock=Clock(),
        idle_timeout=idle_timeout,
        on_full=on_full,
    )


def test_provides_the_store_contract() -> None:
    slab = make_slab()
    assert verifyObject(ISessionStore, slab)
    assert verifyObject(IImmediateSessionStore, slab)


def test_memory_is_reserved_up_front_and_never_grows() -> None:
    slab = make_slab(capacity=100, record_size=64)
    before = slab.reserved_bytes
    for n in range(250):
        slab.save_now(key(n), bytes(64))
    assert before == slab.reserved_bytes
    # records, then key + hash + length + last use + two links, then the index
    assert slab.reserved_bytes == 100 * 64 + 100 * (32 + 8 + 4 + 8 + 4 + 4) + 256 * 4
    assert len(slab) == 100


def test_round_trip_and_replace() -> None:
    slab = make_slab()
    slab.save_now(key(1), b"first")
    slab.save_now(key(1), b"second, longer")
    slab.save_now(key(2), b"x")
    assert slab.load_now(key(1)) == b"second, longer"
    assert slab.load_now(key(2)) == b"x"
    assert slab.load_now(key(3)) is None
    assert (
        StoreStats(in_use=2, capacity=3, hits=2, misses=1, evictions=0, expirations=0)
        == slab.stats()
    )


def test_evicts_the_least_recently_used_record() -> None:
    slab = make_slab(capacity=3)
    evicted: list[bytes] = []
    slab.on_evicted(evicted.append)
    for n in (1, 2, 3):
        slab.save_now(key(n), b"v")
    slab.load_now(key(1))  # 2 is now the least recently used
    slab.save_now(key(4), b"v")
    slab.save_now(key(5), b"v")
    assert [key(2), key(3)] == evicted
    assert [key(5), key(4), key(1)] == [k for k, _ in slab.iter_records()]
    assert slab.stats().evictions == 2


def test_refuse_keeps_existing_players_and_turns_new_ones_away() -> None:
    slab = make_slab(capacity=2, on_full="refuse")
    slab.save_now(key(1), b"a")
    slab.save_now(key(2), b"b")
    assert not slab.admits_now(key(3))
    assert slab.admits_now(key(1))
    with pytest.raises(StoreFull) as raised:
        slab.save_now(key(3), b"c")
    assert str(raised.value) == (
        "slab 'test' is full (2 records) and refuses new players: raise"
        " max_records or use on_full='evict'"
    )
    slab.save_now(key(1), b"still mine")
    assert slab.load_now(key(1)) == b"still mine"
    assert key(3) not in slab


def test_too_large_record_leaves_the_previous_one() -> None:
    slab = make_slab(record_size=16)
    slab.save_now(key(1), b"kept")
    with pytest.raises(RecordTooLarge) as raised:
        slab.save_now(key(1), bytes(17))
    assert str(raised.value) == (
        "record of 17 bytes does not fit slab 'test' (16-byte slots): raise its"
        " record_size or store less"
    )
    assert slab.load_now(key(1)) == b"kept"


def test_idle_record_is_alive_until_its_timeout_then_gone() -> None:
    slab = make_slab(idle_timeout=100)
    clock = slab.clock
    assert isinstance(clock, Clock)
    slab.save_now(key(1), b"v")
    clock.advance(99)
    assert slab.load_now(key(1)) == b"v"  # use restarts the idle time
    clock.advance(99)
    assert key(1) in slab
    clock.advance(1)
    assert key(1) not in slab
    assert slab.load_now(key(1)) is None
    assert slab.stats().expirations == 1


def test_sweep_drops_idle_records_without_being_asked() -> None:
    slab = make_slab(capacity=10, idle_timeout=100)
    clock = slab.clock
    assert isinstance(clock, Clock)
    expired: list[bytes] = []
    slab.on_expired(expired.append)
    slab.start()
    slab.save_now(key(1), b"old")
    clock.advance(60)
    slab.save_now(key(2), b"new")
    assert len(clock.getDelayedCalls()) == 1  # one sweep for the whole slab
    clock.advance(50)  # key 1 idle 110 s, key 2 idle 50 s; sweep ran at 50, 100
    assert [key(1)] == expired
    assert len(slab) == 1
    clock.advance(50)
    assert [key(1), key(2)] == expired
    assert len(slab) == 0
    slab.stop()
    assert clock.getDelayedCalls() == []


def test_no_timeout_means_no_sweep() -> None:
    slab = make_slab(idle_timeout=0)
    slab.start()
    clock = slab.clock
    assert isinstance(clock, Clock)
    assert clock.getDelayedCalls() == []
    slab.save_now(key(1), b"v")
    clock.advance(10**9)
    assert slab.load_now(key(1)) == b"v"


def test_hooks_see_creation_but_not_updates() -> None:
    slab = make_slab()
    created: list[bytes] = []
    slab.on_created(created.append)
    slab.save_now(key(1), b"a")
    slab.save_now(key(1), b"b")
    slab.save_now(key(2), b"c")
    assert [key(1), key(2)] == created


def test_peek_and_iteration_do_not_count_as_use() -> None:
    slab = make_slab(capacity=2)
    slab.save_now(key(1), b"a")
    slab.save_now(key(2), b"b")
    assert slab.peek_now(key(1)) == b"a"
    assert [(key(2), b"b"), (key(1), b"a")] == list(slab.iter_records())
    slab.save_now(key(3), b"c")  # key 1 is still the least recently used
    assert key(1) not in slab
    assert slab.stats().hits == 0


def test_delete_forgets_and_frees_the_slot() -> None:
    slab = make_slab(capacity=1)
    slab.save_now(key(1), b"a")
    assert slab.delete_now(key(1))
    assert not slab.delete_now(key(1))
    slab.save_now(key(2), b"b")
    assert slab.stats().evictions == 0


def test_deferred_methods_answer_like_the_immediate_ones() -> None:
    slab = make_slab(capacity=1, on_full="refuse")
    results: list[object] = []
    slab.save(key(1), b"a").addCallback(results.append)
    slab.load(key(1)).addCallback(results.append)
    slab.admits(key(2)).addCallback(results.append)
    slab.records().addCallback(results.append)
    slab.save(key(2), b"b").addErrback(lambda f: results.append(f.type))
    slab.delete(key(1)).addCallback(results.append)
    assert [None, b"a", False, [(key(1), b"a")], StoreFull, True] == results


class SlabAgainstModel(RuleBasedStateMachine):
    """The slab behaves like an OrderedDict kept in LRU order, under any sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        # A hash with four values makes every probe run collide and wrap
        # around the table, so backward-shift deletion is exercised every time.
        self.slab = MemorySlab(
            "model",
            record_size=16,
            capacity=5,
            clock=self.clock,
            idle_timeout=10,
            hash_key=lambda key: key[-1] % 4 + 14,
        )
        self.model: OrderedDict[bytes, tuple[bytes, float]] = OrderedDict()

    def _expire_model(self) -> None:
        now = self.clock.seconds()
        for k in [k for k, (_, t) in self.model.items() if now - t >= 10]:
            del self.model[k]

    @rule(n=st.integers(0, 12), value=st.binary(max_size=8))
    def save(self, n: int, value: bytes) -> None:
        self._expire_model()
        self.slab.save_now(key(n), value)
        self.model[key(n)] = (value, self.clock.seconds())
        self.model.move_to_end(key(n))
        if len(self.model) > 5:
            self.model.popitem(last=False)

    @rule(n=st.integers(0, 12))
    def load(self, n: int) -> None:
        self._expire_model()
        expected = self.model.get(key(n))
        assert (expected[0] if expected else None) == self.slab.load_now(key(n))
        if expected:
            self.model[key(n)] = (expected[0], self.clock.seconds())
            self.model.move_to_end(key(n))

    @rule(n=st.integers(0, 12))
    def delete(self, n: int) -> None:
        self._expire_model()
        assert (self.model.pop(key(n), None) is not None) == self.slab.delete_now(
            key(n)
        )

    @rule(seconds=st.integers(0, 12))
    def wait(self, seconds: int) -> None:
        self.clock.advance(seconds)

    @invariant()
    def same_records_in_same_order(self) -> None:
        self._expire_model()
        expected = [(k, v) for k, (v, _) in reversed(self.model.items())]
        assert expected == list(self.slab.iter_records())


TestSlabAgainstModel = SlabAgainstModel.TestCase
TestSlabAgainstModel.settings = settings(max_examples=150, deadline=None)


def test_a_hook_that_raises_is_logged_and_changes_nothing() -> None:
    slab = make_slab(capacity=1, idle_timeout=10)
    clock = slab.clock
    assert isinstance(clock, Clock)

    def broken(key: bytes) -> None:
        raise RuntimeError("hook bug")

    for register in (slab.on_created, slab.on_evicted, slab.on_expired):
        register(broken)
    slab.start()
    with capturedLogs() as events:
        slab.save_now(key(1), b"a")  # created
        slab.save_now(key(2), b"b")  # evicts 1
        clock.advance(10)  # the sweep expires 2
        slab.save_now(key(3), b"c")
        clock.advance(10)  # and, still running, expires 3
    # created 1; evicted 1, created 2; expired 2; created 3; expired 3
    assert 6 == len([e for e in events if e.get("log_failure")])
    assert (0, 1, 2) == (len(slab), slab.stats().evictions, slab.stats().expirations)
    slab.stop()


def test_bad_sizes_are_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        make_slab(capacity=0)
    assert (
        "max_records must be a whole number from 1 to 268435456 (got 0): use e.g."
        " 10000 (--max-records 10000)"
    ) == str(raised.value)


def test_keys_must_be_fingerprints() -> None:
    slab = make_slab()
    with pytest.raises(ValueError) as raised:
        slab.save_now(b"short", b"v")
    assert (
        "keys are 32-byte certificate fingerprints (got 5 bytes): use"
        " parse_fingerprint()"
    ) == str(raised.value)
    assert 0 == len(slab)


def test_hooks_may_write_to_the_slab_they_watch() -> None:
    slab = make_slab(capacity=2)

    def note(evicted: bytes) -> None:
        slab.save_now(key(99), b"evicted " + evicted[-1:])

    slab.on_evicted(note)
    slab.save_now(key(1), b"a")
    slab.save_now(key(2), b"b")
    slab.save_now(key(3), b"c")  # evicts 1; the note evicts 2
    assert [(key(99), b"evicted \x02"), (key(3), b"c")] == list(slab.iter_records())
    slab.save_now(key(4), b"d")  # the slab still works: evicts 3, note updated
    assert [(key(99), b"evicted \x03"), (key(4), b"d")] == list(slab.iter_records())
    assert 3 == slab.stats().evictions


def test_iteration_shows_the_records_as_they_were_when_it_began() -> None:
    slab = make_slab(capacity=2)
    slab.save_now(key(1), b"a")
    slab.save_now(key(2), b"b")
    seen = []
    for k, v in slab.iter_records():
        seen.append((k, v))
        slab.delete_now(key(1))
        slab.save_now(key(3), b"c")
    assert [(key(2), b"b"), (key(1), b"a")] == seen


def test_an_idle_record_gives_its_slot_up_before_anyone_is_refused() -> None:
    slab = make_slab(capacity=1, idle_timeout=10, on_full="refuse")
    clock = slab.clock
    assert isinstance(clock, Clock)
    slab.save_now(key(1), b"a")
    clock.advance(10)
    assert slab.admits_now(key(2))
    slab.save_now(key(2), b"b")
    assert (1, 0, 1) == (len(slab), slab.stats().evictions, slab.stats().expirations)


def test_an_idle_record_is_expired_not_evicted() -> None:
    slab = make_slab(capacity=1, idle_timeout=10)
    clock = slab.clock
    assert isinstance(clock, Clock)
    expired: list[bytes] = []
    evicted: list[bytes] = []
    slab.on_expired(expired.append)
    slab.on_evicted(evicted.append)
    slab.save_now(key(1), b"a")
    clock.advance(10)
    slab.save_now(key(2), b"b")
    assert ([key(1)], []) == (expired, evicted)
