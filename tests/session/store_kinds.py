"""The stores the route's state machine plays against, beyond the memory store:
one in another process as ``LaterStore`` is, one whose saves arrive after the
route stopped waiting, one that loses the answer to a save it made, and the
SQLite store. Each keeps its records in a ``MemoryStore`` the machine reads
behind the route's back (:func:`records_of`).

And the Redis store (:class:`RedisKind`), on the test session's real
valkey-server and the real reactor: its answers come over a socket, so the
machine lets the reactor run until none is awaited (:meth:`RedisKind.settle`)
before it looks; it reads and changes records behind the route's back through
a store of another process on the same keys (:class:`OtherProcess`).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from jetforce_sesh import StoreUnsure, memory_stores
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.session.visit import STORE_TIMEOUT
from jetforce_sesh.stores import MemoryStore
from jetforce_sesh.stores.contract import ANY_VERSION, Stored, StoreFactory, StoreSpec
from jetforce_sesh.stores.redis.store import RedisStore, RedisStores
from jetforce_sesh.stores.sqlite.store import SQLiteStore, SQLiteStores
from jetforce_sesh.testing import LaterStore, later_stores

T = TypeVar("T")


class RecordsNow(Protocol):
    """Where the machine reads and changes records behind the route's back."""

    def peek_now(self, key: bytes) -> Stored | None: ...
    def save_now(self, key: bytes, data: bytes, expected: int) -> int: ...


class LateSaveStore(LaterStore):
    """As ``LaterStore``; but the save armed by :meth:`trouble` reaches the
    records only ``late`` seconds after it was made (it waited in a queue, as
    over a slow link), after the route stopped waiting for it, and applies
    then what it names, version and all."""

    def __init__(
        self, inner: MemoryStore, clock: IReactorTime, delay: float, late: float
    ) -> None:
        super().__init__(inner, clock, delay)
        self.late = late
        self.armed = False

    def trouble(self) -> None:
        self.armed = True

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        if not self.armed:
            return super().save(key, data, expected)
        self.armed = False
        arrived: Deferred[int] = Deferred()

        def arrive() -> None:
            self.inner.save(key, data, expected).chainDeferred(arrived)

        self.clock.callLater(self.late, arrive)
        return arrived


class LossyStore(LaterStore):
    """As ``LaterStore``; but the answer to the save armed by :meth:`trouble`
    is lost: the save is made, and the route is told ``StoreUnsure`` (a
    connection that dropped between the write and its reply)."""

    def __init__(self, inner: MemoryStore, clock: IReactorTime, delay: float) -> None:
        super().__init__(inner, clock, delay)
        self.armed = False

    def trouble(self) -> None:
        self.armed = True

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        answer = super().save(key, data, expected)
        if not self.armed:
            return answer
        self.armed = False
        lost: Deferred[int] = Deferred()

        def gone(result: object) -> None:
            lost.errback(
                StoreUnsure(
                    f"slab {self.name!r}: the answer to a save was lost: it may or"
                    f" may not have been kept"
                )
            )

        answer.addBoth(gone)
        return lost


def late_saves(spec: StoreSpec) -> LateSaveStore:
    return LateSaveStore(memory_stores(spec), spec.clock, 0.5, STORE_TIMEOUT + 2)


def lossy(spec: StoreSpec) -> LossyStore:
    return LossyStore(memory_stores(spec), spec.clock, 0.5)


class SQLiteKind:
    """SQLite stores in a directory of their own, for one run of the machine."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="sesh-machine-"))
        self.factory = SQLiteStores(self.directory / "state")

    def __call__(self, spec: StoreSpec) -> SQLiteStore:
        return self.factory(spec)

    def remove(self) -> None:
        self.factory.directory.release()
        shutil.rmtree(self.directory, ignore_errors=True)


def wait(deferred: Deferred[T]) -> T:
    """``deferred``'s result, the real reactor running until it fires."""
    result: T = pytest_twisted.blockon(deferred)
    return result


class OtherProcess:
    """Another process's store on the keys of a slab in Redis: what the
    machine reads and changes behind the route's back goes through Redis, as
    another capsule process's would (versions and all)."""

    def __init__(self, url: str, prefix: str, like: RedisStore) -> None:
        spec = StoreSpec(
            like.name,
            SlabOptions(
                max_records=like.capacity,
                record_size=like.record_size,
                idle_timeout=like.idle_timeout,
                on_full=like.on_full,
            ),
            like.clock,
            like.record_size,
            like.codec_format,
        )
        self.store = RedisStores(url, prefix=prefix, reactor=reactor)(spec)
        wait(self.store.open())

    def peek_now(self, key: bytes) -> Stored | None:
        return wait(self.store.peek(key))

    def save_now(self, key: bytes, data: bytes, expected: int = ANY_VERSION) -> int:
        return wait(self.store.save(key, data, expected))

    def close(self) -> None:
        wait(self.store.close())


class RedisKind:
    """Redis stores on one real valkey-server (``url``), for one run of the
    machine: under a key prefix of their own, so that runs keep apart; each
    open of the capsule is a new connection, as a restart's would be."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"machine-{uuid.uuid4().hex[:12]}"
        self.made: list[RedisStore] = []
        self.other: OtherProcess | None = None

    def __call__(self, spec: StoreSpec) -> RedisStore:
        store = RedisStores(self.url, prefix=self.prefix, reactor=reactor)(spec)
        self.made.append(store)
        return store

    def records(self, store: RedisStore) -> OtherProcess:
        if self.other is None:
            self.other = OtherProcess(self.url, self.prefix, store)
        return self.other

    def settle(self, opening: Deferred[None] | None = None) -> None:
        """Let the reactor run until no store of this run awaits an answer
        from Redis (each answer lets the route go on, which may send more),
        nor is closing its connection, nor (given ``opening``) opening: what
        Redis does then takes no time on the route's Clock, so the machine
        sees the same steps whatever the socket's speed."""
        stores = [*self.made, *([self.other.store] if self.other else [])]
        while True:
            if opening is not None and not opening.called:
                wait(opening)
            elif any(store.link.in_flight for store in stores):
                for store in stores:
                    if store.link.in_flight:
                        wait(store.link.quiet())
            else:
                closing = [
                    store._closing
                    for store in stores
                    if store._closing is not None and not store._closing.called
                ]
                if not closing:
                    return
                wait(closing[0])

    def remove(self) -> None:
        if self.other is not None:
            self.other.close()
            self.other = None


#: The kinds the machine runs against: a fresh factory for each run, and
#: whether records outlive a close.
KINDS: dict[str, tuple[Callable[[], StoreFactory], bool]] = {
    "memory": (lambda: memory_stores, False),
    "later": (lambda: later_stores(0.5), False),
    "late-save": (lambda: late_saves, False),
    "lossy": (lambda: lossy, False),
    "sqlite": (SQLiteKind, True),
}


def records_of(store: object) -> MemoryStore:
    """The memory store where ``store`` keeps its records (not the Redis
    store's: :meth:`RedisKind.records`)."""
    if isinstance(store, MemoryStore):
        return store
    if isinstance(store, LaterStore):
        return store.inner
    if isinstance(store, SQLiteStore):
        return store.memory
    raise TypeError(f"no records to read in {store!r}")
