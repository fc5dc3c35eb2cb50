"""The checkpoint thread: copies a slab file's WAL into the database file, off
the reactor, so that the WAL empties and starts afresh instead of growing."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from jetforce_sesh.stores.sqlite.file import WAL_LIMIT

#: Seconds between two checkpoints, in the checkpoint thread.
CHECKPOINT_EVERY = 5.0
#: Passes one checkpoint makes at most, back to back, until one finds no save
#: made while it copied (see :class:`Checkpoints`).
CATCH_UP_PASSES = 50
#: Seconds between two of those passes: back to back, they held SQLite's locks
#: so often that a save now and then waited for one (4 ms, measured).
PASS_PAUSE = 0.002


class Checkpoints(threading.Thread):
    """Copies the WAL into the database file now and then, off the reactor.

    SQLite starts the WAL from its beginning again only when a save finds all
    of it copied. A copy made while the reactor saves leaves the saves made
    meanwhile, so under steady saves a single pass never gets there and the
    WAL grows by a page per save, without end (measured: 49 MB after 12,000
    saves). So a copy repeats its pass, each copying only what came since,
    until one ends with all of the WAL copied and no save made while it ran.
    Nothing of this waits on the reactor or makes it wait: the reactor never
    runs a checkpoint, and never an ``fsync`` with ``--sync normal``.
    """

    def __init__(self, path: Path, saves: Callable[[], int]) -> None:
        super().__init__(name=f"checkpoints of {path.name}", daemon=True)
        self.path = path
        #: The writer's count of transactions committed so far.
        self.saves = saves
        self.done = threading.Event()
        self._db: sqlite3.Connection | None = None

    def copy(self) -> bool:
        """Copy the WAL into the database file; whether all of it is now."""
        if self._db is None:
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False
            )
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        for number in range(CATCH_UP_PASSES):
            if number and self.done.wait(PASS_PAUSE):
                return False  # stopping: the close checkpoints
            begun = self.saves()
            try:
                busy, log, copied = self._db.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
            except sqlite3.Error:
                return False
            overtaken = self.saves() != begun
            if not busy and log == copied and not overtaken:
                return True
        return False

    def run(self) -> None:
        try:
            while not self.done.wait(CHECKPOINT_EVERY):
                self.copy()
        finally:
            self.close()

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()
        self.close()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
