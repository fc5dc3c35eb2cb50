"""The Redis store's connection: one per store factory, shared by its slabs.

txredisapi makes and remakes the connection; this adds what a session store needs
of it: a clear line when Redis cannot be reached or refuses us at start-up,
failing at once while there is no connection (instead of queueing behind a
reconnect), a watchdog that drops a connection whose answers stopped coming,
and scripts sent by their SHA-1.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import ConfigError, StoreUnavailable, StoreUnsure
from jetforce_sesh.stores.redis.scripts import Script
from jetforce_sesh.stores.redis.url import PASSWORD_ENV, RedisTarget

_log = Logger()

#: Seconds a script's answer may take before the store gives up on it and drops
#: the connection: with the watchdog's period, under the 2 s in which a player
#: must hear that the records are away.
REPLY_TIMEOUT = 1.2
#: Seconds between two looks of the watchdog at the oldest unanswered script.
#: One periodic look instead of a timer per script (txredisapi's replyTimeout):
#: two timers less on every request.
WATCH_PERIOD = 0.25
#: Seconds the first connection may take at start-up.
CONNECT_TIMEOUT = 3.0
#: Most seconds between two reconnection attempts (txredisapi's default is 10).
MAX_RECONNECT_DELAY = 2.0
#: The same behind Sentinels: a lost connection most likely means a failover, and
#: each attempt asks the Sentinels where the primary is now. txredisapi also
#: takes it as the connect timeout of each attempt.
SENTINEL_RECONNECT_DELAY = 0.5
#: Seconds to wait for the Sentinels to name a primary in good health before
#: trying again (txredisapi's default is 10, longer than most failovers).
SENTINEL_DISCOVERY_TIMEOUT = 0.5
#: jetforce-sesh is installed from its checkout (it is not on PyPI), so the
#: hint names the extra there, and the pinned packages for a venv that has
#: jetforce-sesh already (pyproject.toml's redis extra; a test keeps them equal).
INSTALL_HINT = (
    "the Redis store needs txredisapi: pip install '.[redis]' in the jetforce-sesh"
    " checkout, or pip install txredisapi==1.6.0 hiredis==3.5.0"
)

_log = Logger()
_PENDING = object()
#: Stands for a plain command in :meth:`RedisLink.run`.
_COMMAND = Script("command", "")


def txredisapi(target: RedisTarget) -> ModuleType:
    """txredisapi, imported only when a Redis store is chosen: it comes with the
    redis extra, and a capsule on the memory store needs none of it."""
    try:
        return importlib.import_module("txredisapi")
    except ImportError:
        raise ConfigError(f"--store {target.shown}: {INSTALL_HINT}") from None


class RedisLink:
    """One connection to one Redis, shared by the stores of one factory.

    With ``wait_replicas`` above 0, every write is followed, on the same
    connection and without waiting for its answer, by ``WAIT wait_replicas
    wait_timeout``: the write is answered only once that many replicas have
    it, and fails with StoreUnsure if fewer said so within ``wait_timeout``
    milliseconds.
    """

    def __init__(
        self,
        target: RedisTarget,
        reactor: IReactorTime,
        wait_replicas: int = 0,
        wait_timeout: int = 100,
    ) -> None:
        self.target = target
        self.reactor = reactor
        self.wait_replicas = wait_replicas
        self.wait_timeout = wait_timeout
        self._api = txredisapi(target)
        self._handler: Any = None
        self._sentinel: Any = None
        self._waiters: list[Deferred[None]] = []
        self._outcome: object = _PENDING
        #: The stores that opened the link and have not closed it.
        self._users: set[object] = set()
        #: Scripts sent and not yet answered.
        self.in_flight = 0
        #: Each of them, by the number it was given when sent, oldest first:
        #: when it was first sent, and on which connection it waits now (an
        #: EVAL sent again after NOSCRIPT waits on the one it was sent on).
        self._sent: dict[int, tuple[float, Any]] = {}
        self._calls = 0
        self._watchdog = LoopingCall(self._watch)
        self._watchdog.clock = reactor
        self._quiet: list[Deferred[None]] = []

    def open(self, user: object) -> Deferred[None]:
        """Connect, once for every store of the factory; fails with one line
        saying what is wrong if Redis cannot be reached or refuses us."""
        self._users.add(user)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if self._handler is None:
            self._connect().addBoth(self._connected)
        elif self._outcome is not _PENDING:
            self._tell()
        return waiter

    def _connected(self, outcome: object) -> None:
        self._outcome = outcome
        self._tell()

    def _tell(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(self._outcome, Failure):
                waiter.errback(self._outcome)
            else:
                waiter.callback(None)

    def _connect(self) -> Deferred[None]:
        api, target = self._api, self.target
        common: dict[str, Any] = {
            "dbid": target.db,
            "reconnect": True,
            "charset": None,
            "password": target.password,
            "connectTimeout": CONNECT_TIMEOUT,
            "replyTimeout": None,  # the watchdog's job
            "convertNumbers": False,
        }
        if target.service is not None:
            sentinel = api.Sentinel(list(target.sentinels))
            sentinel.discovery_timeout = SENTINEL_DISCOVERY_TIMEOUT
            self._sentinel = sentinel
            del common["reconnect"], common["connectTimeout"]
            self._handler = sentinel.master_for(
                target.service,
                factory_class=_sentinel_factory_class(api),
                username=target.username,
                **common,
            )
        elif target.path is not None:
            self._handler = api.lazyUnixConnection(target.path, **common)
        else:
            self._handler = api.lazyConnection(
                target.host,
                target.port,
                ssl_context_factory=_tls(target) or False,
                username=target.username,
                **common,
            )
        factory = self._handler._factory
        if target.service is None:
            # Connections are made later, on the reactor: the factory makes them
            # of this class from the first on.
            factory.protocol = _protocol_class(api)
            factory.initialDelay = 0.5
            factory.maxDelay = MAX_RECONNECT_DELAY
        connected: Deferred[Any] = self._handler._connected
        timer = self.reactor.callLater(CONNECT_TIMEOUT, connected.cancel)

        def done(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        def refused(failure: Failure) -> NoReturn:
            self._handler.disconnect()
            if self._sentinel is not None:
                self._sentinel.disconnect()
                self._sentinel = None
            raise self._start_error(failure)

        def ready(_: object) -> None:
            self._watchdog.start(WATCH_PERIOD, now=False)

        return connected.addBoth(done).addCallbacks(ready, refused)

    def _watch(self) -> None:
        if not self._sent:
            return
        sent_at, connection = next(iter(self._sent.values()))
        if self.reactor.seconds() - sent_at < REPLY_TIMEOUT:
            return
        _log.warn(
            "Redis at {url} did not answer within {timeout} s: reconnecting",
            url=self.target.shown,
            timeout=REPLY_TIMEOUT,
        )
        # Every script waiting on this connection then fails (StoreUnavailable,
        # or StoreUnsure for writes), and txredisapi connects again.
        if connection.transport is not None:
            connection.transport.abortConnection()

    def _start_error(self, failure: Failure) -> Exception:
        shown = self.target.shown
        said = failure.getErrorMessage()
        if "could not auth" in said:
            return ConfigError(
                f"Redis at {shown} refused the password ({_after(said)}): check the"
                f" URL of --store, or ${PASSWORD_ENV}"
            )
        if "could not set dbid" in said:
            return ConfigError(
                f"Redis at {shown} has no database {self.target.db}"
                f" ({_after(said)}): give one it has, such as /0"
            )
        if self.target.service is not None:
            return StoreUnavailable(
                f"the Sentinels of {shown} named no primary in good health within"
                f" {CONNECT_TIMEOUT:g} s: start them (and the primary), or check"
                f" --store"
            )
        return StoreUnavailable(
            f"Redis at {shown} did not answer within {CONNECT_TIMEOUT:g} s: start it,"
            f" or check --store"
        )

    def close(self, user: object) -> Deferred[None]:
        """Disconnect once the last store using the link has closed; a store
        that closes again (or never opened) changes nothing."""
        if user not in self._users:
            return succeed(None)
        self._users.discard(user)
        if self._users or self._handler is None:
            return succeed(None)
        handler, self._handler, self._outcome = self._handler, None, _PENDING

        sentinel, self._sentinel = self._sentinel, None

        def disconnect(_: object) -> Deferred[object]:
            if self._watchdog.running:
                self._watchdog.stop()
            if sentinel is not None:
                sentinel.disconnect()
            return handler.disconnect()  # type: ignore[no-any-return]

        # Answers still owed are waited for (the watchdog still on guard, so
        # within REPLY_TIMEOUT), so that their hooks run before the stores go.
        closing = self.quiet().addCallback(disconnect)
        return closing.addCallback(lambda _: None)

    def quiet(self) -> Deferred[None]:
        """Fires once no script is waiting for its answer."""
        if not self.in_flight:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._quiet.append(waiter)
        return waiter

    def _answered(self, result: object, call: int) -> object:
        self.in_flight -= 1
        del self._sent[call]
        if not self.in_flight and self._quiet:
            # Told on the next turn: the stores' callbacks on this answer (and
            # their hooks) run first.
            waiters, self._quiet = self._quiet, []
            for waiter in waiters:
                self.reactor.callLater(0, waiter.callback, None)
        return result

    def run(
        self,
        script: Script,
        keys: Sequence[bytes],
        args: Sequence[str | bytes | int],
        writes: bool,
    ) -> Deferred[Any]:
        """Run ``script``; StoreUnavailable at once if there is no connection.

        A write whose answer is lost may have been made: it fails with
        StoreUnsure, a StoreUnavailable that says so.
        """
        connection = self._live()
        if connection is None:
            return fail(
                StoreUnavailable(
                    f"no connection to Redis at {self.target.shown}; reconnecting"
                )
            )
        self._calls += 1
        call = self._calls
        self.in_flight += 1
        self._sent[call] = (self.reactor.seconds(), connection)
        waits = writes and self.wait_replicas > 0
        command = (
            args
            if script is _COMMAND
            else ("EVALSHA", script.sha, len(keys), *keys, *args)
        )
        sent = self._send(connection, command, waits)
        # One callback for the answer, whatever it is: each more costs.
        return sent.addBoth(self._settled, call, script, keys, args, writes, connection)

    def _send(
        self, connection: Any, command: Sequence[Any], waits: bool
    ) -> Deferred[Any]:
        try:
            sent: Deferred[Any] = connection.execute_command(*command)
        except Exception:
            return fail()
        return self._waited(connection, sent) if waits else sent

    def _settled(
        self,
        result: object,
        call: int,
        script: Script,
        keys: Sequence[bytes],
        args: Sequence[str | bytes | int],
        writes: bool,
        connection: Any,
        resent: bool = False,
    ) -> Any:
        if not isinstance(result, Failure):
            self._answered(None, call)
            return result
        api, said = self._api, result.value
        if (
            not resent
            and script is not _COMMAND
            and isinstance(said, api.ResponseError)
            and str(said).startswith("NOSCRIPT")
        ):
            # Redis forgets scripts when it restarts (and a replica promoted
            # never had them): send this one whole, which also makes Redis keep
            # it for the next EVALSHA. The watchdog watches the EVAL as the
            # same call, still counted from when it was first sent.
            waits = writes and self.wait_replicas > 0
            command = ("EVAL", script.source, len(keys), *keys, *args)
            again = self._send(connection, command, waits)
            return again.addBoth(
                self._settled, call, script, keys, args, writes, connection, True
            )
        self._answered(None, call)
        if isinstance(said, api.ConnectionError):
            kind = StoreUnsure if writes else StoreUnavailable
            raise kind(f"Redis at {self.target.shown}: {result.getErrorMessage()}")
        if isinstance(said, api.ResponseError):
            raise StoreUnavailable(
                f"Redis at {self.target.shown} refused the {script.name}:"
                f" {result.getErrorMessage()}"
            )
        return result

    def _waited(self, connection: Any, sent: Deferred[Any]) -> Deferred[Any]:
        """``sent``'s answer once ``wait_replicas`` replicas have what it
        wrote; StoreUnsure if fewer say so in time. WAIT goes right behind the
        script, before its answer: one round trip, and it covers the script
        (it counts what this connection wrote until then)."""
        try:
            acked: Deferred[Any] = connection.execute_command(
                "WAIT", self.wait_replicas, self.wait_timeout
            )
        except Exception:
            return sent  # not connected: the script fails alike
        replies: list[Any] = []

        def kept(reply: Any) -> Deferred[Any]:
            replies.append(reply)
            return acked

        def confirmed(count: Any) -> Any:
            if int(count) < self.wait_replicas:
                raise StoreUnsure(
                    f"Redis at {self.target.shown}: {int(count)} of the"
                    f" {self.wait_replicas} replicas asked for confirmed the write"
                    f" within {self.wait_timeout} ms"
                )
            return replies[0]

        def script_failed(failure: Failure) -> Failure:
            # The script's own failure is the one to tell; WAIT's answer (or
            # failure) is not needed any more.
            acked.addErrback(lambda _: None)
            return failure

        return sent.addCallbacks(kept, script_failed).addCallback(confirmed)

    def command(self, *args: str | bytes) -> Deferred[Any]:
        """Send one plain command (start-up checks); StoreUnavailable if it
        cannot be sent or Redis refuses it."""
        return self.run(_COMMAND, (), args, writes=False)

    def _live(self) -> Any:
        if self._handler is None:
            return None
        for connection in self._handler._factory.pool:
            if connection.connected:
                return connection
        return None


def _build_command(self: Any, *args: Any, **kwargs: Any) -> bytes:
    """A command in one join (txredisapi encodes every argument and every
    length separately: a fifth of a store call). The store's arguments are
    bytes, str and int, encoded here inline as txredisapi would with
    ``charset=None`` (UTF-8): its ``_encode_value``, a method call and a chain
    of isinstance per argument, cost more than the rest of the build."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        kind = type(arg)
        if kind is str:
            arg = arg.encode()
        elif kind is int:
            arg = b"%d" % arg
        elif kind is not bytes:
            arg = self._encode_value(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(parts)


class _Lean:
    """What the store's connections change in txredisapi's protocol, cheaper
    per command (measured: a fifth of a store call went to txredisapi's own
    bookkeeping): each command built in one join, and each reply handed
    straight to the Deferred of its command, kept in arrival order, instead of
    through a DeferredQueue, a conversion pass over every reply (an identity
    with ``charset=None`` and no number conversion) and two Deferreds more.
    The store sends no MULTI and no pipelining, the two things those passes
    were for."""

    _answers: deque[Deferred[Any]]
    _reader: Any
    connected: int
    transport: Any

    def execute_command(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
        self.transport.write(_build_command(self, *args))
        answer: Deferred[Any] = Deferred()
        self._answers.append(answer)
        post_proc = kwargs.get("post_proc")
        if callable(post_proc):
            answer.addCallback(post_proc)
        return answer

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        reader = self._reader
        if data:
            reader.feed(data)
        reply = reader.gets()
        while reply is not False:
            self.replyReceived(reply)
            reply = reader.gets()

    def replyReceived(self, reply: Any) -> None:
        answer = self._answers.popleft()
        if isinstance(reply, Exception):
            answer.errback(reply)
        else:
            answer.callback(reply)


def _lean(api: ModuleType, base: type) -> type:
    """``base`` (a txredisapi protocol) with :class:`_Lean`'s ways."""

    class Protocol(_Lean, base):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._answers = deque()

        def execute_command(self, *args: Any, **kwargs: Any) -> Deferred[Any]:
            if not self.connected:
                raise api.ConnectionError("Not connected")
            return _Lean.execute_command(self, *args, **kwargs)

        def connectionLost(self, why: Any) -> None:
            super().connectionLost(why)
            answers, self._answers = self._answers, deque()
            for answer in answers:
                answer.errback(api.ConnectionError("Lost connection"))

    return Protocol


def _protocol_class(api: ModuleType) -> type:
    """txredisapi's protocol, made leaner for the store (:class:`_Lean`)."""
    return _lean(api, api.RedisProtocol)


def _after(said: str) -> str:
    return said.rpartition(": ")[2].strip()


def _tls(target: RedisTarget) -> Any:
    if not target.tls:
        return None
    from twisted.internet.ssl import Certificate, optionsForClientTLS

    if target.ca is None:
        return optionsForClientTLS(target.host or "")
    with open(target.ca, "rb") as pem:
        authority = Certificate.loadPEM(pem.read())
    return optionsForClientTLS(target.host or "", trustRoot=authority)


def _sentinel_factory_class(api: ModuleType) -> type:
    """txredisapi's Sentinel connection factory, with :func:`_protocol_class`'s
    way of building commands, a primary's ``ROLE`` read right with
    ``charset=None`` (txredisapi 1.6.0 compares ``b"master"`` with
    ``"master"``, and hangs up on every primary), and a short backoff."""

    class SentinelProtocol(_lean(api, api.SentinelRedisProtocol)):  # type: ignore[misc]
        def connectionMade(self) -> Any:
            def check_role(role: Any) -> Any:
                if self.factory.is_master and role[0] not in (b"master", "master"):
                    self.transport.loseConnection()
                    return None
                return api.RedisProtocol.connectionMade(self)

            if self.password is not None:
                self.auth(self.password, self.username)
            return self.role().addCallback(check_role)

    class Factory(api.SentinelConnectionFactory):  # type: ignore[misc, name-defined]
        protocol = SentinelProtocol
        maxDelay = SENTINEL_RECONNECT_DELAY

    return Factory
