"""Closing and opening while handlers or stores wait: queued requests are
answered 41, running ones finish within the grace period or are cut off keeping
nothing, and opening waits for the store still closing.

The handlers that wait are in ``tests/session/waiting_support.py``.
"""

from __future__ import annotations

from typing import Any

from jetforce_sesh import memory_stores
from jetforce_sesh.testing import Page, SessionHarness, later_stores
from tests.session.waiting_support import Gates, new_clock, requests, waiting_app

SHUTTING_DOWN = Page(
    41,
    "The capsule is restarting; your previous state is kept: try again in a moment",
    "",
)


# -- closing -----------------------------------------------------------------------


def test_closing_answers_queued_requests_and_lets_running_ones_finish() -> None:
    clock = new_clock()
    gates = Gates()
    app, _ = waiting_app(clock, gates)
    harness = SessionHarness(app, clock=clock)
    running = requests(harness, "/gate", 1)
    queued = requests(harness, "/gate", 2)
    closed: list[object] = []
    app.close(grace=5).addCallback(closed.append)
    assert [SHUTTING_DOWN, SHUTTING_DOWN] == queued
    assert [SHUTTING_DOWN] == requests(harness, "/now", 1)  # no new requests
    assert [] == closed
    gates.open()  # the running one finishes within the grace period
    assert [Page(20, "text/plain", "count 1")] == running
    assert [None] == closed
    assert [] == clock.getDelayedCalls()
    assert [SHUTTING_DOWN] == requests(harness, "/now", 1)  # nor after


def test_closing_cuts_off_what_outlasts_the_grace_period_keeping_nothing() -> None:
    clock = new_clock()
    gates = Gates()
    app, slab = waiting_app(clock, gates)
    harness = SessionHarness(app, clock=clock)
    harness.get("/now")
    running = requests(harness, "/gate", 1)
    closed: list[object] = []
    app.close(grace=5).addCallback(closed.append)
    clock.advance(5)
    assert [SHUTTING_DOWN] == running
    assert [None] == closed
    assert gates.waiting[0].called  # the handler was cancelled
    store = slab._opened
    assert store is None


def test_closing_while_a_slow_store_saves_waits_for_the_save() -> None:
    clock = new_clock()
    app, _ = waiting_app(clock)
    harness = SessionHarness(app, clock=clock, stores=later_stores(1))
    clock.advance(1)
    pages = requests(harness, "/now", 1)
    clock.advance(1)  # loaded; the save is on its way
    closed: list[object] = []
    app.close(grace=0).addCallback(closed.append)
    clock.advance(1)  # saved
    assert [Page(20, "text/plain", "count 1")] == pages
    clock.advance(1)  # the store closes
    assert [None] == closed


def closes_counted() -> tuple[list[str], Any]:
    """A store factory whose stores count their closes, and the counts."""
    closes: list[str] = []

    def make(spec: Any) -> Any:
        store = memory_stores(spec)
        real = store.close

        def close() -> Any:
            closes.append(spec.name)
            return real()

        store.close = close  # type: ignore[method-assign]
        return store

    return closes, make


def test_closing_twice_while_requests_run_closes_the_store_once() -> None:
    """Two server scripts that include one game, or a second shutdown signal:
    the second close waits for the first instead of closing the store again
    (on Redis, a second close drops the connection other slabs still use)."""
    clock = new_clock()
    gates = Gates()
    app, slab = waiting_app(clock, gates)
    closes, counted = closes_counted()
    harness = SessionHarness(app, clock=clock, stores=counted)
    running = requests(harness, "/gate", 1)
    first: list[object] = []
    second: list[object] = []
    slab.close(5).addCallback(first.append)
    slab.close(5).addCallback(second.append)
    assert ([], [], []) == (first, second, closes)
    gates.open()
    assert [Page(20, "text/plain", "count 1")] == running
    assert ([None], [None], [slab.name]) == (first, second, closes)
    assert [None] == done(slab.close(5))  # closed: nothing more to do
    assert [slab.name] == closes


def test_a_second_close_with_less_grace_cuts_off_sooner() -> None:
    clock = new_clock()
    gates = Gates()
    app, slab = waiting_app(clock, gates)
    closes, counted = closes_counted()
    harness = SessionHarness(app, clock=clock, stores=counted)
    running = requests(harness, "/gate", 1)
    first: list[object] = []
    second: list[object] = []
    slab.close(10).addCallback(first.append)
    clock.advance(1)
    slab.close(2).addCallback(second.append)
    clock.advance(1.5)
    assert ([], []) == (first, second)
    clock.advance(0.5)  # 2 s after the second close, not 10 after the first
    assert [SHUTTING_DOWN] == running
    assert ([None], [None], [slab.name]) == (first, second, closes)
    assert [] == clock.getDelayedCalls()


def test_a_second_close_with_more_grace_keeps_the_first_ones_time() -> None:
    clock = new_clock()
    gates = Gates()
    app, slab = waiting_app(clock, gates)
    harness = SessionHarness(app, clock=clock)
    running = requests(harness, "/gate", 1)
    closed: list[object] = []
    slab.close(2)
    slab.close(30).addCallback(closed.append)
    clock.advance(2)
    assert ([SHUTTING_DOWN], [None]) == (running, closed)
    assert [] == clock.getDelayedCalls()


def done(deferred: Any) -> list[object]:
    got: list[object] = []
    deferred.addCallback(got.append)
    return got


# -- opening -----------------------------------------------------------------------


def test_opening_while_the_store_still_closes_waits_for_the_close() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)
    harness = SessionHarness(app, clock=clock, stores=later_stores(1))
    clock.advance(1)
    assert harness.opened.called
    closed: list[object] = []
    reopened: list[object] = []
    app.close(grace=0).addCallback(closed.append)
    app.open(clock, stores=later_stores(1)).addCallback(reopened.append)
    assert ([], []) == (closed, reopened)
    clock.advance(1)
    assert ([None], []) == (closed, reopened)
    clock.advance(1)
    assert 1 == len(reopened)
    assert slab._opened is not None and not slab._opened.closing


def test_opening_twice_at_once_makes_one_store() -> None:
    clock = new_clock()
    app, _ = waiting_app(clock)
    made: list[object] = []

    def counted(spec: Any) -> Any:
        made.append(spec.name)
        return later_stores(1)(spec)

    app.close(grace=0)
    first = app.open(clock, stores=counted)
    second = app.open(clock, stores=counted)
    clock.advance(1)
    assert (True, True, 1) == (first.called, second.called, len(made))


def test_a_harness_after_one_on_a_slow_store_starts_afresh() -> None:
    """The earlier harness's store closes on its own clock, which nobody moves
    any more: the next harness does not wait for it."""
    clock = new_clock()
    app, _ = waiting_app(clock)
    SessionHarness(app, clock=clock, stores=later_stores(1))
    clock.advance(1)
    harness = SessionHarness(app)
    assert "count 1" == harness.get("/now").body
