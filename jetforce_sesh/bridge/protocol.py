"""The CGI bridge: CGI programs share the slabs' records over a UNIX socket.

A program in C or Python (see ``sesh_bridge.py`` and ``clients/c/``) connects, picks
a slab that has a fixed layout, and looks up, updates, compares-and-sets or deletes
one player's record: the very record, in the very store, that in-process routes
use, served by the same reactor. A LOOKUP takes the player's turn from the slab's
:class:`~jetforce_sesh.session.turns.Turns`, as an in-process request does, so a CGI
program's read-change-write cannot interleave with a route's, and every write is a
compare-and-set against the version read, so none is lost even when a turn runs
out. The wire format is in ``docs/reference/bridge.md``.

Each connection is strict request and reply: anything malformed, oversized,
unknown or sent out of turn gets an ``E`` reply and the connection is closed; the
server and every other connection carry on.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, NoReturn, cast

from jetforce.app.base import Response
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
from jetforce_sesh.identity import BadFingerprint, parse_fingerprint
from jetforce_sesh.records.codec import Codec
from jetforce_sesh.session.slab import OpenSlab, Slab
from jetforce_sesh.stores.contract import ABSENT, ANY_VERSION, Stored

#: Seconds a connection may stay without sending a complete message: longer than
#: a turn is held, so a slow client still hears that its turn ran out.
IDLE_TIMEOUT = 30.0
#: Seconds a LOOKUP holds the player's turn at most.
HOLD_TIMEOUT = 10.0
#: Seconds a LOOKUP waits for the turn, and a store operation for its answer.
WAIT_TIMEOUT = 10.0
#: Seconds between two checks of those limits: each is kept within this much.
SWEEP_EVERY = 1.0

_VERSION = struct.Struct("!Q")
_SIZE = struct.Struct("!I")
_LENGTH = struct.Struct("!I")

_log = Logger()


class BadMessage(Exception):
    """A message the protocol does not allow: answered ``E``, then closed."""


class Refusal(Exception):
    """A request the bridge declines (``N``); the connection stays usable."""


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
        #: The turn this connection holds or waits for.
        self.turn: _Turn | None = None
        #: Between a message and its reply: the client rightly waits meanwhile.
        self.busy = False
        self.gone = False
        #: Replies held back while one read's messages are answered.
        self.corked: list[bytes] | None = None
        #: When the last message came (the bridge's sweep drops the silent).
        self.heard = bridge.clock.seconds()

    # -- the connection --------------------------------------------------------

    def connectionMade(self) -> None:
        self.bridge.connections.add(self)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.drop()

    def drop(self) -> None:
        """Stop answering, and give back the turn this connection holds."""
        self.gone = True
        self.bridge.connections.discard(self)
        self._end_turn()

    def lengthLimitExceeded(self, length: int) -> None:
        self._fail(f"message of {length} bytes: messages are at most {self.MAX_LENGTH}")

    def dataReceived(self, data: bytes) -> None:
        # Almost every read is one whole message: hand it on without buffering.
        if not self._unprocessed and len(data) > 4:
            (size,) = _LENGTH.unpack_from(data)
            if size == len(data) - 4 and size <= self.MAX_LENGTH:
                self.stringReceived(data[4:])
                return
        # Several messages (SELECT and the first request, sent together): their
        # replies go out together too, in one write.
        self.corked = []
        try:
            super().dataReceived(data)  # type: ignore[no-untyped-call]
        finally:
            self._flush()
            self.corked = None

    def stringReceived(self, message: bytes) -> None:
        if self.gone:
            return
        if self.busy:
            self._fail("a message before the reply to the last: send one at a time")
            return
        self.busy = True
        try:
            answer = self._dispatch(message)
        except Exception as error:
            if not isinstance(error, (BadMessage, Refusal, _Moved)):
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
        if not isinstance(failure.value, (BadMessage, Refusal, _Moved)):
            _log.failure("bridge request failed", failure=failure)
        self._replied(failure.value or Exception("failed with no exception"))

    def _replied(self, result: bytes | BaseException) -> None:
        self.busy = False
        if self.gone:
            return
        if isinstance(result, bytes):
            self._send(wire.DONE + result)
        elif isinstance(result, Refusal):
            self._send(wire.REFUSED + _text(str(result)))
        elif isinstance(result, _Moved):
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
        write_now(self.transport, frame)

    def _flush(self) -> None:
        """Write the replies held back."""
        if self.corked and self.transport is not None:
            write_now(self.transport, b"".join(self.corked))
            self.corked.clear()

    def _fail(self, message: str) -> None:
        if not self.gone:
            self._send(wire.ERROR + _text(message))
            self._flush()
            assert self.transport is not None
            self.transport.loseConnection()
        self.drop()

    # -- requests --------------------------------------------------------------

    def _dispatch(self, message: bytes) -> bytes | Deferred[bytes]:
        code, body = message[:1], message[1:]
        if code == wire.SELECT:
            return self._select(body)
        if self.slab is None:
            raise BadMessage(f"{_name(code)} before SELECT: select a slab first")
        if code == wire.LOOKUP:
            return self._lookup(self._player(body))
        if code == wire.PEEK:
            return self._read(self._opened(), self._player(body))
        if code == wire.UPDATE:
            if self.key is None:
                raise BadMessage("UPDATE before LOOKUP: look the player up first")
            return self._save(self.key, body, self.version)
        if code == wire.COMPARE_AND_SET:
            if len(body) < 9 or len(body) < 9 + body[8]:
                raise BadMessage("COMPARE-AND-SET is too short")
            (expected,) = _VERSION.unpack_from(body)
            end = 9 + body[8]
            return self._save(self._player(body[9:end]), body[end:], expected)
        if code == wire.DELETE:
            if len(body) < _VERSION.size:
                raise BadMessage("DELETE is too short")
            (expected,) = _VERSION.unpack_from(body)
            return self._delete(self._player(body[_VERSION.size :]), expected)
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
        self.slab = slab
        codec = self._opened().codec
        if size != codec.record_size:
            raise BadMessage(
                f"slab {slab.name!r} has {codec.record_size}-byte records (layout"
                f" {slab.layout!r}), not {size}: use that record size"
            )
        self._end_turn()
        self.defaults = self.bridge.defaults(slab, codec)
        self.key = None
        self.version = ABSENT
        return b""

    def _player(self, text: bytes) -> bytes:
        """The key of the player whose fingerprint ``text`` spells, through the
        capsule's key step (an account, when accounts are on)."""
        try:
            fingerprint = parse_fingerprint(text.decode("ascii"))
        except (UnicodeDecodeError, BadFingerprint) as error:
            detail = str(error) if isinstance(error, BadFingerprint) else why(error)
            raise BadMessage(f"not a fingerprint: {detail}") from None
        keys: Any = self._opened().keys
        return cast(bytes, keys.key_for_fingerprint(fingerprint))

    def _opened(self) -> OpenSlab[Any]:
        assert self.slab is not None
        try:
            opened = self.slab.opened
        except StoreNotOpen:
            raise Refusal("the capsule is not serving now: try again later") from None
        if opened.closing:
            raise Refusal("the capsule is shutting down: try again later")
        return opened

    def _lookup(self, key: bytes) -> bytes | Deferred[bytes]:
        self._end_turn()
        opened = self._opened()
        turn = self.turn = _Turn(self, opened, key)
        if turn.take():
            return self._read(opened, key, load=True)
        assert turn.granted is not None
        taken = turn.granted.addCallback(lambda _: self._read(opened, key, load=True))
        return taken.addErrback(self._turn_lost)

    def _turn_lost(self, failure: Failure) -> Failure:
        """A LOOKUP failed: it holds nothing."""
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
            method = opened.store.load if load else opened.store.peek
            answer = _later(opened, method, key).addCallback(self._found, key)
            return answer.addErrback(self._turn_lost) if load else answer
        try:
            stored = store.load_now(key) if load else store.peek_now(key)
        except BaseException as error:
            if load:
                self._end_turn()
            if isinstance(error, StoreUnavailable):
                raise _refusal(error) from None
            raise
        return self._found(stored, key)

    def _found(self, stored: Stored | None, key: bytes) -> bytes:
        self.key = key
        if stored is None:
            self.version = ABSENT
            return _VERSION.pack(ABSENT) + self.defaults
        self.version = stored.version
        return _VERSION.pack(stored.version) + stored.data

    def _save(self, key: bytes, data: bytes, expected: int) -> bytes | Deferred[bytes]:
        opened = self._opened()
        self._check(opened, data)
        store = opened.immediate
        if store is None:
            answer = _later(opened, opened.store.save, key, data, expected)
            return self._settle(opened, key, answer.addCallback(self._saved, key))
        try:
            version = store.save_now(key, data, expected)
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

    def _delete(self, key: bytes, expected: int) -> bytes | Deferred[bytes]:
        opened = self._opened()
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

    def _moved(self, stored: Stored | None, key: bytes) -> _Moved:
        """The ``X`` reply for a write that met ``stored``."""
        self.key = key
        self.version = stored.version if stored else ABSENT
        return _Moved(self.version, stored.data if stored else self.defaults)

    def _wrote(self, key: bytes) -> None:
        """A write to the player whose turn this connection holds ends the
        turn, whatever its outcome."""
        if self.turn is not None and self.turn.key == key:
            self._end_turn()

    def _check(self, opened: OpenSlab[Any], data: bytes) -> None:
        """Refuse ``data`` unless it reads as a record of the slab, as an
        in-process route would read it (every field decoded, the class's
        validators run)."""
        codec = opened.codec
        if len(data) != codec.record_size:
            raise BadMessage(
                f"a record of slab {self.slab and self.slab.name!r} is"
                f" {codec.record_size} bytes, not {len(data)}"
            )
        try:
            codec.decode(data)
        except (RecordUnreadable, RecordInvalid, RecordTooLarge) as error:
            raise Refusal(f"record refused, nothing changed: {error}") from None

    def _end_turn(self) -> None:
        turn, self.turn = self.turn, None
        if turn is not None:
            turn.end()


def write_now(transport: ITransport, data: bytes) -> None:
    """``transport.write(data)``, sent at once when nothing waits before it.

    Twisted's socket transports queue every write for the next turn of the
    reactor, which costs two epoll_ctl calls and a loop per reply: that doubled
    the bridge's CPU per round trip (benchmarks.bridgetrip). asyncio sends at
    once and queues only what the socket did not take; this does the same.
    """
    if (
        isinstance(transport, FileDescriptor)
        and transport.connected
        and not transport.dataBuffer
        and not transport._tempDataBuffer
    ):
        sent = transport.writeSomeData(data)
        if isinstance(sent, int):
            if sent == len(data):
                return
            data = data[sent:]
    transport.write(data)


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


class _Moved(Exception):
    """A write met a newer record: answered ``X`` with it."""

    def __init__(self, version: int, data: bytes) -> None:
        super().__init__(version)
        self.version = version
        self.data = data


class _Turn:
    """A connection's place in a player's turn-taking: waiting (for at most
    :data:`WAIT_TIMEOUT`), then holding (for at most :data:`HOLD_TIMEOUT`),
    then given back. The bridge's sweep ends one that outlasts its limit."""

    def __init__(
        self, protocol: BridgeProtocol, opened: OpenSlab[Any], key: bytes
    ) -> None:
        self.protocol = protocol
        self.opened = opened
        self.key = key
        self.held = False
        self.ended = False
        #: Fires when a turn waited for comes (None: it came at once).
        self.granted: Deferred[None] | None = None
        self.since = opened.clock.seconds()
        self.limit = WAIT_TIMEOUT

    def take(self) -> bool:
        """Hold the turn now (True), or wait in line for it (False: see
        :attr:`granted`)."""
        turns = self.opened.turns
        if turns.hold(self.key):
            self._hold()
            return True
        self.granted = Deferred()
        if not turns.wait(self.key, self):
            self.ended = True
            raise Refusal(
                f"this player's queue is full ({turns.limit} may wait): try again later"
            )
        return False

    def _hold(self) -> None:
        self.held = True
        self.since = self.opened.clock.seconds()
        self.limit = HOLD_TIMEOUT

    def start(self) -> None:
        """The turn has come, from the queue."""
        if self.ended:
            self.opened.turns.release(self.key)  # left meanwhile: pass it on
            return
        self._hold()
        assert self.granted is not None
        self.granted.callback(None)

    def refuse(self, response: Response | None) -> None:
        """The slab closes while this waits."""
        self.ended = True
        if self.granted is not None and not self.granted.called:
            meta = response.meta if response is not None else "closing"
            self.granted.errback(Refusal(meta))

    def expire(self) -> None:
        """Held or waited too long."""
        if self.held:
            self.end()
            if self.protocol.turn is self:
                self.protocol.turn = None
            return
        self.end()
        if self.granted is not None and not self.granted.called:
            self.granted.errback(
                Refusal(
                    f"this player stayed busy for {WAIT_TIMEOUT:g} s: try again later"
                )
            )

    def end(self) -> None:
        """Give the turn back, or leave the queue."""
        if self.ended:
            return
        self.ended = True
        if self.held:
            self.held = False
            self.opened.turns.release(self.key)
        else:
            self.opened.turns.leave(self.key, self)


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
    """Connections of one bridge, to the slabs in ``slabs``."""

    def __init__(self, slabs: dict[str, Slab[Any]], clock: IReactorTime) -> None:
        self.slabs = slabs
        self.clock = clock
        self.connections: set[BridgeProtocol] = set()
        self._defaults: dict[tuple[str, Codec[Any]], bytes] = {}
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

    def buildProtocol(self, addr: object) -> BridgeProtocol:
        return BridgeProtocol(self)

    def defaults(self, slab: Slab[Any], codec: Codec[Any]) -> bytes:
        """The bytes a new player of ``slab`` reads: its record class's defaults."""
        key = (slab.name, codec)
        found = self._defaults.get(key)
        if found is None:
            found = self._defaults[key] = codec.encode(codec.new())
        return found

    def pick(self, name: str) -> Slab[Any]:
        """The slab SELECT names (empty: the only one)."""
        names = ", ".join(sorted(self.slabs))
        if not name:
            if len(self.slabs) == 1:
                return next(iter(self.slabs.values()))
            raise BadMessage(
                f"this capsule serves {len(self.slabs)} slabs over the bridge"
                f" ({names}): name one"
            )
        slab = self.slabs.get(name)
        if slab is None:
            raise BadMessage(
                f"no slab {name!r} is served over the bridge; these are: {names}"
                f" (only slabs declared with a layout are)"
            )
        return slab
