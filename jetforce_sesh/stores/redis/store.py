"""The Redis store: records in one Redis (or Valkey), shared by every process.

Each operation is one Lua script (:mod:`jetforce_sesh.stores.redis.scripts`), so the
version compare, the room decision and the write happen in one step for every
process on the Redis. Time is the capsule's clock, passed to each script: the
idle decisions are the memory store's, to the microsecond; Redis's own TTL on a
record (the idle timeout, refreshed on use) only cleans up after capsules that
are no longer running.

Redis away: an operation made while there is no connection fails at once with
:class:`~jetforce_sesh.StoreUnavailable`; one whose answer does not come within
:data:`~jetforce_sesh.stores.redis.link.REPLY_TIMEOUT` fails then, and the connection is
dropped and made again (:mod:`jetforce_sesh.stores.redis.link`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from jetforce_sesh.errors import ConfigError, StoreFull, StoreUnavailable
from jetforce_sesh.options import OnFull
from jetforce_sesh.stores.contract import (
    ANY_VERSION,
    ISessionStore,
    RecordPage,
    Stored,
    StoredRecord,
    StoreSpec,
    StoreStats,
    check_data,
    check_key,
    conflict,
    refused,
)
from jetforce_sesh.stores.redis import scripts
from jetforce_sesh.stores.redis.cluster import ClusterLink
from jetforce_sesh.stores.redis.link import REPLY_TIMEOUT, RedisLink
from jetforce_sesh.stores.redis.scripts import KIND, Script
from jetforce_sesh.stores.redis.url import parse_store_url
from jetforce_sesh.stores.support import HookMethods, Hooks, IdleSweep

#: Most idle records one sweep script drops.
SWEEP_BATCH = 500
#: Records one script gives a new TTL, after a restart with another idle timeout.
RETIME_BATCH = 1000
#: Records one script moves from jetforce-sesh 0.2's key layout: a few
#: milliseconds of Redis's time each (one script moving a million records
#: held every client of that Redis for 7 s, and outlasted REPLY_TIMEOUT).
MIGRATE_BATCH = 1000
#: Characters no key prefix or slab name may hold in Redis: braces mark the slab's
#: hash tag, so a name with one could make its keys another slab's.
RESERVED = "{}"
#: REPLY_TIMEOUT in milliseconds: a wait for replicas must end well within it.
REPLY_MS = round(REPLY_TIMEOUT * 1000)

_log = Logger()

#: The connection of a store factory: to one server (or the primary that
#: Sentinels name), or to a cluster.
Link = RedisLink | ClusterLink


@implementer(ISessionStore)
class RedisStore(HookMethods):
    """One slab's records in Redis, under ``{prefix}:{slab name}:``."""

    def __init__(
        self, spec: StoreSpec, link: Link, prefix: str, token: str = ""
    ) -> None:
        options = spec.options
        self.name = spec.name
        self.record_size = spec.record_size
        self.capacity = options.max_records
        self.idle_timeout = options.idle_timeout
        self.on_full: OnFull = options.on_full
        self.clock = spec.clock
        self.codec_format = spec.codec_format
        self.link = link
        self.prefix = prefix
        self.base = f"{prefix}:{{{spec.name}}}:"
        self._keys = tuple(
            f"{self.base}{name}".encode()
            for name in ("used", "keys", "held", "seq", "meta")
        )
        self._record = f"{self.base}r:".encode()
        # Every script's arguments that never change, as bytes once: the
        # connection sends bytes as they are (a str is encoded on each call).
        self._ttl = b"%d" % round(self.idle_timeout * 1000)
        self._timeout = repr(float(self.idle_timeout)).encode()
        self._codec = self.codec_format.encode()
        self._capacity = b"%d" % self.capacity
        self._refuse = b"1" if self.on_full == "refuse" else b"0"
        #: The keys requests of this process hold (StoreSpec.held), and this
        #: process's name for its holds in Redis.
        self.held = spec.held
        self.token = token or uuid.uuid4().hex[:12]
        self._token = self.token.encode()
        #: How long the holds a sweep tells of last: past the next sweep.
        self._lease = str(round(3 * _sweep_period(self.idle_timeout) * 1_000_000))
        #: The highest version this store has seen: the versions Redis gives
        #: stay above it, even if Redis comes back older than it was.
        self._floor = 0
        self._closing: Deferred[None] | None = None
        self.hooks = Hooks()
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
        """Connect, move the slab from jetforce-sesh 0.2's key layout if it is
        kept there, check that the keys under the base are this slab's (or
        none), and start the periodic sweep of idle records."""
        self._closing = None
        opened: Deferred[Any] = self.link.open(self)
        if isinstance(self.link, ClusterLink):
            opened.addCallback(lambda _: self.link.command("EXISTS", self._old("meta")))
            opened.addCallback(self._not_old)
        else:
            opened.addCallback(lambda _: self._migrate())
        opened.addCallback(lambda _: self._run(scripts.CLAIM, (), self.codec_format))
        opened.addCallback(self._claimed)
        return opened

    def _old(self, name: str) -> str:
        """The key of ``name`` in jetforce-sesh 0.2's layout (``prefix:slab:``)."""
        return f"{self.prefix}:{self.name}:{name}"

    def _not_old(self, found: object) -> None:
        if found == 1:
            raise ConfigError(
                f"the cluster at {self.link.target.shown} holds keys of slab"
                f" {self.name!r} in jetforce-sesh 0.2's layout (under"
                f" {self._old('')!r}), which no release wrote to a cluster and no"
                f" script can move across its hash slots: to keep them, start this"
                f" release once on a single Redis holding them, which moves them"
                f" under {self.base!r} (one hash slot), and copy those keys to the"
                f" cluster; else delete them, or choose another --store-prefix"
            )

    def _migrate(self) -> Deferred[None]:
        """Move the slab from 0.2's layout, if it is there, a batch of records
        per script: each leaves every record whole in one layout, and the next
        (in this process or another) goes on from there."""
        old = tuple(self._old(n).encode() for n in ("meta", "used", "keys", "seq"))
        migrated = self._run(
            scripts.MIGRATE,
            old,
            self._old(""),
            self.codec_format,
            str(MIGRATE_BATCH),
            writes=True,
        )
        return migrated.addCallback(self._migrated)

    def _migrated(self, reply: list[bytes]) -> Deferred[None] | None:
        outcome = reply[0]
        shown = f"Redis at {self.link.target.shown}"
        old = self._old("")
        if outcome == b"more":
            return self._migrate()
        if outcome == b"moved":
            self._in_use = int(reply[2])
            # Once in the life of a slab, and worth an operator's eye: shown
            # at the default --log-level.
            _log.warn(
                "moved slab {name!r} from jetforce-sesh 0.2's key layout"
                " ({old!r}) to this release's ({new!r}): {moved} records",
                name=self.name,
                old=old,
                new=self.base,
                moved=int(reply[1]),
            )
        elif outcome == b"kind":
            raise ConfigError(
                f"{shown} holds {old}meta written by"
                f" {reply[1].decode(errors='replace')!r}, not jetforce-sesh 0.2:"
                f" choose another --store-prefix or database"
            )
        elif outcome == b"codec":
            raise ConfigError(
                f"{shown} holds slab {self.name!r} in jetforce-sesh 0.2's layout in"
                f" {reply[1].decode(errors='replace')}, not {self.codec_format}:"
                f" another capsule uses prefix {self.prefix!r}; choose another"
                f" --store-prefix"
            )
        elif outcome == b"both":
            raise ConfigError(
                f"{shown} holds slab {self.name!r} both in jetforce-sesh 0.2's"
                f" layout (under {old!r}) and in this release's (under"
                f" {self.base!r}): nothing was moved; delete the keys of the one"
                f" to forget"
            )
        return None

    def _claimed(self, reply: list[bytes]) -> Deferred[None] | None:
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
        if outcome == b"unfinished":
            raise ConfigError(
                f"{shown} holds slab {self.name!r} half moved from jetforce-sesh"
                f" 0.2's layout (under {reply[1].decode(errors='replace')!r}),"
                f" whose {reply[1].decode(errors='replace')}meta someone deleted"
                f" before the move ended: put that meta back (HSET it kind"
                f" {scripts.OLD_KIND!r} codec {self.codec_format!r}) and start"
                f" again, which ends the move"
            )
        if outcome == b"codec":
            raise ConfigError(
                f"{shown} holds records of slab {self.name!r} in"
                f" {reply[1].decode(errors='replace')}, not {self.codec_format}:"
                f" another capsule uses prefix {self.prefix!r}; choose another"
                f" --store-prefix"
            )
        self._in_use = int(reply[1])
        if reply[2] == b"1":
            return self._retime("").addCallback(lambda _: self._sweeper.start())
        self._sweeper.start()
        return None

    def _retime(self, cursor: str) -> Deferred[None]:
        """Give every record the TTL of this idle timeout (none for 0), a batch
        at a time: the records were made under another one."""
        retimed = self._run(scripts.RETIME, (), cursor, str(RETIME_BATCH))

        def next_batch(reply: list[bytes]) -> Deferred[None] | None:
            after = reply[0].decode()
            return self._retime(after) if after else None

        return retimed.addCallback(next_batch)

    def close(self) -> Deferred[None]:
        """Stop sweeping and let go of the connection; the records stay.
        Closing again answers as the first close did, and changes nothing."""
        if self._closing is None:
            self._sweeper.stop()
            self._closing = self.link.close(self)
            self._closing.addErrback(self._closing_failed)
        done: Deferred[None] = Deferred()
        self._closing.addBoth(_pass_on, done)
        return done

    def _closing_failed(self, failure: Failure) -> Failure:
        _log.failure("closing the store of slab {name!r}", failure, name=self.name)
        return failure

    def sweep(self) -> Deferred[int]:
        """Drop records idle for ``idle_timeout``; fires with how many. A sweep
        that fails is logged and the next one comes at its time: a failure
        never stops the sweeping."""
        swept = self._run(
            scripts.SWEEP, (), str(SWEEP_BATCH), self._lease, mine=self._all_held()
        )

        def swept_now(reply: list[bytes]) -> int:
            self._in_use = int(reply[0])
            for member in reply[1:]:
                self._expired(member)
            self.hooks.run()
            if len(reply) - 1 == SWEEP_BATCH:
                self._sweeper.more()
            return len(reply) - 1

        def away(failure: Failure) -> int:
            if isinstance(failure.value, StoreUnavailable):
                _log.info("idle sweep skipped: {why}", why=failure.getErrorMessage())
            else:
                _log.failure(
                    "idle sweep of slab {name!r} failed; sweeping again in time",
                    failure,
                    name=self.name,
                )
            return 0

        return swept.addCallbacks(swept_now, away)

    # -- ISessionStore -----------------------------------------------------------

    def load(self, key: bytes) -> Deferred[Stored | None]:
        try:
            member = check_key(key).hex().encode()
        except Exception:
            return fail()
        return self._run(
            scripts.LOAD,
            (self._record + member,),
            member,
            self._codec,
            mine=self._held(key, member),
        ).addCallback(self._loaded, member)

    def _loaded(self, reply: list[Any], member: bytes) -> Stored | None:
        self._in_use = int(reply[1])
        found = int(reply[0])
        if found != 1:
            self._counts["misses"] += 1
            if found == 2:
                self._expired(member)
                self.hooks.run()
            return None
        self._counts["hits"] += 1
        version = int(reply[2])
        if version > self._floor:
            self._floor = version
        return Stored(reply[3], version)

    def peek(self, key: bytes) -> Deferred[Stored | None]:
        try:
            member = check_key(key).hex().encode()
        except Exception:
            return fail()
        return self._run(
            scripts.PEEK, (self._record + member,), member, mine=self._held(key, member)
        ).addCallback(self._peeked)

    def _peeked(self, reply: list[bytes]) -> Stored | None:
        if not reply:
            return None
        version = int(reply[0])
        if version > self._floor:
            self._floor = version
        return Stored(reply[1], version)

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        try:
            member = check_key(key).hex().encode()
            check_data(data, self.name, self.record_size)
        except Exception:
            return fail()
        saved = self._run(
            scripts.SAVE,
            (self._record + member,),
            member,
            expected,
            data,
            self._capacity,
            self._refuse,
            self._codec,
            writes=True,
            # A save that may make a record may evict another: it needs them all.
            mine=self._all_held() if expected <= 0 else self._held(key, member),
        )
        return saved.addCallback(self._saved, key, expected)

    def _saved(self, reply: list[bytes], key: bytes, expected: int) -> int:
        outcome, self._in_use, number = reply[0], int(reply[1]), int(reply[2])
        if number > self._floor:
            self._floor = number
        events = reply[3:]
        for kind, member in zip(events[::2], events[1::2], strict=True):
            if kind == b"x":
                self._expired(member)
            elif kind == b"e":
                self._counts["evictions"] += 1
                self.hooks.queue(self.hooks.evicted, bytes.fromhex(member.decode()))
            else:
                self._counts["creations"] += 1
                self.hooks.queue(self.hooks.created, key)
        try:
            if outcome == b"conflict":
                self._conflict(key, number, expected)
            if outcome == b"full":
                self._counts["refusals"] += 1
                raise refused(self.name, self.capacity)
            if outcome == b"busy":
                self._counts["refusals"] += 1
                raise StoreFull(
                    f"slab {self.name!r} is full ({self.capacity} records) and every"
                    f" record is in use by a request: try again in a moment"
                )
            return number
        finally:
            self.hooks.run()

    def delete(self, key: bytes, expected: int = ANY_VERSION) -> Deferred[bool]:
        try:
            member = check_key(key).hex().encode()
        except Exception:
            return fail()
        deleted = self._run(
            scripts.DELETE,
            (self._record + member,),
            member,
            str(expected),
            writes=True,
            mine=self._held(key, member),
        )

        def answered(reply: list[bytes]) -> bool:
            self._in_use = int(reply[1])
            self._floor = max(self._floor, int(reply[2]))
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
        listed = self._run(
            scripts.RECORDS, (), cursor or "", str(limit), mine=self._all_held()
        )

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
        self,
        script: Script,
        record: tuple[bytes, ...],
        *args: str | bytes | int,
        writes: bool = False,
        mine: str = "",
    ) -> Deferred[Any]:
        now = repr(self.clock.seconds())
        common = (now, self._timeout, self._ttl, self._floor, mine, self._token)
        return self.link.run(script, self._keys + record, (*common, *args), writes)

    def _held(self, key: bytes, member: bytes) -> str:
        """What a script about ``key`` alone needs told of this process's holds."""
        held = self.held
        return member.decode() if held and key in held else ""

    def _all_held(self) -> str:
        """Every key this process's requests hold, for a script that may drop
        any record (a sweep, an eviction, a listing's idle check)."""
        held = self.held
        if not held or not isinstance(held, Iterable):
            return ""
        return " ".join(key.hex() for key in held)

    def _expired(self, member: bytes) -> None:
        self._counts["expirations"] += 1
        try:
            key = bytes.fromhex(member.decode())
        except ValueError:
            # Not a key this store wrote (planted by hand): dropped all the
            # same, with no hook to tell.
            _log.warn(
                "dropped {member!r}, not a key, from slab {name!r}",
                member=member,
                name=self.name,
            )
            return
        self.hooks.queue(self.hooks.expired, key)

    def _conflict(self, key: bytes, stored: int, expected: int) -> None:
        self._counts["conflicts"] += 1
        raise conflict(self.name, key, stored, expected)


def _sweep_period(idle_timeout: float) -> float:
    """Seconds between two sweeps (IdleSweep's), or a minute without any."""
    return max(1.0, min(60.0, idle_timeout / 2)) if idle_timeout > 0 else 60.0


def _pass_on(result: object, done: Deferred[None]) -> None:
    """Tell ``done`` what a shared Deferred fired with, keeping it for the next."""
    if isinstance(result, Failure):
        done.errback(result)
    else:
        done.callback(None)


def _is_member(cursor: object) -> bool:
    return (
        type(cursor) is str
        and len(cursor) == 64
        and all(c in "0123456789abcdef" for c in cursor)
    )


class RedisStores:
    """A store factory: a :class:`RedisStore` per slab, all on one connection.

    ``url`` is a ``--store`` URL (see :mod:`jetforce_sesh.stores.redis.url`); the
    password, if the URL has none, comes from ``$JETFORCE_SESH_REDIS_PASSWORD`` in
    ``environ``. ``prefix`` starts every key, so capsules sharing a Redis keep
    apart; processes of one capsule must use the same one. With
    ``wait_replicas`` above 0, a save or delete is answered only once that many
    replicas have it, and fails with StoreUnsure if fewer confirm it within
    ``wait_timeout`` milliseconds (see :class:`RedisLink`).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str,
        reactor: IReactorTime,
        environ: Mapping[str, str] | None = None,
        wait_replicas: int = 0,
        wait_timeout: int = 100,
    ) -> None:
        import os

        if type(wait_replicas) is not int or wait_replicas < 0:
            raise ConfigError(
                f"the replicas a save waits for must be 0 or more (got"
                f" {wait_replicas!r})"
            )
        if type(wait_timeout) is not int or not 0 < wait_timeout < REPLY_MS:
            raise ConfigError(
                f"the wait for replicas must be 1 to {REPLY_MS - 1} ms, under the"
                f" {REPLY_MS} ms a Redis answer may take (got {wait_timeout!r})"
            )
        self.target = parse_store_url(url, os.environ if environ is None else environ)
        if not prefix or any(c.isspace() or c in RESERVED for c in prefix):
            raise ConfigError(
                f"the Redis key prefix must be a word without spaces or braces"
                f" (got {prefix!r})"
            )
        self.prefix = prefix
        kind = ClusterLink if self.target.cluster else RedisLink
        self.link: Link = kind(self.target, reactor, wait_replicas, wait_timeout)
        self._names: set[str] = set()
        #: This process's name for the holds its requests have in Redis.
        self.token = uuid.uuid4().hex[:12]

    def __call__(self, spec: StoreSpec) -> RedisStore:
        if not spec.name or any(c in RESERVED for c in spec.name):
            raise ConfigError(
                f"slab {spec.name!r} cannot be kept in Redis: a slab's name there"
                f" must not be empty or hold braces, which mark Redis Cluster hash"
                f" tags; give it another name"
            )
        if spec.name in self._names:
            raise ConfigError(
                f"two slabs named {spec.name!r} would share Redis keys under"
                f" {self.prefix!r}: give them different names"
            )
        self._names.add(spec.name)
        return RedisStore(spec, self.link, self.prefix, self.token)
