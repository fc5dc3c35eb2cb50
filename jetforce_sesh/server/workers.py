"""One worker of ``--workers N``: a SessionServer that serves the listening
sockets its supervisor made, tells the supervisor once it serves, and learns
the other workers from it.

The supervisor (``jetforce_sesh.cli.workers``) binds the port once and hands
every worker the same listening sockets, so the kernel keeps one queue of
connections for them all: a worker that dies leaves the connections waiting
in it to the others. A worker talks to its supervisor over two pipes: on its
standard input the supervisor writes the table of workers, a JSON object a
line, whenever it changes; the worker writes ``ready`` on :data:`STATUS_FD`
once it serves. The end of its standard input means the supervisor is gone:
the worker then stops gracefully, as on SIGTERM, rather than serve on alone.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import attrs
from twisted.internet.endpoints import AdoptedStreamServerEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.stdio import StandardIO
from twisted.internet.tcp import Port
from twisted.protocols.haproxy import proxyEndpoint
from twisted.python.failure import Failure

from jetforce_sesh.server.server import SessionServer

#: The environment variable that makes a ``jetforce-sesh`` process a worker:
#: JSON, ``{"index": 1, "count": 2, "sockets": {"127.0.0.1": 4}}``.
WORKER_VARIABLE = "JETFORCE_SESH_WORKER"
#: The worker's end of the pipe it says ``ready`` on.
STATUS_FD = 3
#: The first descriptor of the listening sockets handed to a worker.
FIRST_SOCKET_FD = 4


@attrs.frozen
class WorkerInfo:
    """One worker, as the supervisor shows it."""

    index: int
    pid: int
    #: Times it was started again after it died.
    restarts: int
    #: "starting", "serving", "waiting" (to be started again) or "stopped".
    state: str


@attrs.frozen
class WorkerPlace:
    """What a worker is told by its supervisor through the environment."""

    index: int
    count: int
    #: The descriptor of the listening socket of each interface.
    sockets: Mapping[str, int]

    def encoded(self) -> str:
        return json.dumps(
            {"index": self.index, "count": self.count, "sockets": dict(self.sockets)}
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> WorkerPlace | None:
        text = environ.get(WORKER_VARIABLE)
        if not text:
            return None
        found = json.loads(text)
        return cls(int(found["index"]), int(found["count"]), dict(found["sockets"]))


@attrs.define
class WorkersView:
    """The workers as this process knows them: itself, and the supervisor's
    last table (empty in a process that is no worker)."""

    #: This process's number among the workers (0: it is no worker).
    index: int = 0
    count: int = 1
    workers: list[WorkerInfo] = attrs.Factory(list)

    def update(self, line: bytes) -> None:
        """Read the supervisor's table from one line of JSON."""
        found = json.loads(line)
        self.workers = [WorkerInfo(**entry) for entry in found["workers"]]

    def lines(self) -> list[str]:
        """The workers as /admin and the banner show them."""
        if not self.index:
            return []
        me = os.getpid()
        shown = [
            f"* Worker {info.index}: pid {info.pid}, {info.state},"
            f" {info.restarts} restart{'' if info.restarts == 1 else 's'}"
            + (" (this page)" if info.pid == me else "")
            for info in self.workers
        ]
        return [
            f"{self.count} worker processes share the port; worker {self.index}"
            f" (pid {me}) answered this page.",
            *shown,
        ]


class _Control(Protocol):
    """The worker's end of its two pipes to the supervisor."""

    def __init__(self, server: WorkerServer) -> None:
        self.server = server
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            if line.strip():
                self.server.view.update(line)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Only the supervisor writes to this pipe: its end means the
        # supervisor died (kill -9) or closed it. Serving on alone would leave
        # an orphan on the port that nobody restarts or stops.
        if not self.server.stopping:
            self.server.stop_for("the supervisor is gone")


class WorkerServer(SessionServer):
    """A SessionServer on sockets its supervisor listens on already."""

    def __init__(
        self, *args: Any, place: WorkerPlace, view: WorkersView, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.place = place
        self.view = view
        self.control: StandardIO | None = None

    def run(self) -> None:
        # Read by the reactor: the supervisor's table, and the end of it.
        self.control = StandardIO(  # type: ignore[no-untyped-call,call-arg]
            _Control(self), stdin=0, stdout=STATUS_FD, reactor=self.reactor
        )
        super().run()

    def log_message(self, message: str) -> None:
        # Worker 1 speaks for all at start-up (the others would say the same
        # N times); once serving, each says who it is.
        if not self.ports:
            if self.place.index == 1:
                super().log_message(message)
            return
        super().log_message(f"worker {self.place.index}: {message}")

    def bind_interface(self, interface: str) -> None:
        factory = self.wrapped_factory()
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        endpoint: Any = AdoptedStreamServerEndpoint(  # type: ignore[no-untyped-call]
            self.reactor, self.place.sockets[interface], family
        )
        if self.proxy_protocol:
            endpoint = proxyEndpoint(endpoint)
        endpoint.listen(factory).addCallbacks(
            self.on_bind_interface, self._cannot_adopt
        )

    def _cannot_adopt(self, failure: Failure) -> None:
        self._cannot_start(f"cannot serve the supervisor's socket: {failure.value}")

    def on_bind_interface(self, port: Port) -> None:
        # The supervisor said where it listens; this worker only says it serves.
        self.ports.append(port)
        if len(self.ports) == len(self.place.sockets) and self.control is not None:
            self.control.write(b"ready\n")  # type: ignore[no-untyped-call]


def listening_sockets(
    interfaces: Sequence[str], port: int, backlog: int
) -> tuple[int, list[socket.socket]]:
    """Listen on ``port`` of every interface, as a single server would; the
    port (the one the system chose for port 0) and the sockets."""
    made: list[socket.socket] = []
    try:
        for interface in interfaces:
            family = socket.AF_INET6 if ":" in interface else socket.AF_INET
            listener = socket.socket(family, socket.SOCK_STREAM)
            made.append(listener)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((interface, port))
            listener.listen(backlog)
            listener.setblocking(False)
            port = listener.getsockname()[1]
    except OSError:
        for listener in made:
            listener.close()
        raise
    return port, made
