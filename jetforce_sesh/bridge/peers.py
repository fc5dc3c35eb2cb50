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
from typing import Any, NamedTuple

from jetforce_sesh.bridge.limits import BridgeLimits

_CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid
_PEERCRED: int | None = getattr(socket, "SO_PEERCRED", None)


class Peer(NamedTuple):
    """The process that connected, and its user."""

    uid: int
    pid: int


def peer_of(transport: Any) -> Peer | None:
    """The peer of a UNIX socket transport, or None if the system does not say."""
    handle = getattr(transport, "getHandle", None)
    if _PEERCRED is None or handle is None:
        return None
    try:
        raw = handle().getsockopt(socket.SOL_SOCKET, _PEERCRED, _CREDENTIALS.size)
    except (OSError, AttributeError):
        return None
    pid, uid, _gid = _CREDENTIALS.unpack(raw)
    return Peer(uid, pid)


class Admission:
    """The connections open, in all and per user and process: who may come in."""

    def __init__(self, limits: BridgeLimits) -> None:
        self.limits = limits
        self.open = 0
        self._users: dict[int, int] = {}
        self._processes: dict[int, int] = {}
        self._most = limits.max_connections
        self._most_per_user = limits.max_per_user
        self._most_per_process = limits.max_per_process

    def admit(self, peer: Peer | None) -> str | None:
        """Count a connection in, or say why it may not come in (None: it may)."""
        if self.open >= self._most:
            return (
                f"the bridge serves {self.open} connections, as many as"
                f" --bridge-max-connections allows: try again later"
            )
        if peer is not None:
            uid, pid = peer
            users = self._users.get(uid, 0)
            if users >= self._most_per_user:
                return (
                    f"user {uid} has {users} bridge connections open, as many"
                    f" as --bridge-max-per-user allows: close one, or try again"
                    f" later"
                )
            processes = self._processes.get(pid, 0)
            if processes >= self._most_per_process:
                return (
                    f"process {pid} has {processes} bridge connections open, as"
                    f" many as --bridge-max-per-process allows: close one first"
                )
            self._users[uid] = users + 1
            self._processes[pid] = processes + 1
        self.open += 1
        return None

    def leave(self, peer: Peer | None) -> None:
        """Count out a connection :meth:`admit` let in."""
        self.open -= 1
        if peer is not None:
            uid, pid = peer
            users, processes = self._users, self._processes
            if users[uid] > 1:
                users[uid] -= 1
            else:
                del users[uid]
            if processes[pid] > 1:
                processes[pid] -= 1
            else:
                del processes[pid]
