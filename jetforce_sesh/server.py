"""The Gemini server the launcher runs: Jetforce's, opened and closed with care.

It listens only once every store is open, prints what the capsule holds, learns
its port when given port 0, and on SIGINT or SIGTERM stops accepting, lets the
requests in flight finish (each application answers the ones still queued and
cuts off what outlasts the grace period), and waits for their answers to reach
the clients before the reactor drops the connections.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from jetforce.protocol import GeminiProtocol
from jetforce.server import GeminiServer
from twisted.internet.defer import (
    Deferred,
    FirstError,
    gatherResults,
    succeed,
)
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.internet.tcp import Port
from twisted.python.failure import Failure

from jetforce_sesh.application import SessionApplication

#: Seconds the stores get to open before the server gives up.
OPEN_TIMEOUT = 30.0
#: Seconds answered requests get to reach their clients at shutdown.
DRAIN_TIMEOUT = 5.0


class SessionProtocol(GeminiProtocol):
    """Jetforce's protocol, known to its server while the connection lasts."""

    server: SessionServer
    busy = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self.server.connections.add(self)

    def lineReceived(self, line: bytes) -> Deferred[None]:
        self.busy = True
        return super().lineReceived(line)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.server.forget(self)


class SessionServer(GeminiServer):
    """GeminiServer that listens once its stores are open, shows its slabs,
    learns its port when given port 0, and shuts down gracefully."""

    protocol_class = SessionProtocol

    def __init__(
        self,
        *args: Any,
        ready: Deferred[list[str]] | None = None,
        sessions: Sequence[SessionApplication] = (),
        grace: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        #: Fires with the banner lines once every store serves.
        self.ready = ready if ready is not None else succeed([])
        self.sessions = list(sessions)
        self.grace = grace
        self.connections: set[SessionProtocol] = set()
        self.ports: list[Port] = []
        #: What the process exits with once the reactor stops.
        self.exit_code = 0
        self._drained: Deferred[None] | None = None

    def initialize(self) -> None:
        self.reactor.addSystemEventTrigger("before", "shutdown", self.shut_down)
        self.ready.addTimeout(OPEN_TIMEOUT, self.reactor)
        self.ready.addCallbacks(self._listen, self._cannot_open)

    def _listen(self, banner: list[str]) -> None:
        for line in banner:
            self.log_message(line)
        super().initialize()

    def _cannot_open(self, failure: Failure) -> None:
        error = failure.value
        if isinstance(error, FirstError):
            error = error.subFailure.value
        if isinstance(error, TimeoutError):
            why = (
                f"the stores did not open within {OPEN_TIMEOUT:g} s: check that"
                f" what they need is running and reachable"
            )
        else:
            why = f"the stores could not be opened: {type(error).__name__}: {error}"
        print(f"jetforce-sesh: error: {why}", file=sys.stderr)
        self.exit_code = 2
        self.reactor.callWhenRunning(self.reactor.stop)

    def on_bind_interface(self, port: Port) -> None:
        self.ports.append(port)
        if self.port == 0:
            # Routes match on the port too (strict_port): tell them the real one.
            self.port = port.getHost().port  # type: ignore[no-untyped-call]
        super().on_bind_interface(port)

    # -- shutting down ---------------------------------------------------------

    def shut_down(self) -> Deferred[None]:
        """Stop accepting, finish what is in flight, close the stores."""
        for port in self.ports:
            port.stopListening()  # type: ignore[no-untyped-call]
        for connection in list(self.connections):
            if not connection.busy:
                # Connected but nothing asked yet: nothing to finish.
                connection.finish_connection()
        closing = [app.close(self.grace) for app in self.sessions]
        done: Deferred[Any] = gatherResults(closing, consumeErrors=True)
        return done.addBoth(lambda _: self.drained(DRAIN_TIMEOUT))

    def drained(self, timeout: float) -> Deferred[None]:
        """Fires once every connection has closed, or after ``timeout`` seconds."""
        drained: Deferred[None] = Deferred()
        if not self.connections:
            drained.callback(None)
            return drained
        self._drained = drained
        late: IDelayedCall = self.reactor.callLater(timeout, self._drain_done)
        drained.addBoth(lambda result: late.cancel() if late.active() else None)
        return drained

    def forget(self, connection: SessionProtocol) -> None:
        self.connections.discard(connection)
        if not self.connections:
            self._drain_done()

    def _drain_done(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.called:
            drained.callback(None)
