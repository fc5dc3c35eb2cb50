"""Who is at the other end of a bridge connection, and how many connections each
user and process may have.

The kernel tells a UNIX socket's listener the user and process that connected
(``SO_PEERCRED``, Linux), and a client cannot lie about it. Those are what the
caps count: a CGI program that leaks connections runs out of its own
(``max_per_process``), one user of the socket's group cannot take the places of
another's programs (``max_per_user``), and all of them together leave the
server descriptors for its Gemini players (``max_connections``). Where the
kernel does not say (another system, a test's transport), every connection is
of one unknown peer, and only the cap on all connections applies.
"""

from __future__ import annotations

import socket
import struct
from collections import Counter
from typing import Any, NamedTuple

from jetforce_sesh.bridge.limits import BridgeLimits

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


class Peer(NamedTuple):
    """The process that connected, and its user."""

    uid: int
    pid: int


def peer_of(transport: Any) -> Peer | None:
    """The peer of a UNIX socket transport, or None if the system does not say."""
    option = getattr(socket, "SO_PEERCRED", None)
    handle = getattr(transport, "getHandle", None)
    if option is None or handle is None:
        return None
    try:
        raw = handle().getsockopt(socket.SOL_SOCKET, option, _CREDENTIALS.size)
    except (OSError, AttributeError):
        return None
    pid, uid, _gid = _CREDENTIALS.unpack(raw)
    return Peer(uid, pid)


class Admission:
    """The connections open, in all and per user and process: who may come in."""

    def __init__(self, limits: BridgeLimits) -> None:
        self.limits = limits
        self.open = 0
        self._users: Counter[int] = Counter()
        self._processes: Counter[int] = Counter()

    def admit(self, peer: Peer | None) -> str | None:
        """Count a connection in, or say why it may not come in (None: it may)."""
        limits = self.limits
        if self.open >= limits.max_connections:
            return (
                f"the bridge serves {self.open} connections, as many as"
                f" --bridge-max-connections allows: try again later"
            )
        if peer is not None:
            if self._users[peer.uid] >= limits.max_per_user:
                return (
                    f"user {peer.uid} has {self._users[peer.uid]} bridge connections"
                    f" open, as many as --bridge-max-per-user allows: close one, or"
                    f" try again later"
                )
            if self._processes[peer.pid] >= limits.max_per_process:
                return (
                    f"process {peer.pid} has {self._processes[peer.pid]} bridge"
                    f" connections open, as many as --bridge-max-per-process allows:"
                    f" close one first"
                )
            self._users[peer.uid] += 1
            self._processes[peer.pid] += 1
        self.open += 1
        return None

    def leave(self, peer: Peer | None) -> None:
        """Count out a connection :meth:`admit` let in."""
        self.open -= 1
        if peer is not None:
            for counts, who in ((self._users, peer.uid), (self._processes, peer.pid)):
                counts[who] -= 1
                if counts[who] <= 0:
                    del counts[who]
