"""Handlers and stores that wait: turns, queues, time limits, clients that leave,
conflicts, shutdown, and a key step that answers later."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
from jetforce.app.base import DeferredResponse, Request, Response, Status
from twisted.internet import defer
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from zope.interface import implementer

from jetforce_sesh import (
    BadKey,
    IPlayerKeys,
    SessionApplication,
    Slab,
    SlabOptions,
    player_key,
)
from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.identity import Certificate
from jetforce_sesh.session.answers import UNAVAILABLE
from jetforce_sesh.session.visit import after_save
from jetforce_sesh.stores import ANY_VERSION, MemoryStore
from jetforce_sesh.stores.memory import memory_stores
from jetforce_sesh.testing import (
    START,
    LaterStore,
    Page,
    SessionHarness,
    fingerprint_of,
    later_stores,
    make_environ,
)

TOO_SLOW = Page(40, "The game took too long to answer; your previous state is kept", "")
SHUTTING_DOWN = Page(
    41,
    "The capsule is restarting; your previous state is kept: try again in a moment",
    "",
)
BUSY = Page(
    44,
    "Your earlier requests to this game are still being answered: wait for them,"
    " then try again",
    "",
)


@attrs.define
class Tally:
    count: int = 0


def new_clock() -> Clock:
    clock = Clock()
    clock.advance(START)
    return clock


class Gates:
    """Deferreds handlers wait on, opened by the test one at a time."""

    def __init__(self) -> None:
        self.waiting: list[Deferred[None]] = []

    def __call__(self) -> Deferred[None]:
        gate: Deferred[None] = Deferred()
        self.waiting.append(gate)
        return gate

    def open(self, index: int = 0) -> None:
        self.waiting.pop(index).callback(None)


def waiting_app(
    clock: Clock, gates: Gates | None = None, **options: Any
) -> tuple[SessionApplication, Slab[Tally]]:
    """Handlers that wait (on the clock, or on a gate) before they answer."""
    app = SessionApplication("waiting")
    slab = app.slab(Tally, record_size=64, **options)
    gates = gates or Gates()

    @app.session_route("/async", record=Tally)
    async def slow(request: Request, record: Tally) -> Response:
        seen = record.count
        await deferLater(clock, 1, lambda: None)
        record.count = seen + 1
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/gate", record=Tally)
    async def gate(request: Request, record: Tally) -> Response:
        record.count += 1
        await gates()
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/deferred", record=Tally)
    def deferred(request: Request, record: Tally) -> Deferred[Response]:
        def later() -> Response:
            record.count += 1
            return Response(Status.SUCCESS, "text/plain", ["count ", str(record.count)])

        return deferLater(clock, 1, later)

    @app.session_route("/async-boom", record=Tally)
    async def slow_boom(request: Request, record: Tally) -> Response:
        record.count += 1000
        await deferLater(clock, 1, lambda: None)
        raise RuntimeError("late bug")

    @app.session_route("/now", record=Tally)
    def now(request: Request, record: Tally) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    return app, slab


def stored(slab: Slab[Tally], player: str = "player") -> Tally | None:
    return slab.peek_now(fingerprint_of(player))


def turns_held(slab: Slab[Any]) -> int:
    opened = slab._opened
    assert opened is not None
    return len(opened.turns)


def requests(
    harness: SessionHarness,
    path: str,
    count: int,
    pages: list[Page] | None = None,
    **kw: Any,
) -> list[Page]:
    """Make ``count`` requests; their pages go to ``pages`` as they come."""
    pages = [] if pages is None else pages
    for _ in range(count):
        harness.request(path, **kw).addCallback(pages.append)
    return pages


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


# -- clients that leave ------------------------------------------------------------


def call(app: SessionApplication, path: str, player: str = "player") -> Any:
    """Call the route of ``path`` as Jetforce does, and return its response."""
    environ = make_environ(path, player=player)
    route = next(r for p, r in app.routes if p.path == path)
    return route(Request(environ))


def leave(response: DeferredResponse) -> Deferred[Any]:
    """Do what Jetforce does when the client goes: cancel what it waits on."""
    waited = next(iter(response.body))  # type: ignore[call-overload]
    assert isinstance(waited, Deferred)
    waited.addErrback(lambda failure: failure.trap(CancelledError))
    waited.cancel()
    return waited


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
