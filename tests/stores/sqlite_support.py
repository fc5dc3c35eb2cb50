"""What the SQLite store's tests (``tests/stores/test_sqlite_*.py``) share.

Those tests pin the persistent store's own promises: records outlive the
process, and a bad file never stops the capsule nor is ever deleted. What every
store does is pinned by ``tests/stores/test_contract.py``. Here each test runs
"lives" of a server in this process: a life takes the state directory's lock
and opens one :class:`SQLiteStore` on a ``Clock`` of its own; a restart is a
new life on the same directory, on a Clock set later. A crash is a copy of the
slab's files (database and WAL) made while a store is open: what a ``kill -9``
would have left on disk.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure

from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores import ABSENT
from jetforce_sesh.stores.contract import StoreSpec
from jetforce_sesh.stores.sqlite.store import SQLiteStore, SQLiteStores
from jetforce_sesh.testing import START, fingerprint_of

T = TypeVar("T")

#: A record as the file keeps it: its bytes, version and last use.
Row = tuple[bytes, int, float]

NAME = "test"
FILE = f"{NAME}.sqlite3"
#: How long the server is down between two lives, unless a test says otherwise.
DOWN = 1000.0


def key(name: object) -> bytes:
    """A player's 32-byte key."""
    return fingerprint_of(f"player {name}")


A, B, C, D, E = (key(name) for name in "abcde")
NAMES = {A: "a", B: "b", C: "c", D: "d", E: "e"}


def who(keys: list[bytes]) -> list[str]:
    """Players by name, for assertions that read well when they fail."""
    return [NAMES.get(k, k.hex()[:8]) for k in keys]


def done(deferred: Deferred[T]) -> T:
    """The result of a Deferred that has fired already; raises its failure."""
    results: list[T | Failure] = []
    deferred.addBoth(results.append)
    assert results, f"{deferred!r} has not fired"
    result = results[0]
    if isinstance(result, Failure):
        result.raiseException()
    return result


class Life:
    """One run of a server on a state directory: its lock and one open store.

    ``logged`` is every log line the store wrote while it opened;
    ``created``, ``expired`` and ``evicted`` the keys its hooks were told of.
    """

    def __init__(
        self,
        state: Path,
        at: float,
        *,
        capacity: int,
        record_size: int,
        idle_timeout: float,
        when_expired: Callable[[SQLiteStore, bytes], object] | None,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(at)
        self.stores = SQLiteStores(state)
        options = SlabOptions(
            max_records=capacity, record_size=record_size, idle_timeout=idle_timeout
        )
        spec = StoreSpec(NAME, options, self.clock, record_size, "raw")
        self.store: SQLiteStore = self.stores(spec)
        self.created: list[bytes] = []
        self.expired: list[bytes] = []
        self.evicted: list[bytes] = []
        self.store.on_created(self.created.append)
        self.store.on_expired(self.expired.append)
        self.store.on_evicted(self.evicted.append)
        if when_expired is not None:
            hook = when_expired

            def told(gone: bytes) -> None:
                hook(self.store, gone)

            self.store.on_expired(told)
        with capturedLogs() as events:
            done(self.store.open())
        self.logged = [formatEvent(event) for event in events]
        self.running = True

    def records(self) -> dict[bytes, Row]:
        """Every record the store holds now."""
        found: dict[bytes, Row] = {}
        cursor: str | None = None
        while True:
            page = self.store.records_now(cursor)
            for k, data, v, used in page.records:
                found[k] = (data, v, used)
            if page.cursor is None:
                return found
            cursor = page.cursor

    def stop(self) -> None:
        """A clean stop: close the store, then let go of the directory."""
        if self.running:
            self.running = False
            done(self.store.close())
            self.stores.directory.release()


class Capsule:
    """A state directory and the lives of a server on it, one after another."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.lives: list[Life] = []

    @property
    def file(self) -> Path:
        return self.state / FILE

    def start(
        self,
        at: float | None = None,
        *,
        capacity: int = 4,
        record_size: int = 16,
        idle_timeout: float = 0.0,
        when_expired: Callable[[SQLiteStore, bytes], object] | None = None,
    ) -> Life:
        """A new life, ``DOWN`` seconds after the last one's clock if no ``at``."""
        if at is None:
            at = self.lives[-1].clock.seconds() + DOWN if self.lives else START
        for life in self.lives:
            assert not life.running, "stop the running life first"
        life = Life(
            self.state,
            at,
            capacity=capacity,
            record_size=record_size,
            idle_timeout=idle_timeout,
            when_expired=when_expired,
        )
        self.lives.append(life)
        return life

    def stop_all(self) -> None:
        for life in self.lives:
            life.stop()


def rows_of(path: Path) -> dict[bytes, Row]:
    """Every row of a slab file, read by SQLite directly."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {
            k: (data, v, used)
            for k, data, v, used in db.execute(
                "SELECT key, data, version, last_used FROM records"
            )
        }
    finally:
        db.close()


def aside(state: Path, why: str) -> Path:
    """The one copy of the slab file set aside for ``why``."""
    pattern = re.compile(rf"{re.escape(FILE)}\.{why}-\d{{8}}T\d{{6}}")
    found = [path for path in state.iterdir() if pattern.fullmatch(path.name)]
    assert 1 == len(found), sorted(path.name for path in state.iterdir())
    return found[0]


def asides(state: Path) -> list[str]:
    """Names of every file set aside, whatever for."""
    return sorted(
        path.name
        for path in state.iterdir()
        if path.name.startswith(f"{FILE}.") and not path.name.endswith(("-wal", "-shm"))
    )


def save(life: Life, player: bytes, data: bytes, expected: int = ABSENT) -> int:
    return done(life.store.save(player, data, expected))


def fill(life: Life, players: list[bytes], size: int = 4) -> dict[bytes, Row]:
    """Save each player a second apart; the records as the file holds them."""
    for n, player in enumerate(players):
        save(life, player, bytes([n]) * size)
        life.clock.advance(1)
    return rows_of(life.store.path)


def crash_copy(capsule: Capsule, into: Path) -> Path:
    """The slab's files as they are on disk now, in a state directory of their
    own: what a ``kill -9`` at this moment leaves behind."""
    into.mkdir(mode=0o700)
    for suffix in ("", "-wal"):
        source = Path(str(capsule.file) + suffix)
        if source.exists():
            shutil.copyfile(source, into / (FILE + suffix))
    return into
