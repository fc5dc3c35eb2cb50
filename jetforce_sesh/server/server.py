"""The Gemini server the launcher runs: Jetforce's, opened and closed with care.

It listens only once every store is open, prints what the capsule holds, learns
its port when given port 0, and on SIGINT, SIGTERM or SIGHUP stops accepting,
lets the requests in flight finish (each application answers the ones still
queued and cuts off what outlasts the grace period), waits for their answers to
reach the clients before the reactor drops the connections, and logs the final
figures. A stop asked for while the stores are still opening waits for them to
open (or fail) and then closes them, with one line and no traceback. It counts
every request as the access log writes it (``stats``).
"""

from __future__ import annotations

import signal
import sys
import warnings
from collections.abc import Sequence
from types import FrameType
from typing import Any

from jetforce.server import ABOUT, GeminiServer
from jetforce.tls import GeminiCertificateOptions
from twisted.application.service import IService
from twisted.internet.defer import (
    Deferred,
    FirstError,
    gatherResults,
    maybeDeferred,
    succeed,
)
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.tcp import Port
from twisted.protocols.haproxy import proxyEndpoint
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

from jetforce_sesh.server.banner import address_line
from jetforce_sesh.server.interfaces import listen_interfaces
from jetforce_sesh.server.protocol import SessionProtocol
from jetforce_sesh.server.stats import (
    ServerStats,
    SlabFigures,
    Summaries,
    log_summary,
    open_slabs,
)
from jetforce_sesh.session.application import SessionApplication, home_url
from jetforce_sesh.session.slab import Slab

#: Seconds the stores get to open before the server gives up.
OPEN_TIMEOUT = 30.0
#: Seconds the stores get to close, past the grace period, before the server
#: stops without them.
CLOSE_TIMEOUT = 30.0
#: Seconds answered requests get to reach their clients at shutdown.
DRAIN_TIMEOUT = 5.0
#: Connections the kernel may hold for the server before it accepts them.
BACKLOG = 1024
#: The signals that stop the server gracefully. SIGHUP too: the server reads its
#: settings once, at start-up, so it has nothing to reload; its default action
#: (dying on the spot) would cut off requests and leave the bridge socket behind.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class SessionServer(GeminiServer):
    """GeminiServer that listens once its stores are open, shows its slabs,
    learns its port when given port 0, and shuts down gracefully."""

    protocol_class = SessionProtocol

    def __init__(
        self,
        *args: Any,
        ready: Deferred[list[str]] | None = None,
        apps: Sequence[SessionApplication] = (),
        grace: float = 10.0,
        services: Sequence[IService] = (),
        summary_every: float = 0.0,
        **kwargs: Any,
    ) -> None:
        if "sessions" in kwargs:
            warnings.warn(
                "SessionServer(sessions=...) is SessionServer(apps=...) since"
                " jetforce-sesh 0.3; the old name goes in 0.4",
                DeprecationWarning,
                stacklevel=2,
            )
            apps = kwargs.pop("sessions")
        super().__init__(*args, **kwargs)
        #: Every request and its answer, counted as the access log writes them.
        self.stats = ServerStats(self.reactor)
        #: Fires with the banner lines once every store serves.
        self.ready = ready if ready is not None else succeed([])
        #: The session applications served, opened and closed with the server.
        self.apps = list(apps)
        self.summaries = Summaries(self.stats, self.slabs(), summary_every)
        self.grace = grace
        #: Started once the stores are open, stopped first at shutdown (the
        #: CGI bridge).
        self.services = list(services)
        self.connections: set[SessionProtocol] = set()
        self.ports: list[Port] = []
        self._unbound: list[str] = []
        #: What the process exits with once the reactor stops.
        self.exit_code = 0
        self._drained: Deferred[None] | None = None
        self._open_late: list[bool] = []
        #: True once every store is open, False once they failed to; None while
        #: they are opening.
        self.opened: bool | None = None
        self._settled: list[Deferred[None]] = []
        #: True once the server is stopping: nothing may start listening then.
        self.stopping = False

    def slabs(self) -> list[Slab[Any]]:
        """Every slab served, once each (a game may be in two applications)."""
        found = {id(slab): slab for a in self.apps for slab in a.slabs.values()}
        return list(found.values())

    def log_message(self, message: str) -> None:
        # Jetforce's print() writes the line and its newline apart when the
        # stream is unbuffered (PYTHONUNBUFFERED, as under systemd or a test),
        # and the workers of --workers share the stream: their lines ran into
        # each other. One write per line keeps each whole.
        sys.stderr.write(f"{message}\n")

    def run(self) -> None:
        # Jetforce's, without its "Server hostname is gemini://..." line, which
        # leaves the port out: the address is printed once listening, complete.
        self.log_message(ABOUT)
        if self.proxy_protocol:
            self.log_message("PROXY protocol is enabled")
        if self.use_tls:
            self.log_message(f"TLS Certificate File: {self.certfile}")
            self.log_message(f"TLS Private Key File: {self.keyfile}")
        else:
            self.log_message("TLS is disabled")
        # Before anything listens (the stores may be open already, and then it
        # listens at once): a signal that comes before the reactor runs stops
        # it gracefully as soon as it does. Twisted installs its own as it
        # starts; ours go back in place then.
        self._handle_signals()
        self.initialize()
        self.reactor.callWhenRunning(self._handle_signals)
        self.reactor.run()

    def _handle_signals(self) -> None:
        # In place of Twisted's own: a second signal while stopping must not
        # stop a reactor already stopping (a ReactorNotRunning traceback), and
        # SIGHUP stops gracefully too.
        for number in STOP_SIGNALS:
            signal.signal(number, self._signalled)

    def _signalled(self, number: int, frame: FrameType | None) -> None:
        self.reactor.callFromThread(self.stop_for, signal.Signals(number).name)

    def stop_for(self, name: str) -> None:
        """Stop gracefully, as signal ``name`` asks; once, however many come."""
        if self.stopping:
            self.log_message(f"{name}: already stopping")
            return
        if name == "SIGHUP":
            self.log_message(
                "SIGHUP: stopping gracefully (jetforce-sesh reads its settings only"
                " at start-up: start it again to apply a change)"
            )
        else:
            self.log_message(f"{name}: stopping gracefully")
        self.stopping = True
        self.reactor.stop()

    def initialize(self) -> None:
        self.reactor.addSystemEventTrigger("before", "shutdown", self.shut_down)
        self._open_late = _give_up_after(self.ready, OPEN_TIMEOUT, self.reactor)
        self.ready.addCallbacks(self._listen, self._cannot_open)
        self.ready.addBoth(self._settle)

    def _settle(self, _: object) -> None:
        waiting, self._settled = self._settled, []
        for each in waiting:
            each.callback(None)

    def settled(self) -> Deferred[None]:
        """Fires once the stores have opened, or failed to."""
        if self.ready.called:
            return succeed(None)
        waiting: Deferred[None] = Deferred()
        self._settled.append(waiting)
        return waiting

    def _listen(self, banner: list[str]) -> None:
        self.opened = True
        if self.stopping:
            return  # asked to stop while the stores opened: serve nothing
        for service in self.services:
            try:
                service.startService()  # type: ignore[no-untyped-call]
            except Exception as error:
                self._cannot_start(f"cannot listen: {error}")
                return
        for line in banner:
            self.log_message(line)
        self.summaries.start()
        self._unbound = listen_interfaces(self.host)
        for interface in list(self._unbound):
            self.bind_interface(interface)

    def wrapped_factory(self) -> Any:
        """This factory as a listening socket serves it: in TLS unless
        ``use_tls`` is off (Jetforce's own wrapping, with our certificate
        options)."""
        if not self.use_tls:
            return self
        options = GeminiCertificateOptions(
            certfile=self.certfile,  # type: ignore[arg-type]
            keyfile=self.keyfile,
            cafile=self.cafile,
            capath=self.capath,
        )
        return TLSMemoryBIOFactory(options, False, self)

    def bind_interface(self, interface: str) -> None:
        # Jetforce's, but a port that cannot be bound stops the server with one
        # line instead of a traceback, and an IPv6 interface gets an IPv6 socket.
        factory = self.wrapped_factory()
        kind = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
        # A deeper accept queue than Twisted's 50: a burst of new players (every
        # Gemini request is a new connection) must not lose connects.
        endpoint: Any = kind(self.reactor, self.port, BACKLOG, interface)
        if self.proxy_protocol:
            endpoint = proxyEndpoint(endpoint)
        listening = endpoint.listen(factory)
        listening.addCallbacks(self.on_bind_interface, self._cannot_listen)

    def _cannot_listen(self, failure: Failure) -> None:
        self._cannot_start(f"cannot listen: {failure.getErrorMessage()}")

    def _cannot_start(self, why: str) -> None:
        print(f"jetforce-sesh: error: {why}", file=sys.stderr)
        self.exit_code = 2
        self._stop_reactor()

    def _stop_reactor(self) -> None:
        # Once: a reactor already stopping (a signal came first) must not be
        # stopped again.
        if not self.stopping:
            self.stopping = True
            self.reactor.callWhenRunning(self.reactor.stop)

    def _cannot_open(self, failure: Failure) -> None:
        self.opened = False
        error = failure.value
        # Stores open per slab, slabs per application: a failure comes wrapped
        # once for each gathering.
        while isinstance(error, FirstError):
            error = error.subFailure.value
        if self._open_late:
            why = (
                f"the stores did not open within {OPEN_TIMEOUT:g} s: check that"
                f" what they need is running and reachable"
            )
        else:
            why = f"the stores could not be opened: {type(error).__name__}: {error}"
        print(f"jetforce-sesh: error: {why}", file=sys.stderr)
        self.exit_code = 2
        self._stop_reactor()

    def on_bind_interface(self, port: Port) -> None:
        self.ports.append(port)
        if self.port == 0:
            # Routes match on the port too (strict_port): tell them the real one.
            self.port = port.getHost().port  # type: ignore[no-untyped-call]
        super().on_bind_interface(port)
        if len(self.ports) == len(self._unbound):
            # Last, where it is seen: the address that works as printed.
            url = home_url(self.hostname, self.port)
            self.log_message(address_line(url, self.use_tls))

    # -- shutting down ---------------------------------------------------------

    def shut_down(self) -> Deferred[None]:
        """Stop accepting, finish what is in flight, close the stores, and log
        the final figures. Asked while the stores are still opening, first wait
        for them to open or fail (OPEN_TIMEOUT at most)."""
        self.stopping = True
        if not self.ready.called:
            return self.settled().addCallback(lambda _: self._close())
        return self._close()

    def _close(self) -> Deferred[None]:
        self.summaries.stop()
        # Kept now, for the figures once closed: a closed slab lets go of them.
        stores = [(slab, slab.store) for slab in open_slabs(self.slabs())]
        for port in self.ports:
            port.stopListening()  # type: ignore[no-untyped-call]
        # A service stopping later (a socket file to remove) is waited for too.
        stopping = [
            maybeDeferred(service.stopService)
            for service in self.services
            if service.running
        ]
        for connection in list(self.connections):
            if not connection.busy:
                # Connected but nothing asked yet: nothing to finish.
                connection.finish_connection()
        closing = [app.close(self.grace) for app in self.apps]
        done: Deferred[Any] = gatherResults(closing, consumeErrors=True)
        late = _give_up_after(done, self.grace + CLOSE_TIMEOUT, self.reactor)
        if self.opened is False:
            # Stores that never opened fail to close the same way: said once,
            # by _cannot_open.
            done.addErrback(lambda _: None)
        done.addErrback(self._cannot_close, late)
        done.addBoth(lambda _: gatherResults(stopping, consumeErrors=True))
        done.addBoth(lambda _: self.drained(DRAIN_TIMEOUT))

        def final(_: object) -> None:
            if not self.ports:
                return  # it never served (its stores could not open): no figures
            figures = [SlabFigures.of(slab, store) for slab, store in stores]
            log_summary(self.stats, figures, "final")

        return done.addCallback(final)

    def _cannot_close(self, failure: Failure, late: list[bool]) -> None:
        # Every answered change is in its store already; what a store could not
        # finish (a last flush) is its own to say. The exit status tells.
        error = failure.value
        if isinstance(error, FirstError):
            error = error.subFailure.value
        if late:
            why = f"the stores did not close within {CLOSE_TIMEOUT:g} s"
        else:
            why = f"the stores could not be closed: {type(error).__name__}: {error}"
        print(f"jetforce-sesh: error: {why}; stopping without them", file=sys.stderr)
        self.exit_code = 1

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


def _give_up_after(deferred: Deferred[Any], seconds: float, reactor: Any) -> list[bool]:
    """Cancel ``deferred`` if it has not fired within ``seconds``; the list
    returned holds True once that happened. (``Deferred.addTimeout`` tells a
    time-out apart only when the Deferred itself is cancelled, and a gathered
    one fails with its first child's cancellation instead.)"""
    late: list[bool] = []

    def expire() -> None:
        late.append(True)
        deferred.cancel()

    call = reactor.callLater(seconds, expire)

    def stop(result: object) -> object:
        if call.active():
            call.cancel()
        return result

    deferred.addBoth(stop)
    return late
