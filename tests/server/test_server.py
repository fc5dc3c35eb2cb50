"""SessionServer's start and stop around its stores, on a MemoryReactorClock:
stores that do not open in time, or do not close, stop it with one line."""

from __future__ import annotations

import sys
from typing import ClassVar

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent

from jetforce_sesh import SessionApplication, SlabOptions
from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.server.server import CLOSE_TIMEOUT, OPEN_TIMEOUT, SessionServer
from jetforce_sesh.stores import MemoryStore
from jetforce_sesh.stores.contract import StoreSpec


@attrs.define
class Visits:
    count: int = 0


def capsule() -> SessionApplication:
    app = SessionApplication("server test")
    app.slab(Visits, record_size=32)

    @app.session_route("/", record=Visits)
    def visit(request: Request, record: Visits) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", str(record.count))

    return app


class StuckOnClose(MemoryStore):
    """A store whose close never ends: a database that stopped answering."""

    def close(self) -> Deferred[None]:
        super().close()
        return Deferred()


def stuck(spec: StoreSpec) -> StuckOnClose:
    return StuckOnClose(
        spec.name,
        record_size=spec.record_size,
        capacity=spec.options.max_records,
        clock=spec.clock,
    )


def server_for(
    app: SessionApplication, reactor: MemoryReactorClock, ready: Deferred[list[str]]
) -> SessionServer:
    return SessionServer(
        app, reactor=reactor, ready=ready, apps=[app], grace=0, use_tls=False
    )


def test_stores_that_do_not_open_in_time_stop_the_server_before_it_listens(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reactor = MemoryReactorClock()
    # As the launcher gathers them: one Deferred per application's stores.
    opening: Deferred[list[None]] = gatherResults(
        [Deferred(), Deferred()], consumeErrors=True
    )
    server = server_for(capsule(), reactor, opening.addCallback(lambda _: []))
    server.initialize()
    reactor.advance(OPEN_TIMEOUT - 0.5)
    assert ("", 0) == (capsys.readouterr().err, server.exit_code)
    reactor.advance(0.5)
    assert (
        f"jetforce-sesh: error: the stores did not open within {OPEN_TIMEOUT:g} s:"
        f" check that what they need is running and reachable\n",
        2,
        [],
    ) == (capsys.readouterr().err, server.exit_code, reactor.tcpServers)


def test_stores_that_do_not_close_in_time_do_not_hold_the_stop_forever(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reactor = MemoryReactorClock()
    app = capsule()
    opened = app.open(reactor, SlabOptions(max_records=10), stuck)
    server = server_for(app, reactor, opened.addCallback(lambda _: []))
    stopped = server.shut_down()
    reactor.advance(CLOSE_TIMEOUT - 0.5)
    assert (False, "") == (stopped.called, capsys.readouterr().err)
    reactor.advance(0.5)
    assert (
        True,
        f"jetforce-sesh: error: the stores did not close within {CLOSE_TIMEOUT:g} s;"
        f" stopping without them\n",
        1,
    ) == (stopped.called, capsys.readouterr().err, server.exit_code)


def test_stores_that_close_stop_the_server_quietly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reactor = MemoryReactorClock()
    app = capsule()
    opened = app.open(reactor, SlabOptions(max_records=10))
    server = server_for(app, reactor, opened.addCallback(lambda _: []))
    stopped = server.shut_down()
    assert (True, "", 0) == (stopped.called, capsys.readouterr().err, server.exit_code)


def test_the_final_figures_are_logged_once_stopped_if_it_served() -> None:
    reactor = MemoryReactorClock()
    app = capsule()
    server = server_for(app, reactor, app.open(reactor).addCallback(lambda _: []))
    server.ports.append(reactor.listenTCP(0, server))  # as once it listens
    server.stats.answered(20)
    with capturedLogs() as events:
        stopped = server.shut_down()
    assert stopped.called
    assert [
        "final: 1 requests (1 2x), 1.00/s over the last minute",
        "final: slab tests.server.test_server.Visits: 0/10000 records (1.1 MiB),"
        " 0 hits,"
        " 0 misses, 0 created, 0 evicted, 0 expired, 0 refused, 0 too large,"
        " 0 failed, 0 timed out",
    ] == [formatEvent(event) for event in events]


def test_a_server_that_never_listened_logs_no_figures() -> None:
    reactor = MemoryReactorClock()
    app = capsule()
    server = server_for(app, reactor, app.open(reactor).addCallback(lambda _: []))
    with capturedLogs() as events:
        server.shut_down()
    assert [] == events


class SlowToOpen(MemoryStore):
    """A store that opens when the test says so, or fails to (a Redis that
    has not answered yet)."""

    gates: ClassVar[list[Deferred[None]]] = []

    def open(self) -> Deferred[None]:
        gate: Deferred[None] = Deferred()
        SlowToOpen.gates.append(gate)
        return gate.addCallback(lambda _: super(SlowToOpen, self).open())


def slow(spec: StoreSpec) -> SlowToOpen:
    return SlowToOpen(
        spec.name,
        record_size=spec.record_size,
        capacity=spec.options.max_records,
        clock=spec.clock,
    )


def opening_server() -> tuple[SessionServer, MemoryReactorClock, list[Deferred[None]]]:
    """A server whose stores are still opening, started; and their gates."""
    SlowToOpen.gates = []
    reactor = MemoryReactorClock()
    app = capsule()
    opened = app.open(reactor, SlabOptions(max_records=10), slow)
    server = server_for(app, reactor, opened.addCallback(lambda _: []))
    server.initialize()
    return server, reactor, SlowToOpen.gates


def test_a_stop_while_the_stores_open_waits_for_them_and_serves_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, reactor, gates = opening_server()
    stopped = server.shut_down()
    assert not stopped.called
    for gate in gates:
        gate.callback(None)
    assert (True, [], "", 0) == (
        stopped.called,
        reactor.tcpServers,
        capsys.readouterr().err,
        server.exit_code,
    )
    assert not reactor.hasStopped  # left to whoever asked for the stop


def test_a_stop_while_the_stores_fail_to_open_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, reactor, gates = opening_server()
    stopped = server.shut_down()
    for gate in gates:
        gate.errback(StoreUnavailable("Redis at redis://h/0 did not answer within 3 s"))
    assert (
        True,
        "jetforce-sesh: error: the stores could not be opened: StoreUnavailable:"
        " Redis at redis://h/0 did not answer within 3 s\n",
        2,
    ) == (stopped.called, capsys.readouterr().err, server.exit_code)
    # The reactor is stopping already: the failed open does not stop it again
    # (a real one would raise ReactorNotRunning).
    assert [] == reactor.whenRunningHooks


def test_a_second_stop_signal_is_said_and_does_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    reactor = MemoryReactorClock()
    app = capsule()
    server = server_for(app, reactor, app.open(reactor).addCallback(lambda _: []))
    reactor.run()
    server.stop_for("SIGHUP")
    server.stop_for("SIGTERM")
    assert (
        "SIGHUP: stopping gracefully (jetforce-sesh reads its settings only at"
        " start-up: start it again to apply a change)\n"
        "SIGTERM: already stopping\n",
        True,
    ) == (capsys.readouterr().err, reactor.hasStopped)


class Writes:
    """A stream that keeps each write apart, as an unbuffered pipe would."""

    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_a_message_is_one_write_so_workers_sharing_a_stream_keep_lines_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = Writes()
    monkeypatch.setattr(sys, "stderr", stream)
    server = server_for(capsule(), MemoryReactorClock(), Deferred())
    server.log_message("SIGTERM: stopping gracefully")
    assert ["SIGTERM: stopping gracefully\n"] == stream.writes
