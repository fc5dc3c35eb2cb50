"""The Python client of jetforce-sesh's CGI bridge, standard library only.

A CGI program reads and writes the very records the capsule's in-process routes
use, through the UNIX socket ``jetforce-sesh --bridge-socket PATH`` listens on::

    import os, sesh_bridge

    with sesh_bridge.session(os.environ["TLS_CLIENT_HASH"], "visits", "<QQ",
                             path="/run/capsule/sesh.sock") as fields:
        fields[0] += 1

This module imports nothing outside the standard library, Twisted least of all,
so a CGI script that uses it starts in milliseconds; copy it beside a script run
by a Python that does not have jetforce-sesh installed. The protocol is in
``docs/reference/bridge.md``; the server (``jetforce_sesh/bridge/``) takes its
codes and limits from here, so both ends always agree.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

#: The environment variable the server sets for its CGI programs.
SOCKET_VARIABLE = "SESH_BRIDGE_SOCKET"

# Request codes.
SELECT = b"S"
LOOKUP = b"L"
PEEK = b"P"
UPDATE = b"U"
COMPARE_AND_SET = b"C"
DELETE = b"D"
RELEASE = b"R"
# Reply codes.
DONE = b"K"
CONFLICT = b"X"
REFUSED = b"N"
NOT_VALID = b"V"
ERROR = b"E"

#: DELETE's expected version meaning "whatever is stored".
ANY_VERSION = 2**64 - 1
#: The largest record the bridge carries.
MAX_RECORD = 65536
#: The largest message a client may send: a record and its fields (the
#: longest, COMPARE-AND-SET, takes 10 bytes and a player of up to 255).
MAX_MESSAGE = MAX_RECORD + 512
#: The longest text of an ``N``, ``V`` or ``E`` reply, in bytes of UTF-8.
MAX_TEXT = 512
#: The largest message the server sends (a record and its version).
MAX_REPLY = MAX_RECORD + 16
#: The CGI variables that describe the requesting player's certificate.
CERTIFICATE_VARIABLES = ("TLS_CLIENT_NOT_BEFORE", "TLS_CLIENT_NOT_AFTER")

_LENGTH = struct.Struct("!I")
_VERSION = struct.Struct("!Q")
_SIZE = struct.Struct("!I")

#: Seconds the client waits for a reply (the server holds a turn at most 10 s),
#: and for a place in the server's queue of connections.
TIMEOUT = 30.0
#: Times :func:`transact` runs its change before it gives up.
ATTEMPTS = 10


class BridgeError(Exception):
    """The bridge did not do what was asked."""


class Unavailable(BridgeError):
    """The socket cannot be reached, or the connection broke."""


class Refused(BridgeError):
    """The server said no (store full, record invalid, player busy, too many
    connections). Nothing changed; the connection is still usable, unless the
    refusal answered its first request (its SELECT): then it is closed, and
    the next :func:`connect` tries again."""


class NotValid(Refused):
    """The player's certificate cannot be used now: it has expired, or is not
    valid yet (the message says which). The capsule's routes answer such a
    request ``62``; a CGI program should too, with this message."""


class ProtocolError(BridgeError):
    """The server answered ``E`` to a message it could not accept, or sent a
    reply this client cannot read; the connection is closed."""


class Conflict(BridgeError):
    """The write did not happen: the record moved since it was read, or the
    turn an update needs had ended. ``current`` is what is stored now."""

    def __init__(self, current: Found) -> None:
        super().__init__(
            f"the record moved or the turn ended: it is at version {current.version}"
        )
        self.current = current


class Found(NamedTuple):
    """A record and its version (0: the player has none; the bytes are then the
    layout's defaults)."""

    version: int
    data: bytes


def socket_path(fallback: str | None = None) -> str:
    """The socket the server named in the environment, else ``fallback``."""
    path = os.environ.get(SOCKET_VARIABLE) or fallback
    if not path:
        raise Unavailable(
            f"no bridge socket: {SOCKET_VARIABLE} is not set (run under"
            f" jetforce-sesh --bridge-socket) and no path was given"
        )
    return path


def player(fingerprint: str) -> bytes:
    """What names ``fingerprint`` on the wire: with its certificate's dates
    when it is the requesting player's own (``$TLS_CLIENT_HASH``), from
    ``$TLS_CLIENT_NOT_BEFORE`` and ``$TLS_CLIENT_NOT_AFTER``, so that the server
    refuses an expired certificate as its routes do (:class:`NotValid`)."""
    name = fingerprint.encode("ascii")
    if fingerprint != os.environ.get("TLS_CLIENT_HASH"):
        return name
    dates = [os.environ.get(variable) or "-" for variable in CERTIFICATE_VARIABLES]
    if dates == ["-", "-"]:
        return name
    return b" ".join([name, *(date.encode("ascii", "replace") for date in dates)])


class Bridge:
    """One connection to the bridge, on one slab.

    Every call sends one request and reads its reply. A reply that says the
    connection is over (``E``), or one this client cannot read, closes it, as
    does a broken or timed-out connection: a later call raises
    :class:`Unavailable` rather than read a reply meant for another request.
    """

    def __init__(
        self, sock: socket.socket, record_size: int, select: bytes = b""
    ) -> None:
        self._sock: socket.socket | None = sock
        self.record_size = record_size
        #: Why the connection is closed, for the calls made after.
        self._closed = "it was closed"
        # SELECT goes out with the first request, in one write: the server
        # answers it at once, so it costs no round trip of its own.
        self._select = select

    def lookup(self, fingerprint: str) -> Found:
        """The player's record, taking their turn until the next write,
        :meth:`release` or :meth:`close` (at most 10 s)."""
        return self._found(self._call(LOOKUP + player(fingerprint)))

    def peek(self, fingerprint: str) -> Found:
        """The player's record, without taking the turn."""
        return self._found(self._call(PEEK + player(fingerprint)))

    def update(self, data: bytes) -> int:
        """Store ``data`` for the player looked up last, under the turn that
        lookup took; the new version. :class:`Conflict` (holding the current
        record) if the turn has ended: after a write, :meth:`release`, a
        :meth:`peek`, or 10 s."""
        return self._version(self._call(UPDATE + self._record(data)))

    def compare_and_set(self, fingerprint: str, expected: int, data: bytes) -> int:
        """Store ``data`` if the version is still ``expected``; the new version.
        :class:`Conflict` (holding the current record) if it moved. Takes the
        player's turn for the write, waiting while another holds it."""
        name = player(fingerprint)
        if len(name) > 255:
            raise BridgeError(f"a player is at most 255 characters: {name!r}")
        return self._version(
            self._call(
                COMPARE_AND_SET
                + _VERSION.pack(expected)
                + bytes([len(name)])
                + name
                + self._record(data)
            )
        )

    def delete(self, fingerprint: str, expected: int = ANY_VERSION) -> bool:
        """Forget the player's record; True if there was one."""
        reply = self._call(DELETE + _VERSION.pack(expected) + player(fingerprint), 1)
        if reply not in (b"\x00", b"\x01"):
            raise self._broken(f"the server's DELETE reply says {reply!r}, not 0 or 1")
        return reply == b"\x01"

    def release(self) -> None:
        """End the turn :meth:`lookup` took, without writing."""
        self._call(RELEASE, 0)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> Bridge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the wire ---------------------------------------------------------------

    def _record(self, data: bytes) -> bytes:
        if len(data) != self.record_size:
            raise BridgeError(
                f"records of this slab are {self.record_size} bytes, not {len(data)}"
            )
        return bytes(data)

    def _found(self, reply: bytes) -> Found:
        return Found(_VERSION.unpack_from(reply)[0], reply[_VERSION.size :])

    def _version(self, reply: bytes) -> int:
        version: int = _VERSION.unpack_from(reply)[0]
        return version

    def _call(self, message: bytes, size: int | None = None) -> bytes:
        """Send ``message``; the body of its ``K`` reply, which must be ``size``
        bytes (None: a version, and a record for a read)."""
        sock = self._sock
        if sock is None:
            raise Unavailable(f"this bridge connection is closed: {self._closed}")
        if size is None:
            reads = message[:1] in (LOOKUP, PEEK)
            size = _VERSION.size + (self.record_size if reads else 0)
        select, self._select = self._select, b""
        try:
            try:
                sock.sendall(select + _LENGTH.pack(len(message)) + message)
            except (BrokenPipeError, ConnectionResetError):
                # The server may have refused the connection (too many open) and
                # closed it: its reply, already sent, says why.
                if not select:
                    raise
            if select:
                self._selected(self._reply())
            reply = self._reply()
        except OSError as error:
            self._closed = f"it broke: {error}"
            self.close()
            raise Unavailable(f"the bridge connection broke: {error}") from None
        return self._answer(reply, size)

    def _selected(self, reply: bytes) -> None:
        """The reply to the SELECT: anything but ``K`` ends the connection, whose
        first request the server then does not answer as it was sent."""
        if reply == DONE:
            return
        text = reply[1:].decode("utf-8", "replace")
        self._closed = f"its SELECT was answered {reply[:1]!r}: {text}"
        self.close()
        if reply[:1] == REFUSED:
            raise Refused(text)
        if reply[:1] == ERROR:
            raise ProtocolError(text)
        raise ProtocolError(
            f"the server answered SELECT with {reply[:1]!r} and {len(reply)} bytes,"
            f" not K alone"
        )

    def _reply(self) -> bytes:
        (size,) = _LENGTH.unpack(self._receive(_LENGTH.size))
        if not 1 <= size <= MAX_REPLY:
            raise self._broken(f"the server sent a reply of {size} bytes")
        return self._receive(size)

    def _answer(self, reply: bytes, size: int) -> bytes:
        code, body = reply[:1], reply[1:]
        if code == DONE:
            if len(body) != size:
                raise self._broken(
                    f"the server's K reply has {len(body)} bytes, not {size}"
                )
            return body
        if code == CONFLICT:
            if len(body) != _VERSION.size + self.record_size:
                raise self._broken(
                    f"the server's X reply has {len(body)} bytes, not"
                    f" {_VERSION.size + self.record_size}"
                )
            raise Conflict(self._found(body))
        text = body.decode("utf-8", "replace")
        if code == NOT_VALID:
            raise NotValid(text)
        if code == REFUSED:
            raise Refused(text)
        if code == ERROR:
            self._closed = f"the server answered E: {text}"
            self.close()
            raise ProtocolError(text)
        raise self._broken(f"the server sent an unknown reply {code!r}")

    def _broken(self, problem: str) -> ProtocolError:
        """Close: after a reply this client cannot read, the next one read
        could be any request's."""
        self._closed = problem
        self.close()
        return ProtocolError(problem)

    def _receive(self, size: int) -> bytes:
        assert self._sock is not None
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(size - len(chunks))
            if not chunk:
                raise OSError("the server closed the connection")
            chunks += chunk
        return bytes(chunks)


def _connect(sock: socket.socket, where: str, timeout: float) -> None:
    """``sock.connect(where)``, waiting up to ``timeout`` for a place while the
    server's queue of connections (its listen backlog) is full: with a timeout
    set, a UNIX socket's connect() then fails at once (EAGAIN), where the C
    client's blocking one waits."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            sock.connect(where)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"no place in the bridge's queue of connections for {timeout:g} s"
                ) from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, 0.05)


def connect(
    slab: str = "",
    record_size: int = 0,
    path: str | None = None,
    timeout: float = TIMEOUT,
) -> Bridge:
    """A connection to ``slab`` (empty: the capsule's only bridged slab), whose
    records must be ``record_size`` bytes, on :data:`SOCKET_VARIABLE` or ``path``."""
    where = socket_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        _connect(sock, where, timeout)
    except OSError as error:
        sock.close()
        raise Unavailable(f"cannot reach the bridge at {where}: {error}") from None
    select = SELECT + _SIZE.pack(record_size) + slab.encode()
    return Bridge(sock, record_size, _LENGTH.pack(len(select)) + select)


@contextlib.contextmanager
def session(
    fingerprint: str,
    slab: str,
    layout: str,
    path: str | None = None,
) -> Iterator[list[Any]]:
    """The player's record as a list of its ``layout`` fields, written back
    when the block ends without an exception.

    The player's turn is held while the block runs, as an in-process request
    holds it, so nothing else writes the record meanwhile: the block runs once
    and its change is never lost. A block that outlasts the turn (10 s) meets
    :class:`Conflict` and nothing is written.
    """
    shape = struct.Struct(layout)
    with connect(slab, shape.size, path) as bridge:
        found = bridge.lookup(fingerprint)
        fields = list(shape.unpack(found.data))
        yield fields
        bridge.update(shape.pack(*fields))


def transact(
    fingerprint: str,
    slab: str,
    layout: str,
    change: Callable[[list[Any]], object],
    path: str | None = None,
    attempts: int = ATTEMPTS,
) -> list[Any]:
    """Run ``change(fields)`` on the player's record and write it with
    compare-and-set, without holding the turn; on a conflict run it again on
    the record stored now. The fields written; Conflict after ``attempts``."""
    shape = struct.Struct(layout)
    with connect(slab, shape.size, path) as bridge:
        found = bridge.peek(fingerprint)
        for attempt in range(1, attempts + 1):
            fields = list(shape.unpack(found.data))
            change(fields)
            try:
                bridge.compare_and_set(fingerprint, found.version, shape.pack(*fields))
            except Conflict as conflict:
                if attempt == attempts:
                    raise
                found = conflict.current
            else:
                return fields
        raise ValueError(f"attempts must be at least 1 (got {attempts})")
