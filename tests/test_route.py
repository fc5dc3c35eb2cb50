"""@session_route: records handed in, changes kept, failures rolled back, in order."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from jetforce.app.base import DeferredResponse, Request, Response, Status
from twisted.internet import defer
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs
from zope.interface import implementer

from jetforce_sesh import (
    ConfigError,
    ISessionStore,
    MemorySlab,
    RecordSlab,
    SessionApplication,
    SlabOptions,
    StoreNotOpen,
)
from jetforce_sesh.sessions import memory_store
from jetforce_sesh.store import Hook, StoreStats
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of, make_environ


@attrs.define
class Tally:
    count: int = 0
    note: str = ""


@attrs.define
class Other:
    count: int = 100


def tally_app(**slab_options: Any) -> tuple[SessionApplication, RecordSlab[Tally]]:
    app = SessionApplication("tally")
    slab = app.slab(Tally, record_size=64, **slab_options)

    @app.session_route("/inc", record=Tally)
    def inc(request: Request, record: Tally) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/look", record=Tally)
    def look(request: Request, record: Tally) -> Response:
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/note/(?P<text>[a-z]*)", record=Tally)
    def note(request: Request, record: Tally, text: str) -> Response:
        record.note = text * 100 if request.query == "long" else text
        return Response(Status.SUCCESS, "text/plain", f"note {record.note}")

    @app.session_route("/boom", record=Tally)
    def boom(request: Request, record: Tally) -> Response:
        record.count += 1000
        raise RuntimeError("handler bug")

    @app.session_route("/wrong", record=Tally)
    def wrong(request: Request, record: Tally) -> Any:
        record.count += 1000
        return "not a response"

    return app, slab


def stored(slab: RecordSlab[Tally], player: str) -> Tally | None:
    return slab.peek(fingerprint_of(player))


def test_changes_are_saved_per_player() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    assert harness.get("/inc", player="alice").body == "count 1"
    assert harness.get("/inc", player="alice").body == "count 2"
    assert harness.get("/inc", player="bob").body == "count 1"
    assert Tally(count=2) == stored(slab, "alice")


def test_url_groups_reach_the_handler() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    assert Page(20, "text/plain", "note abc") == harness.get("/note/abc")
    assert Tally(note="abc") == stored(slab, "player")


def test_no_certificate_is_60_and_reads_no_record() -> None:
    app, slab = tally_app()
    page = SessionHarness(app).get("/inc", player=None)
    assert (
        Page(
            60,
            "This capsule remembers you by your client certificate: attach one and try"
            " again",
            "",
        )
        == page
    )
    assert StoreStats(0, 10000, 0, 0, 0, 0) == slab.store.stats()


def test_expired_certificate_is_62_and_reads_no_record() -> None:
    app, slab = tally_app()
    page = SessionHarness(app).get("/inc", not_after="2025-06-30T12:00:00Z")
    assert Page(62, "Your certificate expired on 2025-06-30: make a new one", "") == (
        page
    )
    assert slab.store.stats().misses == 0


def test_certificate_not_yet_valid_is_62() -> None:
    app, _ = tally_app()
    page = SessionHarness(app).get("/inc", not_before="2026-02-01T00:00:00Z")
    assert (
        Page(
            62,
            "Your certificate is not valid until 2026-02-01 00:00 UTC: use another one",
            "",
        )
        == page
    )


def test_a_look_creates_no_record_for_a_new_player() -> None:
    app, slab = tally_app()
    assert SessionHarness(app).get("/look").body == "count 0"
    assert len(slab.store) == 0  # type: ignore[arg-type]


class CountingSlab(MemorySlab):
    saves = 0

    def save_now(self, key: bytes, data: bytes) -> None:
        CountingSlab.saves += 1
        super().save_now(key, data)


def counting_store(name: str, options: SlabOptions, clock: IReactorTime) -> MemorySlab:
    return CountingSlab(
        name, record_size=options.record_size, capacity=options.max_records, clock=clock
    )


def test_a_record_is_written_only_when_it_changed() -> None:
    app, _ = tally_app()
    CountingSlab.saves = 0
    harness = SessionHarness(app)
    app.close()
    app.slabs[Tally].open(harness.clock, store_factory=counting_store)
    harness.get("/inc")
    harness.get("/look")
    harness.get("/look")
    harness.get("/note/")  # sets note to "" again: same bytes
    assert CountingSlab.saves == 1


def test_handler_that_raises_saves_nothing_and_answers_42() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/inc")
    with capturedLogs() as events:
        page = harness.get("/boom")
    assert Page(
        42, "An unexpected error occurred; your previous state is kept", ""
    ) == (page)
    assert Tally(count=1) == stored(slab, "player")
    assert [e["log_format"] for e in events] == ["session route {name} failed"]
    assert harness.get("/inc").body == "count 2"  # the record is not left locked


def test_handler_returning_no_response_saves_nothing() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    with capturedLogs():
        assert Page(
            42, "An unexpected error occurred; your previous state is kept", ""
        ) == (harness.get("/wrong"))
    assert stored(slab, "player") is None


def test_record_too_large_keeps_the_previous_one_and_says_so() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/note/ab")
    with capturedLogs() as events:
        page = harness.get("/note/ab", query="long")
    assert (
        Page(
            40,
            "Your progress could not be saved; your previous state is kept",
            "",
        )
        == page
    )
    assert Tally(note="ab") == stored(slab, "player")
    assert [str(e["error"]).join(["not saved: ", ""]) for e in events] == [
        "not saved: Tally encodes to 222 bytes but its slots hold 64: raise its"
        " record_size or store less"
    ]


def test_full_slab_that_refuses_answers_new_players_41() -> None:
    app, slab = tally_app(max_records=2, on_full="refuse")
    harness = SessionHarness(app)
    harness.get("/inc", player="a")
    harness.get("/inc", player="b")
    assert Page(
        41,
        "This game is full and is not taking new players right now; try again later",
        "",
    ) == harness.get("/inc", player="c")
    assert harness.get("/inc", player="a").body == "count 2"
    assert stored(slab, "c") is None


def test_full_slab_that_evicts_forgets_the_least_recent_player() -> None:
    app, slab = tally_app(max_records=2)
    harness = SessionHarness(app)
    for player in ("a", "b", "a", "c"):
        harness.get("/inc", player=player)
    assert stored(slab, "b") is None
    assert Tally(count=2) == stored(slab, "a")


def test_each_record_type_has_its_own_slab() -> None:
    app, slab = tally_app()

    @app.session_route("/other", record=Other)
    def other(request: Request, record: Other) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", str(record.count))

    harness = SessionHarness(app)
    harness.get("/inc")
    assert harness.get("/other").body == "101"
    assert Tally(count=1) == stored(slab, "player")
    assert Other(count=101) == app.slabs[Other].peek(fingerprint_of("player"))


def test_conflicting_declarations_fail_at_import() -> None:
    app, _ = tally_app()
    with pytest.raises(ConfigError) as raised:
        app.slab(Tally, record_size=128)
    assert str(raised.value) == (
        "slab 'tests.test_route.Tally' is declared twice with different settings"
        " (record_size=64 and record_size=128): declare it once, with app.slab(),"
        " and pass only record= to session_route"
    )


def test_route_before_open_names_the_fix() -> None:
    app, _ = tally_app()
    request = Request(
        {
            "GEMINI_URL": "gemini://localhost/inc",
            "TLS_CLIENT_HASH": "SHA256:" + "A" * 64,
        }
    )
    route = app.routes[0][1]
    with pytest.raises(StoreNotOpen) as raised:
        route(request)
    assert str(raised.value) == (
        "slab 'tests.test_route.Tally' is not open: start the capsule with"
        " jetforce-sesh, or call app.open(clock) before serving"
    )


def waiting_app(clock: Clock) -> tuple[SessionApplication, RecordSlab[Tally]]:
    """Handlers that wait a second on the clock before they change the record."""
    app = SessionApplication("waiting")
    slab = app.slab(Tally, record_size=64)

    @app.session_route("/async", record=Tally)
    async def slow(request: Request, record: Tally) -> Response:
        seen = record.count
        await deferLater(clock, 1, lambda: None)
        record.count = seen + 1
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

    return app, slab


def test_fifty_concurrent_requests_of_one_player_all_count() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app, slab = waiting_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    for _ in range(50):
        harness.request("/async").addCallback(pages.append)
    for _ in range(50):
        clock.advance(1)
    assert [f"count {n}" for n in range(1, 51)] == [p.body for p in pages]
    assert Tally(count=50) == stored(slab, "player")
    assert 0 == len(slab.turns)
    assert clock.getDelayedCalls() == []


def test_different_players_do_not_wait_for_each_other() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app, _ = waiting_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    for player in ("a", "b", "c"):
        harness.request("/async", player=player).addCallback(pages.append)
    clock.advance(1)
    assert [p.body for p in pages] == ["count 1"] * 3


def test_deferred_handler_and_iterable_body() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app, _ = waiting_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    harness.request("/deferred").addCallback(pages.append)
    harness.request("/deferred").addCallback(pages.append)
    clock.advance(1)
    clock.advance(1)
    assert [Page(20, "text/plain", "count 1"), Page(20, "text/plain", "count 2")] == (
        pages
    )


def test_async_failure_rolls_back_and_lets_the_next_request_in() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app, slab = waiting_app(clock)
    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    with capturedLogs():
        harness.request("/async-boom").addCallback(pages.append)
        harness.request("/async").addCallback(pages.append)
        clock.advance(1)
        clock.advance(1)
    assert [p.status for p in pages] == [42, 20]
    assert Tally(count=1) == stored(slab, "player")


@implementer(ISessionStore)
class RemoteStore:
    """A store that answers only later, as one in another process would."""

    def __init__(self, inner: MemorySlab, clock: Clock) -> None:
        self.inner = inner
        self.clock = clock
        self.name = inner.name
        self.record_size = inner.record_size
        self.capacity = inner.capacity
        self.on_full = inner.on_full

    def _later(self, value: Any) -> Deferred[Any]:
        return deferLater(self.clock, 0.5, lambda: value)

    def load(self, key: bytes) -> Deferred[bytes | None]:
        return self._later(self.inner.load_now(key))

    def save(self, key: bytes, data: bytes) -> Deferred[None]:
        self.inner.save_now(key, data)
        return self._later(None)

    def delete(self, key: bytes) -> Deferred[bool]:
        return self._later(self.inner.delete_now(key))

    def admits(self, key: bytes) -> Deferred[bool]:
        return self._later(self.inner.admits_now(key))

    def records(self) -> Deferred[list[tuple[bytes, bytes]]]:
        return succeed(list(self.inner.iter_records()))

    def stats(self) -> StoreStats:
        return self.inner.stats()

    def on_created(self, hook: Hook) -> None:
        self.inner.on_created(hook)

    def on_evicted(self, hook: Hook) -> None:
        self.inner.on_evicted(hook)

    def on_expired(self, hook: Hook) -> None:
        self.inner.on_expired(hook)


def test_a_store_in_another_process_serves_the_same_routes() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app, slab = waiting_app(clock)
    inner: list[MemorySlab] = []

    def remote(name: str, options: SlabOptions, c: IReactorTime) -> ISessionStore:
        inner.append(memory_store(name, options, c))
        return RemoteStore(inner[0], clock)

    harness = SessionHarness(app, clock=clock)
    slab.close()
    slab.open(clock, store_factory=remote)
    pages: list[Page] = []
    for _ in range(5):
        harness.request("/async").addCallback(pages.append)
    with capturedLogs():
        harness.request("/async-boom").addCallback(pages.append)
    for _ in range(40):
        clock.advance(0.5)
    assert [p.body for p in pages] == [
        "count 1",
        "count 2",
        "count 3",
        "count 4",
        "count 5",
        "",
    ]
    assert pages[-1].status == 42
    assert Tally(count=5) == slab.codec.decode(
        inner[0].peek_now(fingerprint_of("player")) or b""
    )


def test_hundreds_queued_behind_a_waiting_handler_are_all_served() -> None:
    """Handing the record on is a loop, not a recursion that a long queue overflows."""
    clock = Clock()
    clock.advance(1_767_225_600)
    app, slab = waiting_app(clock)

    @app.session_route("/now", record=Tally)
    def now(request: Request, record: Tally) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    harness.request("/async").addCallback(pages.append)
    for _ in range(2000):
        harness.request("/now").addCallback(pages.append)
    clock.advance(1)
    assert [f"count {n}" for n in range(1, 2002)] == sorted(
        (p.body for p in pages), key=lambda body: int(body.split()[1])
    )
    assert 0 == len(slab.turns)


def test_a_waiting_request_whose_client_left_is_not_played() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app, slab = waiting_app(clock)
    route = app.routes[0][1]
    harness = SessionHarness(app, clock=clock)
    first: list[Page] = []
    harness.request("/async").addCallback(first.append)
    environ = make_environ("/async", player="player")
    left = route(Request(environ))
    assert isinstance(left, DeferredResponse)
    left.body.cancel()  # what Jetforce does when the connection is lost
    left.body.addErrback(lambda f: None)
    clock.advance(1)
    clock.advance(1)
    assert ["count 1"] == [p.body for p in first]
    assert Tally(count=1) == stored(slab, "player")
    assert [] == clock.getDelayedCalls()


def test_a_handler_that_never_answers_is_cancelled_and_frees_the_record() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app = SessionApplication("stuck")
    slab = app.slab(Tally, record_size=64)

    @app.session_route("/stuck", record=Tally, timeout=5)
    def stuck(request: Request, record: Tally) -> Deferred[Response]:
        record.count += 1
        return Deferred()  # a callback that was lost

    @app.session_route("/look", record=Tally)
    def look(request: Request, record: Tally) -> Response:
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    with capturedLogs() as events:
        harness.request("/stuck").addCallback(pages.append)
        harness.request("/look").addCallback(pages.append)
        clock.advance(4.9)
        assert [] == pages
        clock.advance(0.1)
    # The waiter is started as the record is handed on, before the stuck
    # request's own answer is written: compare regardless of order.
    assert [
        Page(20, "text/plain", "count 0"),
        Page(40, "The game took too long to answer; your previous state is kept", ""),
    ] == sorted(pages, key=lambda page: page.status)
    assert ["session route {name} took longer than {timeout} s; cancelled"] == [
        e["log_format"] for e in events
    ]
    assert stored(slab, "player") is None


def test_a_deferred_body_reaches_the_player_on_the_waiting_path() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
    app = SessionApplication("body")
    app.slab(Tally, record_size=64)

    @app.session_route("/later", record=Tally)
    async def later(request: Request, record: Tally) -> Response:
        await deferLater(clock, 1, lambda: None)
        return Response(
            Status.SUCCESS, "text/plain", deferLater(clock, 1, lambda: "late body")
        )

    harness = SessionHarness(app, clock=clock)
    pages: list[Page] = []
    harness.request("/later").addCallback(pages.append)
    clock.advance(1)
    clock.advance(1)
    assert [Page(20, "text/plain", "late body")] == pages


def test_a_timeout_of_the_handlers_own_is_a_failure_not_the_time_limit() -> None:
    clock = Clock()
    clock.advance(1_767_225_600)
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
