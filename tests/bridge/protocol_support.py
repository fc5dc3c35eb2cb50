"""What the bridge's Clock-driven tests share: a capsule of three slabs (two
with a layout), its routes, and a client that speaks to one connection frame
by frame over a StringTransport, as a given user and process."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.testing import StringTransport

import sesh_bridge as wire
from jetforce_sesh import SessionApplication
from jetforce_sesh.bridge.limits import LONGEST, BridgeLimits
from jetforce_sesh.bridge.peers import Peer
from jetforce_sesh.bridge.protocol import BridgeFactory
from jetforce_sesh.bridge.service import bridged
from jetforce_sesh.testing import fingerprint_of

app = SessionApplication("bridge test")


@attrs.define
class Visits:
    count: int = 0
    ever: int = 0


@attrs.define
class Level:
    level: int = attrs.field(default=1, validator=attrs.validators.ge(1))


@attrs.define
class Notes:
    text: str = ""


app.slab(Visits, name="visits", layout="<QQ")
app.slab(Level, name="level", layout="<i", max_records=2, on_full="refuse")
app.slab(Notes, name="notes")


@app.session_route("/visit", record=Visits)
def visit(request: Request, record: Visits) -> Response:
    record.count += 1
    return Response(Status.SUCCESS, "text/plain", str(record.count))


@app.session_route("/slow", record=Visits)
async def slow(request: Request, record: Visits) -> Response:
    seen = record.count
    await deferLater(app.slabs[Visits].clock, 1, lambda: None)
    record.count = seen + 1
    return Response(Status.SUCCESS, "text/plain", str(record.count))


@app.session_route("/stall", record=Visits, timeout=30)
async def stall(request: Request, record: Visits) -> Response:
    await Deferred()
    raise AssertionError("never answered")


HASH = "SHA256:" + fingerprint_of("alice").hex().upper()
OTHER = fingerprint_of("bob").hex()
PAIR = struct.Struct("<QQ")
VERSION = struct.Struct("!Q")


#: The user CGI programs run as, in these tests, and process ids to give out.
UID = 1000
_pids = itertools.count(2000)

#: Limits under which no user's holds run out: for the tests of the turns alone
#: (tests/bridge/test_bounds.py tests the hold budget).
UNBOUNDED_HOLDS = BridgeLimits(hold_budget=LONGEST, hold_window=LONGEST)


class PeerTransport(StringTransport):
    """A transport that says who connected, as SO_PEERCRED does."""

    def __init__(self, peer: Peer | None) -> None:
        super().__init__()
        self.peer = peer


def identify(transport: Any) -> Peer | None:
    """The factory's ``identify`` for :class:`PeerTransport`."""
    return getattr(transport, "peer", None)


def factory_of(
    app: SessionApplication, clock: Any, limits: BridgeLimits | None = None
) -> BridgeFactory:
    """A started bridge of ``app``'s slabs with a layout, knowing its peers;
    under the default limits unless given others."""
    made = BridgeFactory(bridged(app.slabs.values()), clock, limits)
    made.identify = identify
    made.doStart()
    return made


class Client:
    """One connection, spoken to frame by frame: by process ``pid`` (a new one
    by default) of user ``uid``."""

    def __init__(
        self, factory: BridgeFactory, *, uid: int = UID, pid: int | None = None
    ) -> None:
        self.peer = Peer(uid, next(_pids) if pid is None else pid)
        self.protocol = factory.buildProtocol(None)
        self.transport = PeerTransport(self.peer)
        self.protocol.makeConnection(self.transport)

    def send(self, message: bytes) -> None:
        self.protocol.dataReceived(struct.pack("!I", len(message)) + message)

    def replies(self) -> list[bytes]:
        data = self.transport.value()
        self.transport.clear()
        found = []
        while data:
            (size,) = struct.unpack_from("!I", data)
            found.append(data[4 : 4 + size])
            data = data[4 + size :]
        return found

    def ask(self, message: bytes) -> bytes:
        self.send(message)
        (reply,) = self.replies()
        return reply

    def select(self, name: str = "visits", size: int = 16) -> bytes:
        return self.ask(wire.SELECT + struct.pack("!I", size) + name.encode())

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


def found(version: int, count: int, ever: int = 0) -> bytes:
    return b"K" + VERSION.pack(version) + PAIR.pack(count, ever)


def version_of(reply: bytes) -> int:
    value: int = VERSION.unpack_from(reply, 1)[0]
    return value
