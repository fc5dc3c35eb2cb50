"""The CGI bridge: CGI programs share the slabs' records over a UNIX socket.

A program in C or Python (see ``sesh_bridge.py`` and ``clients/c/``) connects, picks
a slab that has a fixed layout, and looks up, updates, compares-and-sets or deletes
one player's record: the very record, in the very store, that in-process routes
use, served by the same reactor. Every read-change-write takes the player's turn
from the slab's :class:`~jetforce_sesh.session.turns.Turns`, as an in-process
request does: a LOOKUP holds it until the UPDATE, and a COMPARE-AND-SET or DELETE
takes it for its write. So no write ever lands inside another's turn, and an
UPDATE whose turn has ended writes nothing (``X``). The wire format is in
``docs/reference/bridge.md``.

Each connection is strict request and reply: anything malformed, oversized,
unknown or sent before the reply to the last gets an ``E`` reply and the
connection is closed; the server and every other connection carry on. What one
connection may cost is bounded (:mod:`jetforce_sesh.bridge.limits`): it is not
read while its unsent replies pass a bound, connections are capped in all and
per user and process, and one user's holds of a player's turn per window.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NoReturn, cast

from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.defer import TimeoutError as TimedOut
from twisted.internet.interfaces import IReactorTime, ITransport
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

import sesh_bridge as wire
from jetforce_sesh.bridge.answers import BadMessage, Closing, Moved, NotValid, Refusal
from jetforce_sesh.bridge.holds import HoldBudgets
from jetforce_sesh.bridge.limits import BridgeLimits
from jetforce_sesh.bridge.peers import Admission, Peer, peer_of
from jetforce_sesh.bridge.turn import WAIT_TIMEOUT, BridgeTurn
from jetforce_sesh.errors import (
    Conflict,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
    StoreFull,
    StoreNotOpen,
    StoreUnavailable,
    why,
)
from jetforce_sesh.identity import (
    BadFingerprint,
    Certificate,
    parse_fingerprint,
    read_certificate,
)
from jetforce_sesh.records.codec import Codec
from jetforce_sesh.session.slab import OpenSlab, Slab
from jetforce_sesh.stores.contract import ABSENT, ANY_VERSION, Stored

#: Seconds a connection may stay without sending a complete message: longer than
#: a turn is held, so a slow client still hears that its turn ran out.
IDLE_TIMEOUT = 30.0
#: Seconds between two checks of the time limits: each is kept within this much.
SWEEP_EVERY = 1.0
#: Seconds a closed connection may keep replies its client has not read yet
#: (its last one, an ``E``, says why it is closed) before it is cut off.
LINGER = 10.0
#: Certificates (a fingerprint and its dates) remembered as read: reading the
#: dates costs more than the request. Cleared whenever it reaches this.
CERTIFICATES_MAX = 4096

#: The error for a message sent before the reply to the one before it.
PIPELINED = "a message before the reply to the last: send one at a time"

_VERSION = struct.Struct("!Q")
_SIZE = struct.Struct("!I")
_LENGTH = struct.Struct("!I")

_log = Logger()


class BridgeProtocol(Int32StringReceiver):
    """One client's connection."""

    MAX_LENGTH = wire.MAX_MESSAGE

    def __init__(self, bridge: BridgeFactory) -> None:
        self.bridge = bridge
        self.slab: Slab[Any] | None = None
        self.defaults = b""
        #: The player last read or written, and the version this connection saw.
        self.key: bytes | None = None
        self.version = ABSENT
        #: The turn this connection holds or waits for (one at most).
        self.turn: BridgeTurn | None = None
        #: Between a message and its reply: the client rightly waits meanwhile.
        self.busy = False
        self.gone = False
        #: Let in past the caps, and so counted until the connection is lost.
        self.admitted = False
        self.peer: Peer | None = None
        #: Replies held back while one read's messages are answered.
        self.corked: list[bytes] | None = None
        #: Messages taken from the bytes read since the client last sent any,
        #: and whether the first was a SELECT: only a SELECT may go ahead of a
        #: request, as its reply comes at once.
        self.taken = 0
        self.selected = False
        #: When the last reply went (the bridge's sweep drops the silent).
        self.heard = bridge.clock.seconds()

    # -- the connection --------------------------------------------------------

    def connectionMade(self) -> None:
        transport = self.transport
        assert transport is not None
        bridge = self.bridge
        self.peer = bridge.identify(transport)
        refusal = bridge.admission.admit(self.peer)
        if refusal is not None:
            # Answered as the reply to the SELECT that comes first, and closed at
            # once: a connection past the cap must not keep its descriptor.
            self.gone = True
            write_now(transport, _frame(wire.REFUSED + _text(refusal)))
            transport.loseConnection()
            return
        self.admitted = True
        bridge.connections[self] = None

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.drop()
        if self.bridge.lingering:
            self.bridge.lingering.pop(self, None)
        if self.admitted:
            self.admitted = False
            self.bridge.admission.leave(self.peer)

    def drop(self) -> None:
        """Stop answering, and give back the turn this connection holds."""
        self.gone = True
        self.bridge.connections.pop(self, None)
        self._end_turn()

    def close(self) -> None:
        """Close the connection now, giving back its turn."""
        if not self.gone:
            self._close()
        self.drop()

    def _close(self) -> None:
        transport: Any = self.transport
        assert transport is not None
        if transport.producer is self:
            transport.unregisterProducer()
        transport.loseConnection()
        if unsent(transport):
            # Closed once the client has read what is sent; the sweep cuts off
            # a client that does not read it within LINGER.
            self.bridge.lingering[self] = self.bridge.clock.seconds()

    def pauseProducing(self) -> None:
        """The transport holds more replies than it likes unsent: stop reading
        while more than ``max_unsent`` bytes of them wait."""
        if unsent(self.transport) > self.bridge.limits.max_unsent:
            super().pauseProducing()  # type: ignore[no-untyped-call]

    def resumeProducing(self) -> None:
        if not self.gone:
            super().resumeProducing()  # type: ignore[no-untyped-call]

    def lengthLimitExceeded(self, length: int) -> None:
        self._fail(f"message of {length} bytes: messages are at most {self.MAX_LENGTH}")

    def dataReceived(self, data: bytes) -> None:
        # Almost every read is one whole message: hand it on without buffering.
        if not self._unprocessed and len(data) > 4:
            (size,) = _LENGTH.unpack_from(data)
            if size == len(data) - 4 and size <= self.MAX_LENGTH:
                self._handle(data[4:])
                return
        if data:
            self.taken = 0  # the client sent more: it may have read the replies
        # Several messages (SELECT and the first request, sent together): their
        # replies go out together too, in one write.
        self.corked = []
        try:
            super().dataReceived(data)  # type: ignore[no-untyped-call]
        finally:
            self._flush()
            self.corked = None

    def stringReceived(self, message: bytes) -> None:
        """One message of bytes that came with more, or in parts."""
        if self.gone:
            return
        taken = self.taken
        if taken > 1 or (taken == 1 and not self.selected):
            # Sent before the reply to the last could be read: answering it
            # would let a client that never reads make the server buffer
            # without end.
            self._fail(PIPELINED)
            return
        if taken == 0:
            self.selected = message[:1] == wire.SELECT
        self.taken = taken + 1
        self._handle(message)

    def _handle(self, message: bytes) -> None:
        if self.gone:
            return
        if self.busy:
            self._fail(PIPELINED)
            return
        self.busy = True
        try:
            answer = self._dispatch(message)
        except Exception as error:
            if not isinstance(error, (BadMessage, Refusal, Moved)):
                _log.failure("bridge request failed")
            self._replied(error)
            return
        if isinstance(answer, Deferred):
            answer.addCallbacks(self._replied, self._failed)
        else:
            self._replied(answer)

    def sweep(self, now: float) -> None:
        """Drop the connection if it stayed silent too long; end a turn held,
        or waited for, too long."""
        turn = self.turn
        if turn is not None and now - turn.since >= turn.limit:
            turn.expire()
        if not self.busy and now - self.heard >= IDLE_TIMEOUT:
            self._fail(f"nothing received for {IDLE_TIMEOUT:g} s")

    def _failed(self, failure: Failure) -> None:
        if not isinstance(failure.value, (BadMessage, Refusal, Moved)):
            _log.failure("bridge request failed", failure=failure)
        self._replied(failure.value or Exception("failed with no exception"))

    def _replied(self, result: bytes | BaseException) -> None:
        self.busy = False
        if self.gone:
            return
        if isinstance(result, bytes):
            self._send(wire.DONE + result)
        elif isinstance(result, NotValid):
            self._send(wire.NOT_VALID + _text(str(result)))
        elif isinstance(result, Refusal):
            self._send(wire.REFUSED + _text(str(result)))
            if isinstance(result, Closing):
                self._flush()
                self.close()
                return
        elif isinstance(result, Moved):
            self._send(wire.CONFLICT + _VERSION.pack(result.version) + result.data)
        elif isinstance(result, BadMessage):
            self._fail(str(result))
            return
        else:
            self._fail("the server failed to answer: see its log")
            return
        self.heard = self.bridge.clock.seconds()

    def _send(self, reply: bytes) -> None:
        frame = _LENGTH.pack(len(reply)) + reply
        if self.corked is not None:
            self.corked.append(frame)
            return
        assert self.transport is not None
        if not write_now(self.transport, frame):
            self._throttle()

    def _flush(self) -> None:
        """Write the replies held back."""
        if self.corked and self.transport is not None:
            if not write_now(self.transport, b"".join(self.corked)):
                self._throttle()
            self.corked.clear()

    def _throttle(self) -> None:
        """A reply did not all go at once: stop reading while more than
        ``max_unsent`` bytes wait to be sent.

        The connection becomes its transport's producer then (most never need
        to), so the transport resumes it once its buffer is sent. The transport
        pauses its producer only past its own buffer size; this pauses past
        the bridge's bound, and marks the transport paused to be resumed.
        """
        transport: Any = self.transport
        if getattr(transport, "producer", self) is None:
            transport.registerProducer(self, True)
        if not self.paused and unsent(transport) > self.bridge.limits.max_unsent:
            transport.producerPaused = True
            super().pauseProducing()  # type: ignore[no-untyped-call]

    def _fail(self, message: str) -> None:
        if not self.gone:
            self._send(wire.ERROR + _text(message))
            self._flush()
            self._close()
        self.drop()

    # -- requests --------------------------------------------------------------

    def _dispatch(self, message: bytes) -> bytes | Deferred[bytes]:
        code, body = message[:1], message[1:]
        if code == wire.SELECT:
            return self._select(body)
        slab = self.slab
        if slab is None:
            raise BadMessage(f"{_name(code)} before SELECT: select a slab first")
        if code == wire.LOOKUP:
            opened = _opened(slab)
            return self._lookup(opened, self._player(opened, body))
        if code == wire.PEEK:
            opened = _opened(slab)
            return self._read(opened, self._player(opened, body))
        if code == wire.UPDATE:
            if self.key is None:
                raise BadMessage("UPDATE before LOOKUP: look the player up first")
            return self._update(_opened(slab), self.key, body)
        if code == wire.COMPARE_AND_SET:
            if len(body) < 9 or len(body) < 9 + body[8]:
                raise BadMessage("COMPARE-AND-SET is too short")
            (expected,) = _VERSION.unpack_from(body)
            end = 9 + body[8]
            opened = _opened(slab)
            key = self._player(opened, body[9:end])
            record = self._record(opened, key, body[end:])
            return self._in_turn(
                opened, key, lambda: self._save(opened, key, record, expected)
            )
        if code == wire.DELETE:
            if len(body) < _VERSION.size:
                raise BadMessage("DELETE is too short")
            (expected,) = _VERSION.unpack_from(body)
            opened = _opened(slab)
            key = self._player(opened, body[_VERSION.size :])
            return self._in_turn(
                opened, key, lambda: self._delete(opened, key, expected)
            )
        if code == wire.RELEASE:
            if body:
                raise BadMessage("RELEASE carries nothing")
            self._end_turn()
            return b""
        raise BadMessage(f"unknown message code {code!r}")

    def _select(self, body: bytes) -> bytes:
        if len(body) < _SIZE.size:
            raise BadMessage("SELECT is too short: it needs the record size")
        (size,) = _SIZE.unpack_from(body)
        try:
            name = body[_SIZE.size :].decode()
        except UnicodeDecodeError:
            raise BadMessage("SELECT's slab name is not UTF-8") from None
        slab = self.bridge.pick(name)
        try:
            codec = _opened(slab).codec
        except Refusal as refusal:
            raise Closing(str(refusal)) from None
        if size != codec.record_size:
            raise BadMessage(
                f"slab {slab.name!r} has {codec.record_size}-byte records (layout"
                f" {slab.layout!r}), not {size}: use that record size"
            )
        self._end_turn()
        self.slab = slab
        self.defaults = self.bridge.defaults(slab, codec)
        self.key = None
        self.version = ABSENT
        return b""

    def _player(self, opened: OpenSlab[Any], text: bytes) -> bytes:
        """The key of the player ``text`` names (a fingerprint, and perhaps its
        certificate's dates), through the capsule's key step (an account, when
        accounts are on)."""
        if b" " in text:
            fingerprint = self.bridge.fingerprint(text, opened.clock)
        else:
            try:
                fingerprint = parse_fingerprint(text.decode("ascii"))
            except (UnicodeDecodeError, BadFingerprint) as error:
                raise BadMessage(f"not a fingerprint: {_detail(error)}") from None
        keys: Any = opened.keys
        return cast(bytes, keys.key_for_fingerprint(fingerprint))

    def _take(self, opened: OpenSlab[Any], key: bytes) -> BridgeTurn:
        """This connection's turn of ``key``, held or waited for; Refusal if
        it may not have it."""
        self._end_turn()
        assert self.slab is not None
        uid = None if self.peer is None else self.peer.uid
        turn = BridgeTurn(
            opened, key, (uid, self.slab.name, key), self.bridge.budgets, self._expired
        )
        turn.take()
        self.turn = turn
        return turn

    def _expired(self, turn: BridgeTurn) -> None:
        if self.turn is turn:
            self.turn = None

    def _lookup(self, opened: OpenSlab[Any], key: bytes) -> bytes | Deferred[bytes]:
        turn = self._take(opened, key)
        if turn.held:
            return self._read(opened, key, load=True)
        assert turn.granted is not None
        taken = turn.granted.addCallback(lambda _: self._read(opened, key, load=True))
        return taken.addErrback(self._turn_lost)

    def _in_turn(
        self,
        opened: OpenSlab[Any],
        key: bytes,
        write: Callable[[], bytes | Deferred[bytes]],
    ) -> bytes | Deferred[bytes]:
        """``write()`` under the player's turn: the one this connection holds,
        or one taken for the write (waiting as a LOOKUP waits). The write ends
        it (:meth:`_wrote`)."""
        turn = self.turn
        if turn is not None and turn.held and turn.key == key:
            return write()
        turn = self._take(opened, key)
        if turn.held:
            return write()
        assert turn.granted is not None
        taken = turn.granted.addCallback(lambda _: write())
        return taken.addErrback(self._turn_lost)

    def _turn_lost(self, failure: Failure) -> Failure:
        """A request that took the turn failed: it holds nothing."""
        self._end_turn()
        return failure

    # Each request has two ways through: straight through a store that answers
    # at once (the memory store: no Deferred, no timer), and through Deferreds
    # for a store that answers later.

    def _read(
        self, opened: OpenSlab[Any], key: bytes, *, load: bool = False
    ) -> bytes | Deferred[bytes]:
        store = opened.immediate
        if store is None:
            if not load:
                return _later(opened, opened.store.peek, key).addCallback(
                    self._found, key
                )
            answer = _later(opened, opened.store.load, key)
            answer.addCallback(self._used, opened, key)
            return answer.addCallback(self._found, key).addErrback(self._turn_lost)
        try:
            stored = store.load_now(key) if load else store.peek_now(key)
        except BaseException as error:
            if load:
                self._end_turn()
            if isinstance(error, StoreUnavailable):
                raise _refusal(error) from None
            raise
        if load:
            self._used(stored, opened, key)
        return self._found(stored, key)

    def _used(
        self, stored: Stored | None, opened: OpenSlab[Any], key: bytes
    ) -> Stored | None:
        """A LOOKUP read the record: the store keeps it until the turn ends, as
        for an in-process visit (unless the turn ended while it was read)."""
        turn = self.turn
        if turn is not None and turn.held and turn.key == key:
            opened.turns.use(key)
        return stored

    def _found(self, stored: Stored | None, key: bytes) -> bytes:
        self.key = key
        if stored is None:
            self.version = ABSENT
            return _VERSION.pack(ABSENT) + self.defaults
        self.version = stored.version
        return _VERSION.pack(stored.version) + stored.data

    def _update(
        self, opened: OpenSlab[Any], key: bytes, data: bytes
    ) -> bytes | Deferred[bytes]:
        record = self._record(opened, key, data)
        turn = self.turn
        if turn is None or not turn.held or turn.key != key:
            # No turn of this player is held here (a PEEK took none; a write,
            # RELEASE or the time limit ended it): another may hold it now, and
            # nothing may land inside its turn. The record there now, to redo
            # the change on.
            store = opened.immediate
            if store is None:
                current = _later(opened, opened.store.peek, key)
                return current.addCallback(
                    lambda found: _raise(self._moved(found, key))
                )
            raise self._moved(store.peek_now(key), key)
        return self._save(opened, key, record, self.version)

    def _save(
        self, opened: OpenSlab[Any], key: bytes, record: bytes, expected: int
    ) -> bytes | Deferred[bytes]:
        store = opened.immediate
        if store is None:
            answer = _later(opened, opened.store.save, key, record, expected)
            return self._settle(opened, key, answer.addCallback(self._saved, key))
        try:
            version = store.save_now(key, record, expected)
        except Conflict:
            raise self._moved(store.peek_now(key), key) from None
        except (StoreFull, StoreUnavailable) as error:
            raise _refusal(error) from None
        finally:
            self._wrote(key)
        return self._saved(version, key)

    def _saved(self, version: int, key: bytes) -> bytes:
        self.key, self.version = key, version
        return _VERSION.pack(version)

    def _delete(
        self, opened: OpenSlab[Any], key: bytes, expected: int
    ) -> bytes | Deferred[bytes]:
        if expected == wire.ANY_VERSION:
            expected = ANY_VERSION
        store = opened.immediate
        if store is None:
            answer = _later(opened, opened.store.delete, key, expected)
            return self._settle(opened, key, answer.addCallback(self._deleted, key))
        try:
            existed = store.delete_now(key, expected)
        except Conflict:
            raise self._moved(store.peek_now(key), key) from None
        except StoreUnavailable as error:
            raise _refusal(error) from None
        finally:
            self._wrote(key)
        return self._deleted(existed, key)

    def _deleted(self, existed: bool, key: bytes) -> bytes:
        self.key, self.version = key, ABSENT
        return b"\x01" if existed else b"\x00"

    def _settle(
        self, opened: OpenSlab[Any], key: bytes, answer: Deferred[bytes]
    ) -> Deferred[bytes]:
        """A write through a store that answers later: a Conflict becomes the
        record there now, and the write ends the turn as :meth:`_wrote` says."""

        def conflict(failure: Failure) -> Deferred[bytes]:
            if not isinstance(failure.value, Conflict):
                failure.raiseException()
            current = _later(opened, opened.store.peek, key)
            return current.addCallback(lambda stored: _raise(self._moved(stored, key)))

        def wrote(result: object) -> object:
            self._wrote(key)
            return result

        return answer.addErrback(conflict).addBoth(wrote)

    def _moved(self, stored: Stored | None, key: bytes) -> Moved:
        """The ``X`` reply for a write that met ``stored``."""
        self.key = key
        self.version = stored.version if stored else ABSENT
        return Moved(self.version, stored.data if stored else self.defaults)

    def _wrote(self, key: bytes) -> None:
        """A write to the player whose turn this connection holds ends the
        turn, whatever its outcome."""
        if self.turn is not None and self.turn.key == key:
            self._end_turn()

    def _record(self, opened: OpenSlab[Any], key: bytes, data: bytes) -> bytes:
        """``data`` as the slab's codec re-encodes it, once it reads as a record
        of the slab as an in-process route would read it (every field decoded,
        the class's validators run). Stored so, a later visit that changes
        nothing finds the very bytes it would write, and saves nothing. A
        record refused ends the turn of ``key`` as a write does."""
        codec = opened.codec
        if len(data) != codec.record_size:
            raise BadMessage(
                f"a record of slab {self.slab and self.slab.name!r} is"
                f" {codec.record_size} bytes, not {len(data)}"
            )
        try:
            return codec.encode(codec.decode(data))
        except (RecordUnreadable, RecordInvalid, RecordTooLarge) as error:
            self._wrote(key)
            raise Refusal(f"record refused, nothing changed: {error}") from None

    def _end_turn(self) -> None:
        turn, self.turn = self.turn, None
        if turn is not None:
            turn.end()


def write_now(transport: ITransport, data: bytes) -> bool:
    """``transport.write(data)``, sent at once when nothing waits before it;
    True if all of it went.

    Twisted's socket transports queue every write for the next turn of the
    reactor, which costs two epoll_ctl calls and a loop per reply: that doubled
    the bridge's CPU per round trip (benchmarks.bridgetrip). asyncio sends at
    once and queues only what the socket did not take; this does the same,
    straight to the socket: a reply is far below the transport's send limit.
    """
    if (
        isinstance(transport, tcp.Connection)
        and transport.connected
        and not transport.dataBuffer
        and not transport._tempDataBuffer
    ):
        try:
            sent = transport.socket.send(data)
        except OSError:
            # Full (EAGAIN), or broken: the transport's own write says which.
            sent = 0
        if sent == len(data):
            return True
        data = data[sent:]
    transport.write(data)
    return False


def unsent(transport: object) -> int:
    """Bytes a socket transport holds that the kernel has not taken yet."""
    if not isinstance(transport, FileDescriptor):
        return 0
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


def _opened(slab: Slab[Any]) -> OpenSlab[Any]:
    try:
        opened = slab.opened
    except StoreNotOpen:
        raise Refusal("the capsule is not serving now: try again later") from None
    if opened.closing:
        raise Refusal("the capsule is shutting down: try again later")
    return opened


def _later(
    opened: OpenSlab[Any], method: Callable[..., Deferred[Any]], *args: Any
) -> Deferred[Any]:
    """``method(*args)`` of a store that answers later, within
    :data:`WAIT_TIMEOUT`; a store that cannot answer is a Refusal."""
    answer: Deferred[Any] = maybeDeferred(method, *args)
    answer.addTimeout(WAIT_TIMEOUT, opened.clock)

    def refused(failure: Failure) -> Failure:
        error = failure.value
        if isinstance(
            error,
            (StoreFull, StoreUnavailable, CancelledError, TimeoutError, TimedOut),
        ):
            raise _refusal(error)
        return failure

    return answer.addErrback(refused)


def _frame(reply: bytes) -> bytes:
    return _LENGTH.pack(len(reply)) + reply


def _text(message: str) -> bytes:
    """``message`` for a reply: at most :data:`sesh_bridge.MAX_TEXT` bytes of
    UTF-8 (a message quoting what the client sent must not echo it all)."""
    data = message.encode()
    if len(data) <= wire.MAX_TEXT:
        return data
    return data[: wire.MAX_TEXT - 3].decode(errors="ignore").encode() + b"..."


def _refusal(error: BaseException) -> Refusal:
    if isinstance(error, StoreFull):
        return Refusal(f"the slab is full: {error}")
    return Refusal("the record store is unavailable: try again later")


def _raise(error: Exception) -> NoReturn:
    raise error


def _name(code: bytes) -> str:
    names = {
        wire.LOOKUP: "LOOKUP",
        wire.PEEK: "PEEK",
        wire.UPDATE: "UPDATE",
        wire.COMPARE_AND_SET: "COMPARE-AND-SET",
        wire.DELETE: "DELETE",
        wire.RELEASE: "RELEASE",
    }
    return names.get(code, f"message {code!r}")


class BridgeFactory(Factory):
    """Connections of one bridge, to the slabs in ``slabs``, within ``limits``.

    ``restricted`` says the operator chose those slabs (``--bridge-slabs``), for
    the message that answers a SELECT of another.
    """

    def __init__(
        self,
        slabs: dict[str, Slab[Any]],
        clock: IReactorTime,
        limits: BridgeLimits | None = None,
        *,
        restricted: bool = False,
    ) -> None:
        self.slabs = slabs
        self.clock = clock
        self.limits = limits = limits or BridgeLimits()
        self.restricted = restricted
        #: The connections served, in the order they came: the sweep checks
        #: them in that order, so what it does at one instant is foreseeable.
        self.connections: dict[BridgeProtocol, None] = {}
        #: Connections closed with replies still unsent, and since when.
        self.lingering: dict[BridgeProtocol, float] = {}
        self.admission = Admission(limits)
        self.budgets = HoldBudgets(limits.hold_budget, limits.hold_window)
        #: Who connected: the kernel's answer (a test may stand in for it).
        self.identify: Callable[[Any], Peer | None] = peer_of
        self._defaults: dict[tuple[str, Codec[Any]], bytes] = {}
        self._certificates: dict[bytes, Certificate] = {}
        # One sweep for every connection's time limits, rather than timers set
        # and cancelled on every message.
        self._sweep = LoopingCall(self.sweep)
        self._sweep.clock = clock

    def startFactory(self) -> None:
        self._sweep.start(SWEEP_EVERY, now=False)

    def stopFactory(self) -> None:
        if self._sweep.running:
            self._sweep.stop()

    def sweep(self) -> None:
        now = self.clock.seconds()
        connections = list(self.connections)
        # Turns held too long end first, so that a LOOKUP waiting just as long
        # gets the turn rather than a refusal.
        for connection in connections:
            turn = connection.turn
            if turn is not None and turn.held and now - turn.since >= turn.limit:
                turn.expire()
        for connection in connections:
            connection.sweep(now)
        for connection, since in list(self.lingering.items()):
            if now - since >= LINGER and connection.transport is not None:
                del self.lingering[connection]
                cast(Any, connection.transport).abortConnection()
        self.budgets.forget_closed(now)

    def buildProtocol(self, addr: object) -> BridgeProtocol:
        return BridgeProtocol(self)

    def defaults(self, slab: Slab[Any], codec: Codec[Any]) -> bytes:
        """The bytes a new player of ``slab`` reads: its record class's defaults."""
        key = (slab.name, codec)
        found = self._defaults.get(key)
        if found is None:
            found = self._defaults[key] = codec.encode(codec.new())
        return found

    def fingerprint(self, text: bytes, clock: IReactorTime) -> bytes:
        """The fingerprint ``text`` names: a fingerprint alone, or a fingerprint
        and its certificate's dates (``NotValid`` if they say it cannot be used
        now, as the routes would answer ``62``)."""
        if b" " not in text:
            try:
                return parse_fingerprint(text.decode("ascii"))
            except (UnicodeDecodeError, BadFingerprint) as error:
                raise BadMessage(f"not a fingerprint: {_detail(error)}") from None
        certificate = self._certificates.get(text)
        if certificate is None:
            certificate = _certificate(text)
            if len(self._certificates) >= CERTIFICATES_MAX:
                self._certificates.clear()
            self._certificates[text] = certificate
        problem = certificate.problem(clock.seconds())
        if problem is not None:
            raise NotValid(problem)
        return certificate.fingerprint

    def pick(self, name: str) -> Slab[Any]:
        """The slab SELECT names (empty: the only one)."""
        slab = self.slabs.get(name)
        if slab is not None:
            return slab
        names = ", ".join(sorted(self.slabs))
        if not name:
            if len(self.slabs) == 1:
                return next(iter(self.slabs.values()))
            raise BadMessage(
                f"this capsule serves {len(self.slabs)} slabs over the bridge"
                f" ({names}): name one"
            )
        which = (
            "only the slabs --bridge-slabs names are"
            if self.restricted
            else "only slabs declared with a layout are"
        )
        raise BadMessage(
            f"no slab {name!r} is served over the bridge; these are: {names} ({which})"
        )


def _certificate(text: bytes) -> Certificate:
    """A fingerprint and its certificate's dates, as the CGI environment gives
    them: ``FINGERPRINT NOT_BEFORE NOT_AFTER``, each date as Jetforce writes
    it, or ``-`` when the server did not say."""
    words = text.split(b" ")
    if len(words) != 3:
        raise BadMessage(
            f"a player is a fingerprint, or a fingerprint and its certificate's"
            f" two dates (TLS_CLIENT_NOT_BEFORE TLS_CLIENT_NOT_AFTER), not"
            f" {len(words)} words"
        )
    try:
        fingerprint, not_before, not_after = (word.decode("ascii") for word in words)
        parse_fingerprint(fingerprint)
    except (UnicodeDecodeError, BadFingerprint) as error:
        raise BadMessage(f"not a fingerprint: {_detail(error)}") from None
    environ = {
        "TLS_CLIENT_HASH": fingerprint,
        "TLS_CLIENT_NOT_BEFORE": "" if not_before == "-" else not_before,
        "TLS_CLIENT_NOT_AFTER": "" if not_after == "-" else not_after,
    }
    try:
        return read_certificate(environ)
    except ValueError:
        raise BadMessage(
            f"a certificate's dates are as Jetforce writes them,"
            f" YYYY-MM-DDTHH:MM:SSZ, or - when not known (got {not_before!r} and"
            f" {not_after!r})"
        ) from None


def _detail(error: Exception) -> str:
    return str(error) if isinstance(error, BadFingerprint) else why(error)
