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
``docs/reference/bridge.md``; the server (``jetforce_sesh/bridge.py``) takes its
codes and limits from here, so both ends always agree.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
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
ERROR = b"E"

#: DELETE's expected version meaning "whatever is stored".
ANY_VERSION = 2**64 - 1
#: The largest record the bridge carries.
MAX_RECORD = 65536
#: The largest message a client may send: a record and its fields (the
#: longest, COMPARE-AND-SET, takes 10 bytes and a fingerprint of up to 255).
MAX_MESSAGE = MAX_RECORD + 512
#: The longest text of an ``N`` or ``E`` reply, in bytes of UTF-8.
MAX_TEXT = 512
#: The largest message the server sends (a record and its version).
MAX_REPLY = MAX_RECORD + 16

_LENGTH = struct.Struct("!I")
_VERSION = struct.Struct("!Q")
_SIZE = struct.Struct("!I")

#: Seconds the client waits for a reply; the server holds a turn at most 10 s.
TIMEOUT = 30.0
#: Times :func:`transact` runs its change before it gives up.
ATTEMPTS = 10


class BridgeError(Exception):
    """The bridge did not do what was asked."""


class Unavailable(BridgeError):
    """The socket cannot be reached, or the connection broke."""


class Refused(BridgeError):
    """The server said no (store full, record invalid, player busy); the
    connection is still usable."""


class ProtocolError(BridgeError):
    """The server answered ``E`` to a message it could not accept, and closed."""


class Conflict(BridgeError):
    """The record moved since it was read; ``current`` is what is there now."""

    def __init__(self, current: Found) -> None:
        super().__init__(f"the record moved: it is at version {current.version}")
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


class Bridge:
    """One connection to the bridge, on one slab."""

    def __init__(
        self, sock: socket.socket, record_size: int, select: bytes = b""
    ) -> None:
        self._sock = sock
        self.record_size = record_size
        # SELECT goes out with the first request, in one write: the server
        # answers it at once, so it costs no round trip of its own.
        self._select = select

    def lookup(self, fingerprint: str) -> Found:
        """The player's record, taking their turn until the next write,
        :meth:`release` or :meth:`close` (at most 10 s)."""
        return self._found(self._call(LOOKUP + fingerprint.encode("ascii")))

    def peek(self, fingerprint: str) -> Found:
        """The player's record, without taking the turn."""
        return self._found(self._call(PEEK + fingerprint.encode("ascii")))

    def update(self, data: bytes) -> int:
        """Store ``data`` for the player looked up last; the new version."""
        return self._version(self._call(UPDATE + self._record(data)))

    def compare_and_set(self, fingerprint: str, expected: int, data: bytes) -> int:
        """Store ``data`` if the version is still ``expected``; the new version.
        :class:`Conflict` (holding the current record) if it moved."""
        name = fingerprint.encode("ascii")
        if len(name) > 255:
            raise BridgeError(f"a fingerprint is at most 255 characters: {name!r}")
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
        reply = self._call(DELETE + _VERSION.pack(expected) + fingerprint.encode())
        return reply[:1] == b"\x01"

    def release(self) -> None:
        """End the turn :meth:`lookup` took, without writing."""
        self._call(RELEASE)

    def close(self) -> None:
        self._sock.close()

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

    def _call(self, message: bytes) -> bytes:
        select, self._select = self._select, b""
        try:
            self._sock.sendall(select + _LENGTH.pack(len(message)) + message)
            if select:
                self._answer(self._reply())
            reply = self._reply()
        except OSError as error:
            self.close()
            raise Unavailable(f"the bridge connection broke: {error}") from None
        return self._answer(reply)

    def _reply(self) -> bytes:
        (size,) = _LENGTH.unpack(self._receive(_LENGTH.size))
        if not 1 <= size <= MAX_REPLY:
            raise ProtocolError(f"the server sent a reply of {size} bytes")
        return self._receive(size)

    def _answer(self, reply: bytes) -> bytes:
        code, body = reply[:1], reply[1:]
        if code == DONE:
            return body
        if code == CONFLICT:
            raise Conflict(self._found(body))
        text = body.decode("utf-8", "replace")
        if code == REFUSED:
            raise Refused(text)
        self.close()
        if code == ERROR:
            raise ProtocolError(text)
        raise ProtocolError(f"the server sent an unknown reply {code!r}")

    def _receive(self, size: int) -> bytes:
        chunks = bytearray()
        while len(chunks) < size:
            chunk = self._sock.recv(size - len(chunks))
            if not chunk:
                raise OSError("the server closed the connection")
            chunks += chunk
        return bytes(chunks)


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
        sock.connect(where)
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
