"""The bridge's socket file: checked before start-up, private by default.

A path in a missing or read-only directory, a file that is not a socket, and a
socket some other server answers on all stop start-up with one line. A socket
file nobody answers on was left by a server that died: it is replaced. The
socket is made with mode 0600 (0660 and the operator's group with
``--bridge-group``), with no moment at which it is open to anyone else.
"""

from __future__ import annotations

import errno
import grp
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp, unix
from twisted.internet.interfaces import IListeningPort, IReactorUNIX
from twisted.internet.protocol import Factory

from jetforce_sesh.errors import ConfigError

#: The longest path a UNIX socket address holds on Linux, NUL excluded.
MAX_PATH = 107
#: Connections the kernel holds for the bridge before it accepts them: as many
#: as for the Gemini port (jetforce_sesh.server.server.BACKLOG), so a burst of
#: CGI programs waits in the queue rather than being refused at connect().
BACKLOG = 1024


def check_path(path: str) -> None:
    """ConfigError unless a bridge can listen at ``path``; a stale socket file
    there is removed."""
    if len(os.fsencode(path)) > MAX_PATH:
        raise ConfigError(
            f"{path!r} is longer than a socket path may be ({MAX_PATH} bytes):"
            f" choose a shorter one, such as /run/capsule/sesh.sock"
        )
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(
            f"{path!r}: directory {directory} does not exist: create it, or choose"
            f" another path"
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{path!r}: directory {directory} is not writable by this user: give"
            f" the server a directory of its own, such as /run/capsule"
        )
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ConfigError(
            f"{path!r} exists and is not a socket: remove it, or choose another path"
        )
    if _answers(path):
        raise ConfigError(
            f"{path!r}: another server answers on this socket: stop it, or choose"
            f" another path"
        )
    os.unlink(path)  # left by a server that died


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError as error:
        if error.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        raise ConfigError(
            f"{path!r}: cannot tell whether it is in use: {error.strerror}"
        ) from None
    finally:
        probe.close()
    return True


def group_id(name: str) -> int:
    """The id of group ``name``; ConfigError if there is no such group."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise ConfigError(
            f"no group {name!r} on this machine: name an existing group (see"
            f" /etc/group)"
        ) from None


class BridgeConnection(unix.Server):
    """A bridge connection's transport: Twisted's UNIX one, reading and writing
    as a TCP connection does, with recv() and send().

    Twisted's UNIX transport reads with recvmsg() and an ancillary buffer, to
    take the file descriptors a client may pass; the bridge takes none (the
    kernel drops any a client sends), and each read costs a microsecond less
    this way, two or three per CGI request (benchmarks.bridgetrip).
    """

    # Twisted's own TCP methods, taken as they are (a wrapper would cost a call).
    doRead = tcp.Server.doRead  # type: ignore[assignment]
    writeSomeData = tcp.Server.writeSomeData


class BridgePort(unix.Port):
    """The bridge's listening socket, whose connections are BridgeConnections."""

    transport = BridgeConnection


def listener(
    reactor: IReactorUNIX, path: str, gid: int | None
) -> Callable[[Factory], IListeningPort]:
    """What listens on ``path``, with mode 0600, or 0660 and group ``gid``."""

    def listen(factory: Factory) -> IListeningPort:
        mode = 0o600 if gid is None else 0o660
        # Twisted sets the mode once the socket exists; the umask keeps it
        # closed to others until then.
        old = os.umask(0o177 if gid is None else 0o117)
        try:
            port: Any = BridgePort(os.fsencode(path), factory, BACKLOG, mode, reactor)
            port.startListening()
        finally:
            os.umask(old)
        if gid is not None:
            try:
                os.chown(path, -1, gid)
            except OSError as error:
                port.stopListening()
                raise ConfigError(
                    f"cannot give {path!r} to group {gid}: {error.strerror}: run"
                    f" the server as a member of that group"
                ) from None
        listening: IListeningPort = port
        return listening

    return listen
