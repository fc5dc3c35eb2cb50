"""Handlers that wait take turns: one player's requests queue (up to
max_queued, then 44) while other players go on, each is answered whole (Deferreds
in bodies included) with the record final at the handler's return, and a save
that conflicts plays the request again on the fresh record.

The handlers that wait are in ``tests/session/waiting_support.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs

from jetforce_sesh import SessionApplication, Slab
from jetforce_sesh.session.visit import after_save
from jetforce_sesh.stores import ANY_VERSION, MemoryStore
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of, later_stores
from tests.session.waiting_support import (
    Gates,
    Tally,
    new_clock,
    requests,
    stored,
    turns_held,
    waiting_app,
)

BUSY = Page(
    44,
    "Your earlier requests to this game are still being answered: wait for them,"
    " then try again",
    "",
)


# -- turns and queues ----------------------------------------------------------


def test_concurrent_requests_of_one_player_all_count_when_they_may_queue() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock, max_queued=49)
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/async", 50)
    for _ in range(50):
        clock.advance(1)
    assert [f"count {n}" for n in range(1, 51)] == [p.body for p in pages]
    assert Tally(count=50) == stored(slab)
    assert 0 == turns_held(slab)
    assert [] == clock.getDelayedCalls()


def test_past_max_queued_waiting_requests_a_player_gets_44() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)  # max_queued defaults to 4
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/async", 7)
    assert [BUSY, BUSY] == pages
    for _ in range(5):
        clock.advance(1)
    assert [BUSY, BUSY, *(f"count {n}" for n in range(1, 6))] == [
        p if p.status == 44 else p.body for p in pages
    ]
    assert 2 == slab.stats.queue_full
    assert "count 6" == harness.get("/now").body  # a free turn again


def test_different_players_do_not_wait_for_each_other() -> None:
    clock = new_clock()
    app, _ = waiting_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    for player in ("a", "b", "c"):
        harness.request("/async", player=player).addCallback(pages.append)
    clock.advance(1)
    assert ["count 1"] * 3 == [p.body for p in pages]


def test_deferred_handler_and_iterable_body() -> None:
    clock = new_clock()
    app, _ = waiting_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/deferred", 2)
    clock.advance(1)
    clock.advance(1)
    assert [
        Page(20, "text/plain", "count 1"),
        Page(20, "text/plain", "count 2"),
    ] == pages


def test_async_failure_rolls_back_and_lets_the_next_request_in() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    with capturedLogs():
        harness.request("/async-boom").addCallback(pages.append)
        harness.request("/async").addCallback(pages.append)
        clock.advance(1)
        clock.advance(1)
    assert [42, 20] == [p.status for p in pages]
    assert Tally(count=1) == stored(slab)


def test_a_store_that_answers_later_serves_the_same_routes() -> None:
    clock = new_clock()
    app, slab = waiting_app(clock, max_queued=5)
    harness = SessionHarness(app, clock=clock, stores=later_stores(0.5))
    clock.advance(0.5)
    assert harness.opened.called
    pages = requests(harness, "/async", 5)
    with capturedLogs():
        requests(harness, "/async-boom", 1, pages)
        for _ in range(40):
            clock.advance(0.5)
    assert ["count 1", "count 2", "count 3", "count 4", "count 5", ""] == [
        p.body for p in pages
    ]
    assert 42 == pages[-1].status
    found: list[Tally | None] = []
    slab.peek(fingerprint_of("player")).addCallback(found.append)
    clock.advance(0.5)
    assert [Tally(count=5)] == found
    assert [] == clock.getDelayedCalls()


def test_hundreds_queued_behind_a_waiting_handler_are_all_served() -> None:
    """Handing the record on is a loop, not a recursion that a long queue overflows."""
    clock = new_clock()
    app, slab = waiting_app(clock, max_queued=1000)
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/async", 1)
    requests(harness, "/now", 1000, pages)
    clock.advance(1)
    assert [f"count {n}" for n in range(1, 1002)] == sorted(
        (p.body for p in pages), key=lambda body: int(body.split()[1])
    )
    assert 0 == turns_held(slab)


# -- bodies --------------------------------------------------------------------


def body_app(clock: Clock) -> tuple[SessionApplication, Slab[Tally]]:
    app = SessionApplication("body")
    slab = app.slab(Tally, record_size=64)

    @app.session_route("/later", record=Tally)
    async def later(request: Request, record: Tally) -> Response:
        await deferLater(clock, 1, lambda: None)
        return Response(
            Status.SUCCESS, "text/plain", deferLater(clock, 1, lambda: "late body")
        )

    @app.session_route("/stream", record=Tally)
    def stream(request: Request, record: Tally) -> Response:
        def body() -> Iterator[Any]:
            yield "line 1\n"
            yield succeed(b"line 2\n")  # Jetforce waits for Deferreds in a body
            record.count += 10  # too late: the record was final at the return
            yield deferLater(clock, 1, lambda: f"count {record.count}\n")

        record.count += 1
        return Response(Status.SUCCESS, "text/plain", body())

    @app.session_route("/hold", record=Tally)
    def hold(request: Request, record: Tally) -> Deferred[Response]:
        return deferLater(
            clock, 1, lambda: Response(Status.SUCCESS, "text/plain", "held")
        )

    return app, slab


def test_a_deferred_body_reaches_the_player_on_the_waiting_path() -> None:
    clock = new_clock()
    app, _ = body_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/later", 1)
    clock.advance(1)
    clock.advance(1)
    assert [Page(20, "text/plain", "late body")] == pages


def test_a_body_holding_deferreds_is_delivered_whole_after_a_wait() -> None:
    clock = new_clock()
    app, _ = body_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/stream", 1)  # the turn is free
    requests(harness, "/hold", 1, pages)
    requests(harness, "/stream", 1, pages)  # queued behind /hold
    clock.advance(1)
    clock.advance(1)
    clock.advance(1)
    assert [
        Page(20, "text/plain", "line 1\nline 2\ncount 11\n"),
        Page(20, "text/plain", "held"),
        Page(20, "text/plain", "line 1\nline 2\ncount 12\n"),
    ] == pages


def test_the_record_is_final_when_the_handler_returns() -> None:
    """A change a body makes while it is produced is not kept (documented)."""
    clock = new_clock()
    app, slab = body_app(clock)
    harness = SessionHarness(app, clock=clock)
    requests(harness, "/stream", 2)
    clock.advance(1)
    assert Tally(count=2) == stored(slab)


# -- versions and conflicts ------------------------------------------------------


def meddle(slab: Slab[Tally], count: int, player: str = "player") -> None:
    """Change the player's record behind the route's back, as another process
    (a CGI program, a second server) would."""
    store = slab.store
    assert isinstance(store, MemoryStore)
    data = slab.codec.encode(Tally(count=count))
    store.save_now(fingerprint_of(player), data, ANY_VERSION)


def test_a_save_that_conflicts_runs_the_handler_again_on_the_fresh_record() -> None:
    clock = new_clock()
    gates = Gates()
    app, slab = waiting_app(clock, gates)
    harness = SessionHarness(app, clock=clock)
    harness.get("/now")
    pages = requests(harness, "/gate", 1)
    meddle(slab, 100)  # while the handler waits
    gates.open()  # its save conflicts: it runs again, on count 100
    assert [] == pages
    gates.open()
    assert [Page(20, "text/plain", "count 101")] == pages
    assert Tally(count=101) == stored(slab)
    assert 1 == slab.store.stats().conflicts


def test_when_saves_keep_conflicting_the_player_is_told_to_try_again() -> None:
    clock = new_clock()
    gates = Gates()
    app, slab = waiting_app(clock, gates)
    harness = SessionHarness(app, clock=clock)
    pages = requests(harness, "/gate", 1)
    for attempt in range(3):
        meddle(slab, 100 + attempt)
        gates.open()
    assert [
        Page(
            40,
            "Your game changed elsewhere while this request was played; nothing of"
            " it was kept: try again",
            "",
        )
    ] == pages
    assert Tally(count=102) == stored(slab)
    assert 1 == slab.stats.conflicts_given_up
    assert 0 == turns_held(slab)


def test_after_save_runs_only_for_the_run_that_was_kept() -> None:
    clock = new_clock()
    gates = Gates()
    app = SessionApplication()
    slab = app.slab(Tally, record_size=64)
    kept: list[int] = []

    @app.session_route("/note", record=Tally)
    async def note(request: Request, record: Tally) -> Response:
        record.count += 1
        after_save(request, lambda: kept.append(record.count))
        await gates()
        return Response(Status.SUCCESS, "text/plain", "ok")

    harness = SessionHarness(app, clock=clock)
    requests(harness, "/note", 1)
    meddle(slab, 10)
    gates.open()
    gates.open()
    assert [11] == kept
