"""The CGI bridge: CGI programs share the slabs' records over a UNIX socket.

A program in C or Python (see ``sesh_bridge.py`` and ``clients/c/``) connects, picks
a slab that has a fixed layout, and looks up, updates, compares-and-sets or deletes
one player's record: the very record, in the very store, that in-process routes
use, served by the same reactor. A LOOKUP takes the player's turn from the slab's
:class:`~jetforce_sesh.turns.Turns`, as an in-process request does, so a CGI
program's read-change-write cannot interleave with a route's, and every write is a
compare-and-set against the version read, so none is lost even when a turn runs
out. The wire format is in ``docs/reference/bridge.md``.

Each connection is strict request and reply: anything malformed, oversized,
unknown or sent out of turn gets an ``E`` reply and the connection is closed; the
server and every other connection carry on.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from jetforce.app.base import Response
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import Int32StringReceiver
from twisted.python.failure import Failure

import sesh_bridge as wire
from jetforce_sesh.codec import why
from jetforce_sesh.errors import (
    ConfigError,
    Conflict,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
    StoreFull,
    StoreNotOpen,
    StoreUnavailable,
)
from jetforce_sesh.identity import BadFingerprint, parse_fingerprint
from jetforce_sesh.keys import FingerprintKeys
from jetforce_sesh.slab import Opened, Slab
from jetforce_sesh.store import ABSENT, ANY_VERSION, Stored

#: Seconds a connection may stay without sending a complete message: longer than
#: a turn is held, so a slow client still hears that its turn ran out.
IDLE_TIMEOUT = 30.0
#: Seconds a LOOKUP holds the player's turn at most.
HOLD_TIMEOUT = 10.0
#: Seconds a LOOKUP waits for the turn, and a store operation for its answer.
WAIT_TIMEOUT = 10.0

_VERSION = struct.Struct("!Q")
_SIZE = struct.Struct("!I")
_LENGTH = struct.Struct("!I")

_log = Logger()


class BadMessage(Exception):
    """A message the protocol does not allow: answered ``E``, then closed."""


class Refusal(Exception):
    """A request the bridge declines (``N``); the connection stays usable."""


def bridged(slabs: Iterable[Slab[Any]]) -> dict[str, Slab[Any]]:
    """The slabs a bridge serves, by name: those with a layout.

    ConfigError if there is none, or if a record is too large for the wire.
    """
    served: dict[str, Slab[Any]] = {}
    for slab in slabs:
        if slab.layout is None:
            continue
        size = slab.codec_for(slab.resolve()).record_size
        if size > wire.MAX_RECORD:
            raise ConfigError(
                f"slab {slab.name!r} has {size}-byte records, more than the"
                f" bridge carries ({wire.MAX_RECORD}): use a smaller layout"
            )
        served[slab.name] = slab
    if not served:
        raise ConfigError(
            "no slab has a fixed layout, so the bridge would serve nothing: declare"
            " one with app.slab(Record, layout='<Q'), or leave --bridge-socket out"
        )
    return served


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
        #: The turn this connection holds or waits for, and on which Turns.
        self.turn: _Turn | None = None
        self.busy = False
        self.gone = False
        self.idle_timer: IDelayedCall | None = None

    # -- the connection --------------------------------------------------------

    def connectionMade(self) -> None:
        self.bridge.connections.add(self)
        self._idle(IDLE_TIMEOUT)

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.drop()

    def drop(self) -> None:
        """Stop answering, and give back the turn this connection holds."""
        self.gone = True
        self._idle(None)
        self.bridge.connections.discard(self)
        self._end_turn()

    def lengthLimitExceeded(self, length: int) -> None:
        self._fail(f"message of {length} bytes: messages are at most {self.MAX_LENGTH}")

    def stringReceived(self, message: bytes) -> None:
        if self.gone:
            return
        if self.busy:
            self._fail("a message before the reply to the last: send one at a time")
            return
        self.busy = True
        self._idle(None)
        try:
            answer = self._dispatch(message)
        except Exception as error:
            self._replied(error)
            return
        if isinstance(answer, Deferred):
            answer.addCallbacks(self._replied, self._failed)
        else:
            self._replied(answer)

    def _idle(self, seconds: float | None) -> None:
        """Close the connection if no message comes within ``seconds`` (None:
        the server is busy with one, and the client rightly waits)."""
        timer, self.idle_timer = self.idle_timer, None
        if timer is not None and timer.active():
            timer.cancel()
        if seconds is not None:
            self.idle_timer = self.bridge.clock.callLater(seconds, self._too_quiet)

    def _too_quiet(self) -> None:
        self.idle_timer = None
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
            self._send(wire.REFUSED + str(result).encode())
        elif isinstance(result, _Moved):
            self._send(wire.CONFLICT + _VERSION.pack(result.version) + result.data)
        elif isinstance(result, BadMessage):
            self._fail(str(result))
            return
        else:
            self._fail("the server failed to answer: see its log")
            return
        self._idle(IDLE_TIMEOUT)

    def _send(self, reply: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_LENGTH.pack(len(reply)) + reply)

    def _fail(self, message: str) -> None:
        if not self.gone:
            self._send(wire.ERROR + message.encode())
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
            return self._peek(self._player(body))
        if code == wire.UPDATE:
            if self.key is None:
                raise BadMessage("UPDATE before LOOKUP: look the player up first")
            return self._save(self.key, self._record(body), self.version)
        if code == wire.COMPARE_AND_SET:
            if len(body) < 9 or len(body) < 9 + body[8]:
                raise BadMessage("COMPARE-AND-SET is too short")
            (expected,) = _VERSION.unpack_from(body)
            end = 9 + body[8]
            key = self._player(body[9:end])
            return self._save(key, self._record(body[end:]), expected)
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
        self.defaults = codec.encode(codec.new())
        self.key = None
        self.version = ABSENT
        return b""

    def _player(self, text: bytes) -> bytes:
        try:
            return parse_fingerprint(text.decode("ascii"))
        except (UnicodeDecodeError, BadFingerprint) as error:
            raise BadMessage(f"not a fingerprint: {why(error)}") from None

    def _record(self, data: bytes) -> bytes:
        """``data`` as the slab's codec writes it, once it reads back as a record."""
        opened = self._opened()
        if len(data) != opened.codec.record_size:
            raise BadMessage(
                f"a record of slab {self.slab and self.slab.name!r} is"
                f" {opened.codec.record_size} bytes, not {len(data)}"
            )
        try:
            return opened.codec.encode(opened.codec.decode(data))
        except (RecordUnreadable, RecordInvalid, RecordTooLarge) as error:
            raise Refusal(f"record refused, nothing changed: {error}") from None

    def _opened(self) -> Opened[Any]:
        assert self.slab is not None
        try:
            opened = self.slab.serving
        except StoreNotOpen:
            raise Refusal("the capsule is not serving now: try again later") from None
        if opened.closing:
            raise Refusal("the capsule is shutting down: try again later")
        return opened

    def _lookup(self, key: bytes) -> Deferred[bytes]:
        self._end_turn()
        opened = self._opened()
        turn = self.turn = _Turn(self, opened, key)

        def failed(failure: Failure) -> Failure:
            if self.turn is turn:
                self._end_turn()
            return failure

        taken = turn.take().addCallback(lambda _: self._peek(key, opened.store.load))
        return taken.addErrback(failed)

    def _peek(
        self,
        key: bytes,
        read: Callable[[bytes], Deferred[Stored | None]] | None = None,
    ) -> Deferred[bytes]:
        opened = self._opened()

        def found(stored: Stored | None) -> bytes:
            self.key = key
            if stored is None:
                self.version = ABSENT
                return _VERSION.pack(ABSENT) + self.defaults
            self.version = stored.version
            return _VERSION.pack(stored.version) + stored.data

        return self._store(opened, read or opened.store.peek, key).addCallback(found)

    def _save(self, key: bytes, data: bytes, expected: int) -> Deferred[bytes]:
        opened = self._opened()

        def saved(version: int) -> bytes:
            self.key, self.version = key, version
            return _VERSION.pack(version)

        answer = self._store(opened, opened.store.save, key, data, expected)
        return self._moved(opened, key, answer.addCallback(saved))

    def _delete(self, key: bytes, expected: int) -> Deferred[bytes]:
        opened = self._opened()
        if expected == wire.ANY_VERSION:
            expected = ANY_VERSION

        def deleted(existed: bool) -> bytes:
            self.key, self.version = key, ABSENT
            return b"\x01" if existed else b"\x00"

        answer = self._store(opened, opened.store.delete, key, expected)
        return self._moved(opened, key, answer.addCallback(deleted))

    def _moved(
        self, opened: Opened[Any], key: bytes, answer: Deferred[bytes]
    ) -> Deferred[bytes]:
        """``answer``, its Conflict turned into the record there now; a write
        ends this connection's turn on ``key`` either way."""

        def conflict(failure: Failure) -> Deferred[bytes]:
            if not isinstance(failure.value, Conflict):
                failure.raiseException()
            current = self._store(opened, opened.store.peek, key)

            def moved(stored: Stored | None) -> bytes:
                self.key = key
                self.version = stored.version if stored else ABSENT
                raise _Moved(self.version, stored.data if stored else self.defaults)

            return current.addCallback(moved)

        def end_turn(result: object) -> object:
            if self.turn is not None and self.turn.key == key:
                self._end_turn()
            return result

        return answer.addErrback(conflict).addBoth(end_turn)

    def _store(
        self, opened: Opened[Any], method: Callable[..., Deferred[Any]], *args: Any
    ) -> Deferred[Any]:
        """``method(*args)``, failing as a Refusal when the store cannot answer
        (within :data:`WAIT_TIMEOUT`)."""
        answer: Deferred[Any] = maybeDeferred(method, *args)
        answer.addTimeout(WAIT_TIMEOUT, opened.clock)

        def refused(failure: Failure) -> Failure:
            if isinstance(failure.value, StoreFull):
                raise Refusal(f"the slab is full: {failure.value}")
            if isinstance(
                failure.value, (StoreUnavailable, CancelledError, TimeoutError)
            ):
                raise Refusal("the record store is unavailable: try again later")
            return failure

        return answer.addErrback(refused)

    def _end_turn(self) -> None:
        turn, self.turn = self.turn, None
        if turn is not None:
            turn.end()


class _Moved(Exception):
    """A write met a newer record: answered ``X`` with it."""

    def __init__(self, version: int, data: bytes) -> None:
        super().__init__(version)
        self.version = version
        self.data = data


class _Turn:
    """A connection's place in a player's turn-taking: waiting, then holding
    (for at most :data:`HOLD_TIMEOUT`), then given back."""

    def __init__(
        self, protocol: BridgeProtocol, opened: Opened[Any], key: bytes
    ) -> None:
        self.protocol = protocol
        self.opened = opened
        self.key = key
        self.held = False
        self.ended = False
        self.granted: Deferred[None] = Deferred()
        self.timer: IDelayedCall | None = None

    def take(self) -> Deferred[None]:
        turns = self.opened.turns
        if turns.hold(self.key):
            self.start()
        elif not turns.wait(self.key, self):
            self.ended = True
            self.granted.errback(
                Refusal(
                    f"this player has {turns.limit} requests waiting already:"
                    f" try again later"
                )
            )
        else:
            self.timer = self.opened.clock.callLater(WAIT_TIMEOUT, self._waited_long)
        return self.granted

    def start(self) -> None:
        """The turn has come (from :class:`Turns`, or at once)."""
        self._stop_timer()
        if self.ended:
            self.opened.turns.release(self.key)  # left meanwhile: pass it on
            return
        self.held = True
        self.timer = self.opened.clock.callLater(HOLD_TIMEOUT, self.end)
        self.granted.callback(None)

    def refuse(self, response: Response | None) -> None:
        """The slab closed while this waited."""
        self._stop_timer()
        self.ended = True
        if not self.granted.called:
            meta = response.meta if response is not None else "closing"
            self.granted.errback(Refusal(meta))

    def _waited_long(self) -> None:
        self.timer = None
        self.ended = True
        self.opened.turns.leave(self.key, self)
        self.granted.errback(
            Refusal(f"this player stayed busy for {WAIT_TIMEOUT:g} s: try again later")
        )

    def end(self) -> None:
        """Give the turn back, or leave the queue."""
        if self.ended:
            return
        self.ended = True
        self._stop_timer()
        if self.held:
            self.held = False
            self.opened.turns.release(self.key)
        else:
            self.opened.turns.leave(self.key, self)

    def _stop_timer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()


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

    def buildProtocol(self, addr: object) -> BridgeProtocol:
        return BridgeProtocol(self)

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


class BridgeService(Service):
    """The bridge as a service: listening on its socket from start to stop."""

    def __init__(
        self,
        factory: BridgeFactory,
        listen: Callable[[BridgeFactory], IListeningPort],
    ) -> None:
        self.factory = factory
        self._listen = listen
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.port = self._listen(self.factory)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        for connection in list(self.factory.connections):
            # Turns held by CGI programs end now, so in-process requests queued
            # behind them finish within the shutdown grace.
            connection.drop()
            if connection.transport is not None:
                connection.transport.loseConnection()
        port, self.port = self.port, None
        if port is None:
            return None
        stopped: Deferred[None] | None = port.stopListening()
        return stopped


def check_keys(slabs: Iterable[Slab[Any]], keys: object) -> None:
    """ConfigError if the capsule keys records by something other than the
    certificate's fingerprint: a CGI program knows only that."""
    if not isinstance(keys, FingerprintKeys):
        names = ", ".join(slab.name for slab in slabs)
        raise ConfigError(
            f"the bridge serves records keyed by the certificate's fingerprint, and"
            f" this capsule keys {names} with {type(keys).__name__}: leave"
            f" --bridge-socket out"
        )
