"""The rate limits counted in a store several processes share, on a Clock: two
limiters over one store stand for two processes over one Redis."""

from __future__ import annotations

from typing import Any

import attrs
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
