"""The rate limits counted in a store several processes share, on a Clock: two
limiters over one store stand for two processes over one Redis."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from jetforce.app.base import Response
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.ops.ratelimit import (
    SharedCertificateRateLimiter,
    SharedRateLimiter,
)
from jetforce_sesh.stores.contract import ISessionStore, StoreSpec
from jetforce_sesh.stores.memory import MemoryStore, memory_stores


@attrs.frozen
class Asking:
    environ: dict[str, str]


def by(address: str = "192.0.2.1", cert: str = "SHA256:" + "AB" * 32) -> Any:
    return Asking({"REMOTE_ADDR": address, "TLS_CLIENT_HASH": cert})


def answer(limiter: SharedRateLimiter, request: Any) -> tuple[int, str] | None:
    got = limiter.check(request)
    if isinstance(got, Deferred):
        found: list[Response | None] = []
        got.addCallback(found.append)
        assert found, "the memory store answers at once"
        got = found[0]
    return None if got is None else (got.status, got.meta)


class Shared:
    """One store per slab name, whoever opens it: one Redis for all."""

    def __init__(self) -> None:
        self.stores: dict[str, MemoryStore] = {}

    def __call__(self, spec: StoreSpec) -> ISessionStore:
        if spec.name not in self.stores:
            self.stores[spec.name] = memory_stores(spec)
        return self.stores[spec.name]


def pair(
    rate: str, kind: type[SharedRateLimiter] = SharedRateLimiter
) -> tuple[Clock, Shared, list[SharedRateLimiter]]:
    clock, shared = Clock(), Shared()
    limiters = [kind(rate, clock) for _ in range(2)]
    for limiter in limiters:
        limiter.counts_kept.open(shared)
    return clock, shared, limiters


def test_two_processes_let_through_n_in_all_and_the_next_waits() -> None:
    clock, _, limiters = pair("3/1m")
    clock.advance(10)
    answers = [answer(limiters[n % 2], by()) for n in range(5)]
    assert [None, None, None, (44, "60"), (44, "60")] == answers
    clock.advance(59)
    assert (44, "1") == answer(limiters[0], by())
    clock.advance(1)
    assert answer(limiters[1], by()) is None  # a new window


def test_each_address_and_each_certificate_counts_alone() -> None:
    _, _, limiters = pair("1/1h")
    assert answer(limiters[0], by("192.0.2.1")) is None
    assert answer(limiters[1], by("192.0.2.2")) is None
    assert (44, "3600") == answer(limiters[1], by("192.0.2.1"))
    # An IPv6 client counts as its /64.
    assert answer(limiters[0], by("2001:db8::1")) is None
    assert (44, "3600") == answer(limiters[1], by("2001:db8::ffff"))
    _, _, certs = pair("1/1h", SharedCertificateRateLimiter)
    assert answer(certs[0], by(cert="SHA256:" + "01" * 32)) is None
    assert answer(certs[1], by(cert="SHA256:" + "02" * 32)) is None
    assert (44, "3600") == answer(certs[1], by(cert="SHA256:" + "01" * 32))
    assert answer(certs[1], Asking({})) is None  # no certificate: not counted


def test_a_key_over_its_rate_costs_no_store_round_trip_until_its_window_ends() -> None:
    clock, shared, limiters = pair("1/1m")
    assert answer(limiters[0], by()) is None
    assert (44, "60") == answer(limiters[0], by())
    (store,) = shared.stores.values()
    before = store.stats()
    for _ in range(100):
        assert (44, "60") == answer(limiters[0], by())
    assert before == store.stats()
    clock.advance(60)
    assert answer(limiters[0], by()) is None


class Racing:
    """A store whose saves of a count meet another process's save first, for
    the first ``times`` saves: the limiter counts again, and exactly."""

    def __init__(self, inner: MemoryStore, other: SharedRateLimiter, times: int):
        self.inner = inner
        self.other = other
        self.times = times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        if self.times:
            self.times -= 1
            assert answer(self.other, by()) is None  # the other counts first
        return self.inner.save(key, data, expected)


def test_a_count_that_meets_another_processes_save_counts_again() -> None:
    _, _, limiters = pair("3/1m")
    first = limiters[0].counts_kept.slab
    racing = Racing(first.store, limiters[1], 2)  # type: ignore[arg-type]
    first.opened.store = racing  # type: ignore[misc]
    assert answer(limiters[0], by()) is None  # counted 3rd, after the other's 2
    assert (44, "60") == answer(limiters[1], by())


def test_a_store_that_is_away_serves_uncounted_and_says_so_once() -> None:
    from twisted.logger import globalLogPublisher

    said: list[str] = []

    def observe(event: dict[str, Any]) -> None:
        if event.get("log_namespace") == "jetforce_sesh.ops.ratelimit":
            from twisted.logger import formatEvent

            said.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    try:
        _, _, limiters = pair("1/1m")
        slab = limiters[0].counts_kept.slab
        away = StoreUnavailable("the Redis does not answer")
        slab.opened.store.peek = lambda key: fail(away)  # type: ignore[method-assign]
        assert [None, None, None] == [answer(limiters[0], by()) for _ in range(3)]
    finally:
        globalLogPublisher.removeObserver(observe)
    assert [
        "--rate-limit: cannot count requests in the store (the Redis does not"
        " answer); serving them uncounted until it answers"
    ] == said


class Held:
    """A store whose every peek and save waits until the test runs it (on the
    store under it, at that moment, as a Redis runs commands in the order it
    gets them): counts that overlap, across processes and within one."""

    def __init__(self, inner: MemoryStore) -> None:
        self.inner = inner
        self.held: list[tuple[str, Callable[[], Deferred[Any]], Deferred[Any]]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _hold(self, what: str, run: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        answer: Deferred[Any] = Deferred()
        self.held.append((what, run, answer))
        return answer

    def peek(self, key: bytes) -> Deferred[Any]:
        return self._hold("peek", lambda: self.inner.peek(key))

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        return self._hold("save", lambda: self.inner.save(key, data, expected))

    def run(self, index: int = 0) -> str:
        what, run, answer = self.held.pop(index)
        run().chainDeferred(answer)
        return what

    def run_all(self) -> list[str]:
        ran = []
        while self.held:
            ran.append(self.run())
        return ran


def held(limiters: list[SharedRateLimiter]) -> Held:
    """Hold every store operation of ``limiters`` (over one store)."""
    assert 1 == len({id(each.counts_kept.slab.store) for each in limiters})
    inner = limiters[0].counts_kept.slab.store
    holding = Held(inner)  # type: ignore[arg-type]
    for each in limiters:
        each.counts_kept.slab.opened.store = holding  # type: ignore[misc]
    return holding


def answers(got: list[Any]) -> list[tuple[int, str] | None]:
    """What each ``check`` answered, once every Deferred fired."""
    found: list[tuple[int, str] | None] = []
    for each in got:
        if isinstance(each, Deferred):
            fired: list[Any] = []
            each.addCallback(fired.append)
            assert fired, "still waiting"
            each = fired[0]
        found.append(None if each is None else (each.status, each.meta))
    return found


def test_a_process_counting_alone_saves_on_the_version_it_saw_without_reading() -> None:
    """The first count reads the record; every later one, while no other
    process counted, is one round trip: the save, naming the version this
    process saved last."""
    _, _, limiters = pair("5/1m")
    holding = held(limiters)
    ran = []
    for _ in range(5):
        got = limiters[0].check(by())
        ran += holding.run_all()
        assert [None] == answers([got])
    assert ["peek", "save"] + ["save"] * 4 == ran
    got = limiters[0].check(by())
    assert [] == holding.run_all()  # over, known without asking the store
    assert [(44, "60")] == answers([got])


def test_a_count_another_process_moved_is_read_again_and_counted_exactly() -> None:
    _, _, limiters = pair("3/1m")
    holding = held(limiters)
    got = [limiters[0].check(by())]
    assert ["peek", "save"] == holding.run_all()
    got.append(limiters[1].check(by()))
    assert ["peek", "save"] == holding.run_all()
    got.append(limiters[0].check(by()))
    # The save on the version seen meets the other's: read, then save again.
    assert ["save", "peek", "save"] == holding.run_all()
    got.append(limiters[1].check(by()))
    assert ["save", "peek"] == holding.run_all()  # the 4th: over
    assert [None, None, None, (44, "60")] == answers(got)


def test_where_others_count_the_same_keys_most_of_the_time_it_reads_first() -> None:
    """Two processes taking turns on one key: saving first would meet the
    other's save every time; after a few, each reads first, two round trips a
    count rather than three."""
    _, _, limiters = pair("1000/1m")
    holding = held(limiters)
    ran: list[list[str]] = []
    for n in range(40):
        got = limiters[n % 2].check(by())
        ran.append(holding.run_all())
        assert [None] == answers([got])
    assert [["peek", "save"]] * 10 == ran[-10:]


def test_the_requests_waiting_on_a_key_are_counted_by_one_save() -> None:
    """While one count of a key is on its way to the store, the requests of
    that key that arrive wait, and the next save counts them together: as
    many let through as the window has room for, in the order they came, the
    rest refused."""
    _, _, limiters = pair("4/1m")
    holding = held(limiters)
    got = [limiters[0].check(by())]
    got += [limiters[0].check(by()) for _ in range(5)]
    assert ["peek", "save", "save"] == holding.run_all()
    assert [None, None, None, None, (44, "60"), (44, "60")] == answers(got)
    other = limiters[1].check(by())
    assert ["peek"] == holding.run_all()
    assert [(44, "60")] == answers([other])  # 4 in all: over


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """A rate, and steps: (process, key) to ask for a count, or (-1, n) to
    run the n-th store operation held."""
    rate = draw(st.integers(1, 6))
    steps = draw(
        st.lists(
            st.one_of(
                st.tuples(st.just(-1), st.integers(0, 3)),
                st.tuples(st.integers(0, 2), st.integers(0, 1)),
            ),
            min_size=4,
            max_size=60,
        )
    )
    return rate, steps


@settings(max_examples=300, deadline=None)
@given(interleavings())
def test_three_processes_let_through_exactly_n_per_key_however_counts_interleave(
    case: tuple[int, list[tuple[int, int]]],
) -> None:
    """Against the plainest model: in one window, of the requests of a key,
    exactly min(asked, N) are let through, whichever processes they reach
    and in whatever order the store runs their reads and saves; and none is
    let through before its count is saved."""
    rate, steps = case
    clock, shared = Clock(), Shared()
    limiters = [SharedRateLimiter(f"{rate}/1m", clock) for _ in range(3)]
    for limiter in limiters:
        limiter.counts_kept.open(shared)
    holding = held(limiters)
    addresses = ["192.0.2.1", "192.0.2.2"]
    slab = limiters[0].counts_kept.slab
    digests = {
        a: hashlib.sha256(f"--rate-limit {a}".encode()).digest() for a in addresses
    }
    asked: list[tuple[str, Any]] = []
    #: Each request let through, and the count stored for its key as it was.
    let: list[tuple[str, int]] = []

    def stored(address: str) -> int:
        found = holding.inner.peek_now(digests[address])
        return 0 if found is None else slab.codec.decode(found.data).count

    def through(result: Any, address: str) -> Any:
        if result is None:
            let.append((address, stored(address)))
        return result

    for process, n in steps:
        if process >= 0:
            got = limiters[process].check(by(addresses[n]))
            if isinstance(got, Deferred):
                got.addCallback(through, addresses[n])
            asked.append((addresses[n], got))
        elif holding.held:
            holding.run(n % len(holding.held))
    holding.run_all()
    found = answers([got for _, got in asked])
    for address in addresses:
        mine = [a for (key, _), a in zip(asked, found, strict=True) if key == address]
        assert min(len(mine), rate) == mine.count(None), (address, mine)
        assert all(a == (44, "60") for a in mine if a is not None), mine
        counts = [count for key, count in let if key == address]
        assert all(n <= count for n, count in enumerate(counts, 1)), counts


def test_a_window_another_process_began_a_moment_later_by_its_clock_counts_on() -> None:
    """Processes read their own clocks: a window another process began at its
    "now" may lie a little ahead of this process's now. It is the current
    window, not an old one to start afresh over (that lost the counts made in
    it: four workers on a cluster let a fourth request of a 3/1m certificate
    through)."""
    shared = Shared()
    ahead, behind = Clock(), Clock()
    ahead.advance(100.25)
    behind.advance(100.0)  # a quarter second behind the other process
    limiters = [SharedRateLimiter("2/1m", clock) for clock in (ahead, behind)]
    for limiter in limiters:
        limiter.counts_kept.open(shared)
    assert answer(limiters[0], by()) is None
    assert answer(limiters[1], by()) is None
    # 60.25 s to wait by the clock behind: the whole seconds, rounded up.
    assert (44, "61") == answer(limiters[1], by())
    assert (44, "60") == answer(limiters[0], by())
