"""The key step (IPlayerKeys): several certificates under one key, a step that
answers later is waited for, and a step that raises, gives a bad key or meets a
store away is answered as such.

The handlers that wait are in ``tests/session/waiting_support.py``.
"""

from __future__ import annotations

from typing import Any

from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from zope.interface import implementer

from jetforce_sesh import (
    BadKey,
    IPlayerKeys,
    SessionApplication,
    SlabOptions,
    player_key,
)
from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.identity import Certificate
from jetforce_sesh.session.answers import UNAVAILABLE
from jetforce_sesh.testing import SessionHarness, fingerprint_of
from tests.session.waiting_support import (
    Tally,
    call,
    leave,
    new_clock,
    requests,
    stored,
    waiting_app,
)

# -- the key step --------------------------------------------------------------------


@implementer(IPlayerKeys)
class Households:
    """Every player named in ``together`` is kept under one key; answers at once,
    or ``later`` seconds later on ``clock``."""

    def __init__(
        self, together: set[str], clock: Clock | None = None, later: float = 0
    ) -> None:
        self.together = {fingerprint_of(name) for name in together}
        self.clock = clock
        self.later = later

    def key_for(
        self, request: Request, certificate: Certificate
    ) -> bytes | Deferred[bytes]:
        key = (
            fingerprint_of("household")
            if certificate.fingerprint in self.together
            else certificate.fingerprint
        )
        if self.clock is None:
            return key
        return deferLater(self.clock, self.later, lambda: key)


def test_a_key_step_puts_several_certificates_under_one_key() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)
    app.keys = Households({"mum", "dad"})
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/async", 1, player="mum")
    requests(harness, "/async", 1, pages, player="dad")  # waits for mum's turn
    requests(harness, "/async", 1, pages, player="kid")
    clock.advance(1)
    clock.advance(1)
    assert ["count 1", "count 1", "count 2"] == [p.body for p in pages]
    assert Tally(count=2) == stored(slab, "household")
    assert stored(slab, "mum") is None


def test_a_key_step_that_answers_later_is_waited_for() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)
    app.keys = Households({"mum", "dad"}, clock, later=0.5)
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/now", 1, player="mum")
    requests(harness, "/now", 1, pages, player="dad")
    assert [] == pages
    clock.advance(0.5)
    assert ["count 1", "count 2"] == [p.body for p in pages]
    left = call(app, "/now", player="dad")
    leave(left)
    clock.advance(0.5)
    assert Tally(count=2) == stored(slab, "household")


def test_a_key_step_that_gives_a_bad_key_is_a_failure() -> None:
    @implementer(IPlayerKeys)
    class Broken:
        def key_for(self, request: Request, certificate: Certificate) -> Any:
            return succeed(b"short")

    clock = new_clock()
    app, _ = waiting_app(clock)
    app.keys = Broken()
    harness = SessionHarness(app, clock=clock)
    with capturedLogs() as events:
        assert 42 == harness.get("/now").status
    assert ["session route {name} failed"] == [e["log_format"] for e in events]


def test_a_key_step_whose_store_cannot_answer_is_a_41_not_a_failure() -> None:
    """Accounts read their links from a store: Redis away is Redis's trouble."""

    @implementer(IPlayerKeys)
    class Away:
        def key_for(self, request: Request, certificate: Certificate) -> Any:
            return fail(StoreUnavailable("Redis at redis://h/0: Lost connection"))

    clock = new_clock()
    app, slab = waiting_app(clock)
    app.keys = Away()
    harness = SessionHarness(app, clock=clock)
    with capturedLogs() as events:
        page = harness.get("/now")
    assert (UNAVAILABLE.status, UNAVAILABLE.meta) == (page.status, page.meta)
    assert [("key step: {error}", "store unavailable", 41)] == [
        (e["log_format"], e["event"], e["status"]) for e in events
    ]
    assert 0 == slab.stats.failures


def test_a_key_step_that_gives_a_short_key_at_once_fails_before_any_turn() -> None:
    """Bytes, but not 32 of them: refused where the key step answered, so no
    turn is held under a key no store could take."""

    @implementer(IPlayerKeys)
    class Short:
        def key_for(self, request: Request, certificate: Certificate) -> bytes:
            return b"short"

    clock = new_clock()
    app, slab = waiting_app(clock)
    app.keys = Short()
    harness = SessionHarness(app, clock=clock)
    with capturedLogs() as events:
        assert 42 == harness.get("/now").status
    failure = events[0]["log_failure"]
    assert ("session route {name} failed", BadKey) == (
        events[0]["log_format"],
        type(failure.value),
    )
    assert (1, 0) == (slab.stats.failures, slab.store.stats().creations)


def test_player_key_is_the_key_the_step_gave() -> None:
    clock = new_clock()
    app = SessionApplication()
    app.slab(Tally, record_size=64)
    app.keys = Households({"mum"})

    @app.session_route("/who", record=Tally)
    def who(request: Request, record: Tally) -> Response:
        return Response(Status.SUCCESS, "text/plain", player_key(request).hex())

    harness = SessionHarness(app, clock=clock, defaults=SlabOptions())
    assert fingerprint_of("household").hex() == harness.get("/who", player="mum").body


def test_a_key_step_that_raises_is_a_failure() -> None:
    @implementer(IPlayerKeys)
    class Raising:
        def key_for(self, request: Request, certificate: Certificate) -> bytes:
            raise KeyError("no such account")

    clock = new_clock()
    app, _ = waiting_app(clock)
    app.keys = Raising()
    harness = SessionHarness(app, clock=clock)
    with capturedLogs() as events:
        assert 42 == harness.get("/now").status
    assert ["session route {name} failed"] == [e["log_format"] for e in events]
