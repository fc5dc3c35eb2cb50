"""Requests cut short: the client left, the handler outlasted its time limit,
or the store did not answer in time. The player's turn is freed and nothing of the
request is kept, or the player is told it may have been.

The handlers that wait are in ``tests/session/waiting_support.py``.
"""

from __future__ import annotations

from jetforce.app.base import DeferredResponse, Request, Response, Status
from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs

from jetforce_sesh import SessionApplication, Slab
from jetforce_sesh.session.visit import after_save
from jetforce_sesh.stores.memory import memory_stores
from jetforce_sesh.testing import LaterStore, Page, SessionHarness, later_stores
from tests.session.waiting_support import (
    Gates,
    Tally,
    call,
    leave,
    new_clock,
    requests,
    stored,
    turns_held,
    waiting_app,
)

TOO_SLOW = Page(40, "The game took too long to answer; your previous state is kept", "")


# -- clients that leave ------------------------------------------------------------


def test_a_waiting_request_whose_client_left_is_not_played_and_frees_its_place() -> (
    None
):
    clock = new_clock()
    app, slab = waiting_app(clock, max_queued=1)
    harness = SessionHarness(app, clock=clock)
    first = requests(harness, "/async", 1)
    left = call(app, "/async")
    assert isinstance(left, DeferredResponse)
    leave(left)
    later = requests(harness, "/async", 1)  # takes the place the first left
    clock.advance(1)
    clock.advance(1)
    assert ["count 1", "count 2"] == [p.body for p in first + later]
    assert Tally(count=2) == stored(slab)
    assert [] == clock.getDelayedCalls()


def test_a_queued_request_whose_client_leaves_after_it_started_keeps_nothing() -> None:
    """The queued request's handler is running when its client goes: it is
    cancelled, nothing of it is saved, and the player's turn is free at once."""
    clock = new_clock()
    gates = Gates()
    app, slab = waiting_app(clock, gates)
    harness = SessionHarness(app, clock=clock)
    first = requests(harness, "/gate", 1)
    second = call(app, "/gate")
    gates.open()  # the first answers; the second's handler starts and waits
    assert ["count 1"] == [p.body for p in first]
    assert 1 == len(gates.waiting)
    leave(second)
    assert gates.waiting[0].called  # cancelled
    assert 0 == turns_held(slab)
    assert Tally(count=1) == stored(slab)
    assert "count 2" == harness.get("/now").body


def test_a_holder_whose_client_leaves_is_cancelled_and_keeps_nothing() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)
    SessionHarness(app, clock=clock)
    left = call(app, "/async")
    leave(left)
    clock.advance(1)
    assert stored(slab) is None
    assert 0 == turns_held(slab)
    assert [] == clock.getDelayedCalls()


# -- time limits ---------------------------------------------------------------


def stuck_app(clock: Clock) -> tuple[SessionApplication, Slab[Tally]]:
    app = SessionApplication("stuck")
    slab = app.slab(Tally, record_size=64)

    @app.session_route("/stuck", record=Tally, timeout=5)
    def stuck(request: Request, record: Tally) -> Deferred[Response]:
        record.count += 1
        return Deferred()  # a callback that was lost

    @app.session_route("/stubborn", record=Tally, timeout=5)
    async def stubborn(request: Request, record: Tally) -> Response:
        try:
            await deferLater(clock, 100, lambda: None)
        except Exception:  # CancelledError is an Exception: a common fallback
            record.count += 100
            await deferLater(clock, 10, lambda: None)
        after_save(request, lambda: record.__setattr__("count", -1))
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/look", record=Tally)
    def look(request: Request, record: Tally) -> Response:
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    return app, slab


def test_a_handler_that_never_answers_is_cancelled_and_frees_the_record() -> None:
    clock = new_clock()
    app, slab = stuck_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    with capturedLogs() as events:
        harness.request("/stuck").addCallback(pages.append)
        harness.request("/look").addCallback(pages.append)
        clock.advance(4.9)
        assert [] == pages
        clock.advance(0.1)
    assert [TOO_SLOW, Page(20, "text/plain", "count 0")] == pages
    assert ["session route {name} took longer than {timeout} s; cancelled"] == [
        e["log_format"] for e in events
    ]
    assert stored(slab) is None
    assert 1 == slab.stats.timeouts


def test_a_handler_that_swallows_its_cancellation_keeps_nothing() -> None:
    """Once the time limit fired, the player has been told nothing was kept: what
    the handler does after it (catching CancelledError, changing the record,
    answering) is never saved, and the player's turn is free meanwhile."""
    clock = new_clock()
    app, slab = stuck_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    with capturedLogs():
        harness.request("/stubborn").addCallback(pages.append)
        clock.advance(5)
    assert [TOO_SLOW] == pages
    assert "count 0" == harness.get("/look").body  # not waiting for the handler
    clock.advance(10)  # the handler goes on, changes the record, answers
    assert stored(slab) is None
    assert [TOO_SLOW] == pages
    assert [] == clock.getDelayedCalls()


def test_a_timeout_of_the_handlers_own_is_a_failure_not_the_time_limit() -> None:
    clock = new_clock()
    app = SessionApplication("own timeout")
    app.slab(Tally, record_size=64)

    @app.session_route("/fetch", record=Tally)
    async def fetch(request: Request, record: Tally) -> Response:
        await deferLater(clock, 1, lambda: None)
        raise defer.TimeoutError("the upstream did not answer")

    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    with capturedLogs() as events:
        harness.request("/fetch").addCallback(pages.append)
        clock.advance(1)
    assert [
        Page(42, "An unexpected error occurred; your previous state is kept", "")
    ] == pages
    assert ["session route {name} failed"] == [e["log_format"] for e in events]


# -- stores that do not answer in time ---------------------------------------------


def test_a_store_that_does_not_answer_in_time_frees_the_player() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)
    harness = SessionHarness(app, clock=clock, stores=later_stores(60))
    clock.advance(60)
    assert harness.opened.called
    pages = requests(harness, "/now", 2)
    with capturedLogs() as events:
        clock.advance(10)
    assert [
        Page(
            41,
            "The game's records did not answer in time; nothing changed: try again"
            " in a moment",
            "",
        )
    ] == pages[:1]
    assert ["slab {slab}: the store did not answer within {timeout} s"] == [
        e["log_format"] for e in events
    ][:1]
    clock.advance(60)  # the slow load answers at last: it plays nothing
    assert 0 == slab.store.stats().creations


class SlowSaves(LaterStore):
    """Loads in a second; saves take a minute."""

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        saved: Deferred[int] = Deferred()
        self.clock.callLater(
            60, self.inner.save(key, data, expected).chainDeferred, saved
        )
        return saved


def test_a_save_that_does_not_answer_in_time_may_have_been_kept() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)
    harness = SessionHarness(
        app,
        clock=clock,
        stores=lambda spec: SlowSaves(memory_stores(spec), spec.clock, 1),
    )
    clock.advance(1)
    pages = requests(harness, "/now", 1)
    with capturedLogs():
        clock.advance(1)  # loaded; the save is sent
        clock.advance(10)  # too long
    assert [
        Page(
            41,
            "The game's records did not answer in time; your move may or may not"
            " have been kept: look again in a moment",
            "",
        )
    ] == pages
    clock.advance(50)
    assert 1 == slab.store.stats().creations  # it was kept, late
