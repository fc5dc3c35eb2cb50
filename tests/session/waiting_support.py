"""What the tests of handlers and stores that wait share: a record, a Clock,
gates the test opens, an app of handlers that wait, and clients that leave."""

from __future__ import annotations

from typing import Any

import attrs
from jetforce.app.base import DeferredResponse, Request, Response, Status
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock, deferLater

from jetforce_sesh import SessionApplication, Slab
from jetforce_sesh.testing import (
    START,
    Page,
    SessionHarness,
    fingerprint_of,
    make_environ,
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
