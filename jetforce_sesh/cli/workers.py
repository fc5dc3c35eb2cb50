"""``--workers N``: one command, N server processes on one port.

The supervisor binds the port itself, once, and hands the listening sockets to
N workers, each a ``jetforce-sesh`` process of its own started with the same
flags (see ``jetforce_sesh.server.workers``). One listening socket rather
than N with ``SO_REUSEPORT``: the kernel keeps one queue of connections, which
the workers take from as each is free, so a worker that dies (kill -9) loses
none of the connections waiting in the queue to it, the others take them;
port 0 works as with one process; and no other process of this user can bind
the port beside it and receive part of the players. Workers are spawned, not
forked: each imports the capsule and opens its stores itself, as a single
server does, with no reactor, thread or connection copied from the parent.

A worker that dies is started again, with a line in the log: at once if it
had served, else after a wait that doubles from :data:`FIRST_WAIT` to
:data:`LAST_WAIT`, so a worker that cannot start does not spin. SIGTERM,
SIGINT or SIGHUP to the supervisor is handed to every worker, which stops as
a single server does (requests in flight answered, stores closed, its bridge
socket removed); the supervisor exits once they all have, 0 if every one
stopped cleanly. The first start is the start-up check: a worker that exits
with status 2 then (a bad flag, a Redis that does not answer) stops the
others, and the supervisor exits 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IDelayedCall, IProcessTransport
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure

from jetforce_sesh.cli.adhoc import ad_hoc_certificate
from jetforce_sesh.cli.checks import (
    UsageError,
    check_hostname,
    check_port,
    check_tls_flags,
)
from jetforce_sesh.server.banner import address_line, workers_line
from jetforce_sesh.server.interfaces import listen_interfaces
from jetforce_sesh.server.server import BACKLOG
from jetforce_sesh.server.workers import (
    FIRST_SOCKET_FD,
    STATUS_FD,
    WORKER_VARIABLE,
    WorkerInfo,
    WorkerPlace,
    listening_sockets,
)
from jetforce_sesh.session.application import home_url

#: Seconds before a worker that died before it served is started again; each
#: such death in a row doubles it, up to LAST_WAIT.
FIRST_WAIT = 1.0
LAST_WAIT = 60.0
#: Seconds past the workers' own grace and close time before the supervisor
#: kills a worker that has not stopped.
KILL_AFTER = 60.0
#: The signals that stop every worker gracefully (as they stop one server).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Starts worker ``place.index`` with ``protocol``: its transport.
Spawn = Callable[[WorkerPlace, ProcessProtocol], IProcessTransport]


class WorkerProtocol(ProcessProtocol):
    """The supervisor's end of one worker's pipes."""

    def __init__(self, supervisor: Supervisor, index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.ready = False
        self.buffer = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD != STATUS_FD:
            return
        self.buffer += data
        if not self.ready and b"ready\n" in self.buffer:
            self.ready = True
            self.supervisor.served(self.index)

    def processEnded(self, reason: Failure) -> None:
        self.supervisor.ended(self.index, reason.value or reason, self.ready)


def _exit_of(reason: object) -> tuple[int | None, str]:
    """A worker's exit status (None if a signal ended it), in words."""
    if isinstance(reason, ProcessDone):
        return 0, "exited with status 0"
    if isinstance(reason, ProcessTerminated):
        if reason.signal is not None:
            try:
                name = signal.Signals(reason.signal).name
            except ValueError:
                name = str(reason.signal)
            return None, f"was killed by {name}"
        return reason.exitCode, f"exited with status {reason.exitCode}"
    return None, str(reason)


def _say(line: str) -> None:
    # One write per line, as the workers' own (SessionServer.log_message):
    # they share the stream, and print() writes a line and its newline apart.
    sys.stderr.write(f"{line}\n")
    sys.stderr.flush()


class Supervisor:
    """Starts ``count`` workers, starts each again when it dies, and stops
    them all on a signal; ``exit_code`` once ``done`` fires."""

    def __init__(
        self,
        count: int,
        sockets: dict[str, int],
        spawn: Spawn,
        reactor: Any,
        *,
        on_ready: Callable[[], None] = lambda: None,
        on_done: Callable[[int], None] = lambda code: None,
        on_stopping: Callable[[], None] = lambda: None,
        log: Callable[[str], None] = _say,
        kill_after: float = KILL_AFTER,
    ) -> None:
        self.count = count
        self.sockets = sockets
        self.spawn = spawn
        self.reactor = reactor
        self.on_ready = on_ready
        self.on_done = on_done
        self.on_stopping = on_stopping
        self.log = log
        self.kill_after = kill_after
        self.transports: dict[int, IProcessTransport] = {}
        self.protocols: dict[int, WorkerProtocol] = {}
        self.restarts = dict.fromkeys(range(1, count + 1), 0)
        self.waits = dict.fromkeys(range(1, count + 1), FIRST_WAIT)
        self.states = dict.fromkeys(range(1, count + 1), "starting")
        self.pids = dict.fromkeys(range(1, count + 1), 0)
        self.pending: dict[int, IDelayedCall] = {}
        #: True once every worker has served once: deaths from then on are
        #: restarted, not start-up failures.
        self.started = False
        self.stopping = False
        self.exit_code = 0
        self._kill: IDelayedCall | None = None

    # -- starting ----------------------------------------------------------------

    def start(self) -> None:
        for index in range(1, self.count + 1):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        self.pending.pop(index, None)
        protocol = WorkerProtocol(self, index)
        place = WorkerPlace(index, self.count, self.sockets)
        transport = self.spawn(place, protocol)
        self.protocols[index] = protocol
        self.transports[index] = transport
        self.pids[index] = int(transport.pid or 0)
        self.states[index] = "starting"
        self._tell()

    def served(self, index: int) -> None:
        self.states[index] = "serving"
        self.waits[index] = FIRST_WAIT
        if self.restarts[index]:
            self.log(f"worker {index} (pid {self.pids[index]}) serves again")
        self._tell()
        if not self.started and all(s == "serving" for s in self.states.values()):
            self.started = True
            self.on_ready()

    # -- a worker ends -------------------------------------------------------------

    def ended(self, index: int, reason: object, served: bool) -> None:
        self.transports.pop(index, None)
        self.protocols.pop(index, None)
        status, how = _exit_of(reason)
        pid = self.pids[index]
        if self.stopping:
            self.states[index] = "stopped"
            if status != 0:
                self.log(f"worker {index} (pid {pid}) {how} while stopping")
                self.exit_code = self.exit_code or 1
            self._tell()
            self._finish_if_done()
            return
        if not self.started and not served and status == 2:
            # Its one line said why (a flag, a store that does not open): the
            # same for every worker, so stop them all, as one server would.
            self.exit_code = 2
            self.stop_for(None)
            return
        self.restarts[index] += 1
        if served:
            wait = 0.0
            self.log(f"worker {index} (pid {pid}) {how}; starting it again now")
        else:
            wait = self.waits[index]
            self.waits[index] = min(wait * 2, LAST_WAIT)
            self.log(
                f"worker {index} (pid {pid}) {how} before it served; starting it"
                f" again in {wait:g} s"
            )
        self.states[index] = "waiting"
        self._tell()
        self.pending[index] = self.reactor.callLater(wait, self._spawn, index)

    # -- stopping ------------------------------------------------------------------

    def stop_for(self, name: str | None) -> None:
        """Stop every worker gracefully, by signal ``name`` (SIGTERM if None)."""
        if self.stopping:
            if name is not None:
                self.log(f"{name}: already stopping")
            return
        self.stopping = True
        if name is not None:
            self.log(f"{name}: stopping the {self.count} workers gracefully")
        for call in self.pending.values():
            if call.active():
                call.cancel()
        for index in self.pending:
            self.states[index] = "stopped"
        self.pending.clear()
        self.on_stopping()
        number = signal.Signals[name] if name else signal.SIGTERM
        for transport in list(self.transports.values()):
            # One that ended meanwhile raises: its processEnded says so.
            with contextlib.suppress(Exception):
                transport.signalProcess(number.name[3:])
        self._kill = self.reactor.callLater(self.kill_after, self._kill_all)
        self._finish_if_done()

    def _kill_all(self) -> None:
        for index, transport in list(self.transports.items()):
            self.log(
                f"worker {index} (pid {self.pids[index]}) did not stop within"
                f" {self.kill_after:g} s: killing it"
            )
            self.exit_code = self.exit_code or 1
            with contextlib.suppress(Exception):
                transport.signalProcess("KILL")

    def _finish_if_done(self) -> None:
        if self.transports:
            return
        if self._kill is not None and self._kill.active():
            self._kill.cancel()
        self.on_done(self.exit_code)

    # -- the table every worker is told ----------------------------------------------

    def table(self) -> list[WorkerInfo]:
        return [
            WorkerInfo(index, self.pids[index], self.restarts[index], state)
            for index, state in sorted(self.states.items())
        ]

    def _tell(self) -> None:
        line = json.dumps({"workers": [info_dict(info) for info in self.table()]})
        for transport in self.transports.values():
            # Its pipe closed as it ended: it is told no more.
            with contextlib.suppress(Exception):
                transport.writeToChild(0, line.encode() + b"\n")


def info_dict(info: WorkerInfo) -> dict[str, Any]:
    return {
        "index": info.index,
        "pid": info.pid,
        "restarts": info.restarts,
        "state": info.state,
    }


def process_spawner(
    reactor: Any,
    command: Callable[[int], Sequence[str]],
    environ: dict[str, str],
) -> Spawn:
    """Spawn ``command(index)`` as a worker: its standard input and status pipe
    to the supervisor, its output the supervisor's, the listening sockets
    inherited."""

    def spawn(place: WorkerPlace, protocol: ProcessProtocol) -> IProcessTransport:
        fds: dict[int, int | str] = {0: "w", 1: 1, 2: 2, STATUS_FD: "r"}
        handed = {}
        for offset, (interface, fd) in enumerate(sorted(place.sockets.items())):
            fds[FIRST_SOCKET_FD + offset] = fd
            handed[interface] = FIRST_SOCKET_FD + offset
        told = WorkerPlace(place.index, place.count, handed)
        env = {**environ, WORKER_VARIABLE: told.encoded()}
        argv = list(command(place.index))
        transport: IProcessTransport = reactor.spawnProcess(
            protocol, argv[0], argv, env=env, childFDs=fds
        )
        return transport

    return spawn


def handle_signals(supervisor: Supervisor, reactor: Any) -> None:
    """SIGINT, SIGTERM and SIGHUP stop the workers (in place of Twisted's)."""

    def signalled(number: int, frame: FrameType | None) -> None:
        name = signal.Signals(number).name
        reactor.callFromThread(supervisor.stop_for, name)

    for number in STOP_SIGNALS:
        signal.signal(number, signalled)


def environ_for_workers() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key != WORKER_VARIABLE}


def check_shared_store(args: argparse.Namespace) -> None:
    """``--workers N`` needs a store every worker shares: refused otherwise."""
    n = args.workers
    if args.state_dir is not None:
        raise UsageError(
            f"--workers {n} with --state-dir {args.state_dir!r}: the state"
            f" directory is locked by one process, which keeps its records in its"
            f" own memory, so the workers cannot share it; give a Redis --store"
            f" (redis://HOST:PORT/DB) instead, or --workers 1"
        )
    if args.store == "memory":
        raise UsageError(
            f"--workers {n} with --store memory: each worker would keep records of"
            f" its own, and a player would meet another on every request; give a"
            f" Redis --store every worker shares (redis://HOST:PORT/DB), or"
            f" --workers 1"
        )


def worker_command(
    args: argparse.Namespace, given: Sequence[str], port: int
) -> Callable[[int], list[str]]:
    """The command line of each worker: the supervisor's own flags, on the port
    it listens on, with the certificate it made, and a bridge socket of its own
    (the CGI programs a worker runs reach it there, in $SESH_BRIDGE_SOCKET)."""
    base = [sys.executable, "-m", "jetforce_sesh", *given, "--port", str(port)]
    if args.use_tls:
        base += ["--tls-certfile", args.certfile]
        if args.keyfile is not None:
            base += ["--tls-keyfile", args.keyfile]

    def command(index: int) -> list[str]:
        if args.bridge_socket is None:
            return base
        return [*base, "--bridge-socket", f"{args.bridge_socket}.{index}"]

    return command


def supervise(args: argparse.Namespace, given: Sequence[str]) -> int:
    """Serve with ``args.workers`` processes until a signal stops them; the
    exit status."""
    try:
        check_shared_store(args)
        args.hostname = check_hostname(args.hostname)
        check_tls_flags(
            args.use_tls, args.certfile, args.keyfile, args.cafile, args.capath
        )
        check_port(args.host, args.port)
        if args.use_tls and args.certfile is None:
            # Made once, here: N workers making it at once would race.
            args.certfile, args.keyfile = ad_hoc_certificate(args.hostname)
        interfaces = listen_interfaces(args.host)
        try:
            port, listeners = listening_sockets(interfaces, args.port, BACKLOG)
        except OSError as error:
            raise UsageError(
                f"--port {args.port} is not available ({error.strerror}): stop what"
                f" uses it, or choose another --port"
            ) from None
    except UsageError as error:
        print(f"jetforce-sesh: error: {error}", file=sys.stderr)
        return 2
    from twisted.internet import reactor

    sockets = {
        name: each.fileno() for name, each in zip(interfaces, listeners, strict=True)
    }
    spawn = process_spawner(
        reactor, worker_command(args, given, port), environ_for_workers()
    )
    exit_code: list[int] = []

    def ready() -> None:
        for listener in listeners:
            _say(f"Listening on {_shown(listener)}")
        _say(workers_line([info.pid for info in supervisor.table()]))
        _say(address_line(home_url(args.hostname, port), args.use_tls))

    def stopping() -> None:
        # The workers hold the sockets still, and stop accepting as each
        # stops: the queue closes with the last of them.
        for listener in listeners:
            listener.close()

    def done(code: int) -> None:
        exit_code.append(code)
        reactor.stop()

    supervisor = Supervisor(
        args.workers,
        sockets,
        spawn,
        reactor,
        on_ready=ready,
        on_done=done,
        on_stopping=stopping,
        log=_say,
        kill_after=args.shutdown_grace + KILL_AFTER,
    )
    handle_signals(supervisor, reactor)
    reactor.callWhenRunning(handle_signals, supervisor, reactor)
    reactor.callWhenRunning(supervisor.start)
    reactor.run()
    return exit_code[0] if exit_code else 1


def _shown(listener: socket.socket) -> str:
    host, port, *_ = listener.getsockname()
    return (
        f"[{host}]:{port}" if listener.family == socket.AF_INET6 else f"{host}:{port}"
    )
