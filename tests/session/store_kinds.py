"""The stores the route's state machine plays against, beyond the memory store:
one in another process as ``LaterStore`` is, one whose saves arrive after the
route stopped waiting, one that loses the answer to a save it made, and the
SQLite store. Each keeps its records in a ``MemoryStore`` the machine reads
behind the route's back (:func:`records_of`).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from jetforce_sesh import StoreUnsure, memory_stores
from jetforce_sesh.session.visit import STORE_TIMEOUT
from jetforce_sesh.stores import MemoryStore
from jetforce_sesh.stores.contract import StoreFactory, StoreSpec
from jetforce_sesh.stores.sqlite.store import SQLiteStore, SQLiteStores
from jetforce_sesh.testing import LaterStore, later_stores


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
    """The memory store where ``store`` keeps its records."""
    if isinstance(store, MemoryStore):
        return store
    if isinstance(store, LaterStore):
        return store.inner
    if isinstance(store, SQLiteStore):
        return store.memory
    raise TypeError(f"no records to read in {store!r}")
