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

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from jetforce_sesh.errors import ConfigError, StoreUnavailable
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
from jetforce_sesh.stores.redis.link import RedisLink
from jetforce_sesh.stores.redis.scripts import Script
from jetforce_sesh.stores.redis.url import parse_store_url
from jetforce_sesh.stores.support import HookMethods, Hooks, IdleSweep

#: Most idle records one sweep script drops.
SWEEP_BATCH = 500
#: What the store writes in a slab's meta hash, to know its own keys again.
KIND = "jetforce-sesh redis store 1"

_log = Logger()


@implementer(ISessionStore)
class RedisStore(HookMethods):
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
            self.hooks.run()
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
                self.hooks.run()
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
            return number
        finally:
            self.hooks.run()

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
        self.hooks.queue(self.hooks.expired, bytes.fromhex(member.decode()))

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

    ``url`` is a ``--store`` URL (see :mod:`jetforce_sesh.stores.redis.url`); the
    password, if the URL has none, comes from ``$JETFORCE_SESH_REDIS_PASSWORD`` in
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
