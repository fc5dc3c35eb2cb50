"""The Redis store: records in one Redis (or Valkey), shared by every process.

Each operation is one Lua script (:mod:`jetforce_sesh.redisscripts`), so the
version compare, the room decision and the write happen in one step for every
process on the Redis. Time is the capsule's clock, passed to each script: the
idle decisions are the memory store's, to the microsecond; Redis's own TTL on a
record (the idle timeout, refreshed on use) only cleans up after capsules that
are no longer running.

Redis away: an operation made while there is no connection fails at once with
:class:`~jetforce_sesh.StoreUnavailable`; one whose answer does not come within
:data:`REPLY_TIMEOUT` fails then, and the connection is dropped and made again.
txredisapi reconnects by itself, within :data:`MAX_RECONNECT_DELAY`.
"""

from __future__ import annotations

import importlib
from collections import deque
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any, NoReturn

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from jetforce_sesh import redisscripts as scripts
from jetforce_sesh.errors import (
    ConfigError,
    StoreUnavailable,
    StoreUnsure,
)
from jetforce_sesh.options import OnFull
from jetforce_sesh.redisscripts import Script
from jetforce_sesh.redisurl import PASSWORD_ENV, RedisTarget, parse_store_url
from jetforce_sesh.store import (
    ANY_VERSION,
    Hooks,
    IdleSweep,
    ISessionStore,
    RecordPage,
    Stored,
    StoredRecord,
    StoreSpec,
    StoreStats,
    TellsHooks,
    check_data,
    check_key,
    conflict,
    refused,
)

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
#: Most idle records one sweep script drops.
SWEEP_BATCH = 500
#: What the store writes in a slab's meta hash, to know its own keys again.
KIND = "jetforce-sesh redis store 1"
INSTALL_HINT = "the Redis store needs txredisapi: pip install 'jetforce-sesh[redis]'"

_log = Logger()
_PENDING = object()


def txredisapi(target: RedisTarget) -> ModuleType:
    """txredisapi, imported only when a Redis store is chosen: it comes with the
    redis extra, and a capsule on the memory store needs none of it."""
    try:
        return importlib.import_module("txredisapi")
    except ImportError:
        raise ConfigError(f"--store {target.shown}: {INSTALL_HINT}") from None


class RedisLink:
    """One connection to one Redis, shared by the stores of one factory."""

    def __init__(self, target: RedisTarget, reactor: IReactorTime) -> None:
        self.target = target
        self.reactor = reactor
        self._api = txredisapi(target)
        self._handler: Any = None
        self._waiters: list[Deferred[None]] = []
        self._outcome: object = _PENDING
        self._users = 0
        #: Scripts sent and not yet answered.
        self.in_flight = 0
        #: When each of them was sent, and on which connection, oldest first.
        self._sent: deque[tuple[float, Any]] = deque()
        self._watchdog = LoopingCall(self._watch)
        self._watchdog.clock = reactor
        self._quiet: list[Deferred[None]] = []

    def open(self) -> Deferred[None]:
        """Connect, once for every store of the factory; fails with one line
        saying what is wrong if Redis cannot be reached or refuses us."""
        self._users += 1
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
        if target.path is not None:
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
        # Connections are made later, on the reactor: the factory makes them of
        # this class from the first on.
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
            raise self._start_error(failure)

        def ready(_: object) -> None:
            self._watchdog.start(WATCH_PERIOD, now=False)

        return connected.addBoth(done).addCallbacks(ready, refused)

    def _watch(self) -> None:
        if not self._sent:
            return
        sent_at, connection = self._sent[0]
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
        return StoreUnavailable(
            f"Redis at {shown} did not answer within {CONNECT_TIMEOUT:g} s: start it,"
            f" or check --store"
        )

    def close(self) -> Deferred[None]:
        """Disconnect once the last store using the link has closed."""
        self._users -= 1
        if self._users > 0 or self._handler is None:
            return succeed(None)
        handler, self._handler, self._outcome = self._handler, None, _PENDING
        if self._watchdog.running:
            self._watchdog.stop()
        # Answers still owed are waited for (each within REPLY_TIMEOUT), so that
        # their hooks run before the stores are gone.
        closing = self.quiet().addCallback(lambda _: handler.disconnect())
        return closing.addCallback(lambda _: None)

    def quiet(self) -> Deferred[None]:
        """Fires once no script is waiting for its answer."""
        if not self.in_flight:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._quiet.append(waiter)
        return waiter

    def _answered(self, result: object) -> object:
        self.in_flight -= 1
        if self._sent:
            self._sent.popleft()
        if not self.in_flight and self._quiet:
            # Told on the next turn: the stores' callbacks on this answer (and
            # their hooks) run first.
            waiters, self._quiet = self._quiet, []
            for waiter in waiters:
                self.reactor.callLater(0, waiter.callback, None)
        return result

    def run(
        self, script: Script, args: Sequence[str | bytes], writes: bool
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
        api = self._api

        def failed(failure: Failure) -> Failure:
            if isinstance(failure.value, api.ConnectionError):
                kind = StoreUnsure if writes else StoreUnavailable
                raise kind(f"Redis at {self.target.shown}: {failure.getErrorMessage()}")
            if isinstance(failure.value, api.ResponseError):
                raise StoreUnavailable(
                    f"Redis at {self.target.shown} refused the {script.name}:"
                    f" {failure.getErrorMessage()}"
                )
            return failure

        def unknown(failure: Failure) -> Any:
            # Redis forgets scripts when it restarts: send this one whole, which
            # also makes Redis keep it for the next EVALSHA.
            said = failure.value
            if isinstance(said, api.ResponseError) and str(said).startswith("NOSCRIPT"):
                return connection.execute_command("EVAL", script.source, 0, *args)
            return failure

        self.in_flight += 1
        self._sent.append((self.reactor.seconds(), connection))
        sent = maybeDeferred(
            connection.execute_command, "EVALSHA", script.sha, 0, *args
        )
        return sent.addErrback(unknown).addBoth(self._answered).addErrback(failed)

    def _live(self) -> Any:
        if self._handler is None:
            return None
        for connection in self._handler._factory.pool:
            if connection.connected:
                return connection
        return None


def _protocol_class(api: ModuleType) -> type:
    """txredisapi's protocol, building each command in one join (it encodes
    every argument and every length separately: a fifth of a store call)."""

    class Protocol(api.RedisProtocol):  # type: ignore[misc, name-defined]
        def _build_command(self, *args: Any, **kwargs: Any) -> bytes:
            parts = [b"*%d\r\n" % len(args)]
            for arg in args:
                if type(arg) is not bytes:
                    arg = self._encode_value(arg)
                parts.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
            return b"".join(parts)

    return Protocol


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


@implementer(ISessionStore)
class RedisStore(TellsHooks):
    """One slab's records in Redis, under ``{prefix}:{slab name}:``."""

    def __init__(self, spec: StoreSpec, link: RedisLink, prefix: str) -> None:
        options = spec.options
        self.name = spec.name
        self.record_size = spec.record_size
        self.capacity = options.max_records
        self.idle_timeout = options.idle_timeout
        self.on_full: OnFull = options.on_full
        self.clock = spec.clock
        self.codec_format = spec.codec_format
        self.link = link
        self.base = f"{prefix}:{spec.name}:"
        self._ttl = str(round(self.idle_timeout * 1000))
        self._timeout = repr(float(self.idle_timeout))
        self._hooks = Hooks()
        self._in_use = 0
        self._counts = dict.fromkeys(
            (
                "hits",
                "misses",
                "creations",
                "evictions",
                "expirations",
                "refusals",
                "conflicts",
            ),
            0,
        )
        self._sweeper = IdleSweep(self.clock, self.idle_timeout, self.sweep)

    # -- life cycle ------------------------------------------------------------

    def open(self) -> Deferred[None]:
        """Connect, check that the keys under the base are this slab's (or
        none), and start the periodic sweep of idle records."""
        claimed = self.link.open().addCallback(
            lambda _: self._run(scripts.CLAIM, KIND, self.codec_format)
        )
        return claimed.addCallback(self._claimed)

    def _claimed(self, reply: list[bytes]) -> None:
        outcome = reply[0]
        shown = f"Redis at {self.link.target.shown}"
        if outcome == b"foreign":
            raise ConfigError(
                f"{shown} holds {reply[1].decode(errors='replace')} as"
                f" {reply[2].decode(errors='replace')}, which the store of slab"
                f" {self.name!r} did not write: choose another --store-prefix or"
                f" database"
            )
        if outcome == b"kind":
            raise ConfigError(
                f"{shown} holds slab {self.name!r} under {self.base!r} written by"
                f" {reply[1].decode(errors='replace')!r}, not {KIND!r}: choose"
                f" another --store-prefix or database"
            )
        if outcome == b"codec":
            raise ConfigError(
                f"{shown} holds records of slab {self.name!r} in"
                f" {reply[1].decode(errors='replace')}, not {self.codec_format}:"
                f" another capsule uses prefix {self.base[:-1]!r}; choose another"
                f" --store-prefix"
            )
        self._in_use = int(reply[1])
        self._sweeper.start()

    def close(self) -> Deferred[None]:
        """Stop sweeping and let go of the connection; the records stay."""
        self._sweeper.stop()
        return self.link.close()

    def sweep(self) -> Deferred[int]:
        """Drop records idle for ``idle_timeout``; fires with how many."""
        swept = self._run(scripts.SWEEP, str(SWEEP_BATCH))

        def swept_now(reply: list[bytes]) -> int:
            self._in_use = int(reply[0])
            for member in reply[1:]:
                self._expired(member)
            self._hooks.run()
            if len(reply) - 1 == SWEEP_BATCH:
                self._sweeper.more()
            return len(reply) - 1

        def away(failure: Failure) -> int | Failure:
            if not isinstance(failure.value, StoreUnavailable):
                return failure
            _log.info("idle sweep skipped: {why}", why=failure.getErrorMessage())
            return 0

        return swept.addCallbacks(swept_now, away)

    # -- ISessionStore -----------------------------------------------------------

    def load(self, key: bytes) -> Deferred[Stored | None]:
        try:
            member = check_key(key).hex()
        except Exception:
            return fail()
        return self._run(scripts.LOAD, member).addCallback(self._loaded, member)

    def _loaded(self, reply: list[Any], member: str) -> Stored | None:
        self._in_use = int(reply[1])
        found = int(reply[0])
        if found != 1:
            self._counts["misses"] += 1
            if found == 2:
                self._expired(member.encode())
                self._hooks.run()
            return None
        self._counts["hits"] += 1
        return Stored(reply[3], int(reply[2]))

    def peek(self, key: bytes) -> Deferred[Stored | None]:
        try:
            member = check_key(key).hex()
        except Exception:
            return fail()
        return self._run(scripts.PEEK, member).addCallback(
            lambda reply: Stored(reply[1], int(reply[0])) if reply else None
        )

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        try:
            member = check_key(key).hex()
            check_data(data, self.name, self.record_size)
        except Exception:
            return fail()
        refuse = "1" if self.on_full == "refuse" else "0"
        saved = self._run(
            scripts.SAVE,
            member,
            str(expected),
            data,
            str(self.capacity),
            refuse,
            writes=True,
        )
        return saved.addCallback(self._saved, key, expected)

    def _saved(self, reply: list[bytes], key: bytes, expected: int) -> int:
        outcome, self._in_use, number = reply[0], int(reply[1]), int(reply[2])
        events = reply[3:]
        for kind, member in zip(events[::2], events[1::2], strict=True):
            if kind == b"x":
                self._expired(member)
            elif kind == b"e":
                self._counts["evictions"] += 1
                self._hooks.queue(self._hooks.evicted, bytes.fromhex(member.decode()))
            else:
                self._counts["creations"] += 1
                self._hooks.queue(self._hooks.created, key)
        try:
            if outcome == b"conflict":
                self._conflict(key, number, expected)
            if outcome == b"full":
                self._counts["refusals"] += 1
                raise refused(self.name, self.capacity)
            return number
        finally:
            self._hooks.run()

    def delete(self, key: bytes, expected: int = ANY_VERSION) -> Deferred[bool]:
        try:
            member = check_key(key).hex()
        except Exception:
            return fail()
        deleted = self._run(scripts.DELETE, member, str(expected), writes=True)

        def answered(reply: list[bytes]) -> bool:
            self._in_use = int(reply[1])
            if reply[0] == b"conflict":
                self._conflict(key, int(reply[2]), expected)
            return reply[0] == b"deleted"

        return deleted.addCallback(answered)

    def records(
        self, cursor: str | None = None, limit: int = 256
    ) -> Deferred[RecordPage]:
        if cursor is not None and not _is_member(cursor):
            return fail(ValueError(f"cursor {cursor!r} is not one this store gave"))
        if type(limit) is not int or limit < 1:
            return fail(ValueError(f"limit must be 1 or more records (got {limit!r})"))
        listed = self._run(scripts.RECORDS, cursor or "", str(limit))

        def page(reply: list[bytes]) -> RecordPage:
            rows = reply[1:]
            found = [
                StoredRecord(
                    bytes.fromhex(rows[i].decode()),
                    rows[i + 2],
                    int(rows[i + 1]),
                    float(rows[i + 3]),
                )
                for i in range(0, len(rows), 4)
            ]
            return RecordPage(found, reply[0].decode() or None)

        return listed.addCallback(page)

    def stats(self) -> StoreStats:
        """This process's counters; ``in_use`` as of Redis's last answer."""
        return StoreStats(in_use=self._in_use, capacity=self.capacity, **self._counts)

    # -- helpers -----------------------------------------------------------------

    def _run(
        self, script: Script, *args: str | bytes, writes: bool = False
    ) -> Deferred[Any]:
        common = (self.base, repr(self.clock.seconds()), self._timeout, self._ttl)
        return self.link.run(script, (*common, *args), writes)

    def _expired(self, member: bytes) -> None:
        self._counts["expirations"] += 1
        self._hooks.queue(self._hooks.expired, bytes.fromhex(member.decode()))

    def _conflict(self, key: bytes, stored: int, expected: int) -> None:
        self._counts["conflicts"] += 1
        raise conflict(self.name, key, stored, expected)


def _is_member(cursor: object) -> bool:
    return (
        type(cursor) is str
        and len(cursor) == 64
        and all(c in "0123456789abcdef" for c in cursor)
    )


class RedisStores:
    """A store factory: a :class:`RedisStore` per slab, all on one connection.

    ``url`` is a ``--store`` URL (see :mod:`jetforce_sesh.redisurl`); the password,
    if the URL has none, comes from ``$JETFORCE_SESH_REDIS_PASSWORD`` in
    ``environ``. ``prefix`` starts every key, so capsules sharing a Redis keep
    apart; processes of one capsule must use the same one.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        reactor: IReactorTime,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        import os

        self.target = parse_store_url(url, os.environ if environ is None else environ)
        if not prefix or any(c.isspace() for c in prefix):
            raise ConfigError(
                f"the Redis key prefix must be a word without spaces (got {prefix!r})"
            )
        self.prefix = prefix
        self.link = RedisLink(self.target, reactor)
        self._names: set[str] = set()

    def __call__(self, spec: StoreSpec) -> RedisStore:
        if spec.name in self._names:
            raise ConfigError(
                f"two slabs named {spec.name!r} would share Redis keys under"
                f" {self.prefix!r}: give them different names"
            )
        self._names.add(spec.name)
        return RedisStore(spec, self.link, self.prefix)
