"""The checkpoint thread: copies a slab file's WAL into the database file, off
the reactor, so that the WAL empties and starts afresh instead of growing."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

from jetforce_sesh.stores.sqlite.file import WAL_LIMIT, begin_log

#: Seconds between two checkpoints, in the checkpoint thread.
CHECKPOINT_EVERY = 5.0
#: Passes one checkpoint makes at most, back to back, until one finds no save
#: made while it copied (see :class:`Checkpoints`).
CATCH_UP_PASSES = 50
#: Seconds between two of those passes: back to back, they held SQLite's locks
#: so often that a save now and then waited for one (4 ms, measured).
PASS_PAUSE = 0.002


#: Tries this thread makes at most for the file's lock to start the WAL afresh,
#: :data:`PASS_PAUSE` apart, while a save of the reactor holds it.
RESTART_TRIES = 50


class Checkpoints(threading.Thread):
    """Copies the WAL into the database file now and then, off the reactor.

    SQLite starts the WAL from its beginning again only when a save finds all
    of it copied. A copy made while the reactor saves leaves the saves made
    meanwhile, so under steady saves a single pass never gets there and the
    WAL grows by a page per save, without end (measured: 49 MB after 12,000
    saves). So a copy repeats its pass, each copying only what came since,
    until one ends with all of the WAL copied and no save made while it ran.

    The first commit into a WAL started afresh writes the WAL's header and
    syncs it, whatever ``synchronous`` says (SQLite's guard against writes
    reordered across a power cut). Left to the reactor, that is an
    ``fdatasync`` on the reactor thread after every checkpoint that copied all
    of the WAL. So this thread starts the WAL afresh itself (:meth:`restart`),
    and makes sure the reactor never can: through each pass a read
    transaction of its own (:meth:`pin`) holds the WAL's readers' lock, and a
    writer that may not take that lock appends to the WAL instead of starting
    it afresh; then, with all of it copied, this thread takes the file's write
    lock before it lets go of that read, and commits a change of nothing the
    store reads (``user_version``). That commit syncs the header here; a save
    of the reactor that comes meanwhile waits for it (for the first page of the
    WAL to reach the disk), and the reactor runs no ``fsync`` with
    ``--sync normal``. With no save since the last restart there is nothing to
    copy, and the thread leaves the file alone: an idle capsule's disk is not
    written to.
    """

    def __init__(self, path: Path, saves: Callable[[], int]) -> None:
        super().__init__(name=f"checkpoints of {path.name}", daemon=True)
        self.path = path
        #: The writer's count of transactions committed so far.
        self.saves = saves
        self.done = threading.Event()
        self._db: sqlite3.Connection | None = None
        self._pin: sqlite3.Connection | None = None
        #: The writer's count when this thread last started the WAL afresh.
        self._restarted: int | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            # Never waits for the lock: the reactor's saves come first.
            self._db = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=0
            )
            self._db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
            # Its checkpoints sync the WAL and the file all the same; its own
            # commit (the restart) then syncs only the WAL's header.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._pin = sqlite3.connect(
                f"file:{self.path}?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
                timeout=0,
            )
        return self._db

    def pin(self) -> None:
        """Begin a read of the WAL as it is: until :meth:`unpin`, nobody can
        start the WAL afresh (a writer needs every reader off the WAL for
        that), and a copy copies no further than this read sees."""
        pin = self._pin
        assert pin is not None
        self.unpin()
        pin.execute("BEGIN")
        pin.execute("SELECT count(*) FROM meta").fetchone()

    def unpin(self) -> None:
        pin = self._pin
        if pin is not None and pin.in_transaction:
            pin.execute("COMMIT")

    def copy(self) -> bool:
        """Copy the WAL into the database file; whether all of it is now."""
        db = self._connect()
        try:
            for number in range(CATCH_UP_PASSES):
                if number and self.done.wait(PASS_PAUSE):
                    return False  # stopping: the close checkpoints
                self.pin()
                begun = self.saves()
                busy, log, copied = db.execute(
                    "PRAGMA wal_checkpoint(PASSIVE)"
                ).fetchone()
                overtaken = self.saves() != begun
                if not busy and log == copied and not overtaken:
                    self.restart(begun)
                    return True
            return False
        except sqlite3.Error:
            return False
        finally:
            with contextlib.suppress(sqlite3.Error):
                self.unpin()

    def restart(self, begun: int) -> None:
        """Start the WAL afresh, all of it copied and pinned: take the write
        lock (waiting, not the reactor, while one of its saves holds it), let
        go of the pin, and commit a change nothing reads. A save of the
        reactor that came first appended to the WAL, which then is not all
        copied: nobody starts it afresh until the next checkpoint."""
        db = self._db
        assert db is not None
        for number in range(RESTART_TRIES):
            if number and self.done.wait(PASS_PAUSE):
                return
            try:
                db.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                continue  # a save holds the lock; the pin keeps the WAL going on
        else:
            return
        try:
            self.unpin()
            if self.saves() == begun:
                begin_log(db)
                db.execute("COMMIT")
                self._restarted = begun
        finally:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")

    def due(self) -> bool:
        """Whether anything was saved since this thread last started the WAL
        afresh: if not, the WAL holds only that commit, and copying it would
        leave the WAL for the reactor's next commit to start afresh."""
        return self.saves() != self._restarted

    def run(self) -> None:
        try:
            while not self.done.wait(CHECKPOINT_EVERY):
                if self.due():
                    self.copy()
        finally:
            self.close()

    def stop(self) -> None:
        self.done.set()
        if self.is_alive():
            self.join()
        self.close()

    def close(self) -> None:
        for db in (self._pin, self._db):
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
        self._pin = self._db = None
