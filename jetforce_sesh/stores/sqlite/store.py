"""The write-through store: a slab's records survive restarts and crashes, in
SQLite.

``SQLiteStore`` keeps every record in a :class:`MemoryStore`, the fast read
path and the memory bound, and writes each change through to one SQLite file per
slab in the same step, before the player is answered: a change a player was told
about is in the file, whatever happens to the process next. SQLite runs in WAL
mode; what a ``kill -9`` leaves in the WAL, SQLite recovers on the next open.

- **Saves** are one transaction each: the record, and the deletion of any record
  its save evicted or expired, so the file never holds a player the memory store
  had to forget to make room. A save the file refuses (a full disk) is undone
  in memory too, and no hook hears of it.
- **Last-use times** change on every read, too often to write each one: they are
  written in batches every :data:`FLUSH_EVERY` seconds, a slice at a time, and all
  at a clean stop. After a crash, a record's idle time may restart up to that much
  too early; never too late.
- **Checkpoints** (copying the WAL into the database file) run in a thread of their
  own, on a connection of their own, so none ever holds up a request; each
  repeats its pass until one finds nothing saved meanwhile, so the WAL empties
  and starts afresh instead of growing a page per save (``checkpoints``).
- Every row carries a CRC-32 of its key, bytes and version: a row damaged on disk
  is never loaded (``file``). A file that cannot be read whole is moved aside
  (never deleted), the rows it still holds that check out are loaded, and the
  capsule serves (``salvage``).

The guarantees, in one table, are in ``docs/explanation/persistence.md``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from jetforce_sesh.errors import (
    BadKey,
    ConfigError,
    Conflict,
    RecordTooLarge,
    StoreFull,
    StoreUnavailable,
)
from jetforce_sesh.stores.contract import (
    ANY_VERSION,
    MAX_VERSION,
    Hook,
    IImmediateSessionStore,
    RecordPage,
    Stored,
    StoreSpec,
    StoreStats,
)
from jetforce_sesh.stores.memory import MemoryStore
from jetforce_sesh.stores.sqlite.checkpoints import Checkpoints
from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.file import (
    FILE_FORMAT,
    SELECT_ROWS,
    UPSERT,
    Row,
    Sync,
    begin_log,
    check_not_links,
    checksum,
    connect,
    locked,
    meta,
    transaction,
    whole,
)
from jetforce_sesh.stores.sqlite.salvage import (
    attach_aside,
    copy_aside,
    copy_rows_aside,
    detach_aside,
    move_aside,
    recorded_floor,
    salvage,
)
from jetforce_sesh.stores.support import DeferredMethods, HookMethods, Hooks

#: Seconds between two writes of the last-use times.
FLUSH_EVERY = 10.0
#: Rows written in one go, before the reactor serves other requests.
FLUSH_SLICE = 500
#: Rows read at a time at start-up.
READ_BATCH = 10_000

_log = Logger()

_FLOOR = "INSERT OR REPLACE INTO meta (name, value) VALUES ('version', ?)"


def records_text(count: int) -> str:
    """ "1 record", "2 records": for messages."""
    return f"{count} record" if count == 1 else f"{count} records"


class SQLiteStores:
    """A store factory: one :class:`SQLiteStore` per slab, in ``state_dir``."""

    def __init__(
        self, state_dir: str | os.PathLike[str], sync: Sync = "normal"
    ) -> None:
        if sync not in ("normal", "full"):
            raise ConfigError(
                f"sync must be 'normal' or 'full' (got {sync!r}): 'full' also"
                f" survives power loss, at an fsync per save"
            )
        self.directory = StateDirectory(state_dir)
        self.sync: Sync = sync
        # The store of each file, to refuse a second one while the first is in
        # use: two stores of one file would each overwrite the other's records.
        self._stores: dict[Path, SQLiteStore] = {}

    def __call__(self, spec: StoreSpec) -> SQLiteStore:
        path = self.directory.file_for(spec.name)
        other = self._stores.get(path)
        if other is not None and not other.closed:
            raise ConfigError(
                f"two slabs named {spec.name!r} would share the file {path}: give"
                f" them different names"
            )
        store = self._stores[path] = SQLiteStore(spec, path, self.sync)
        return store


@implementer(IImmediateSessionStore)
class SQLiteStore(DeferredMethods, HookMethods):
    """A :class:`MemoryStore` whose every change is also written to SQLite."""

    def __init__(self, spec: StoreSpec, path: Path, sync: Sync = "normal") -> None:
        options = spec.options
        self.name = spec.name
        self.record_size = spec.record_size
        self.capacity = options.max_records
        self.on_full = options.on_full
        self.idle_timeout = options.idle_timeout
        self.clock: IReactorTime = spec.clock
        self.path = path
        self.sync: Sync = sync
        self.codec_format = spec.codec_format
        self.held = spec.held
        self._db: sqlite3.Connection | None = None
        #: True once closed, or once opening failed: the file is free again.
        self.closed = False
        # The slab's hooks: told of a change only once the file has it too.
        self.hooks = Hooks()
        # What the memory store did in the operation under way, not yet told.
        self._told: list[tuple[list[Hook], bytes]] = []
        self._evicted: list[bytes] = []
        # Keys the memory store dropped whose rows are still to be deleted.
        self._gone: list[bytes] = []
        self._touched: set[bytes] = set()
        self._flusher: LoopingCall | None = None
        self._later_gone: IDelayedCall | None = None
        self._later_used: IDelayedCall | None = None
        self.checkpoints: Checkpoints | None = None
        #: Transactions committed, for the checkpoint thread to tell whether a
        #: save came while it copied.
        self.commits = 0
        self.memory = self._new_memory()

    def _new_memory(self) -> MemoryStore:
        memory = MemoryStore(
            self.name,
            record_size=self.record_size,
            capacity=self.capacity,
            clock=self.clock,
            idle_timeout=self.idle_timeout,
            on_full=self.on_full,
            held=self.held,
        )
        memory.on_created(self._created)
        memory.on_evicted(self._was_evicted)
        memory.on_expired(self._expired)
        return memory

    def _created(self, key: bytes) -> None:
        self._told.append((self.hooks.created, key))

    def _was_evicted(self, key: bytes) -> None:
        self._evicted.append(key)
        self._forget(key)
        self._told.append((self.hooks.evicted, key))

    def _expired(self, key: bytes) -> None:
        self._forget(key)
        self._told.append((self.hooks.expired, key))

    def _tell(self) -> None:
        """Run the slab's hooks for what the memory store did, now that the file
        has it too."""
        if not self._told:
            return
        told, self._told[:] = list(self._told), []
        self._evicted.clear()
        for hooks, key in told:
            self.hooks.queue(hooks, key)
        self.hooks.run()

    # -- sizes and life cycle ----------------------------------------------------

    @property
    def reserved_bytes(self) -> int:
        return self.memory.reserved_bytes

    def __len__(self) -> int:
        return len(self.memory)

    def open(self) -> Deferred[None]:
        """Read the file into memory (moving a bad one aside), then serve."""
        try:
            self._load()
        except sqlite3.OperationalError as error:
            self.closed = True
            return fail(
                StoreUnavailable(
                    f"{self.path} cannot be used ({error}): is another program"
                    f" writing to it? It is left as it is"
                )
            )
        except (sqlite3.Error, OSError, ConfigError) as error:
            self.closed = True
            return fail(error)
        db = self._db
        assert db is not None
        # A WAL started afresh syncs its header with its first commit: let that
        # be now, at start-up, rather than the first save's (from then on the
        # checkpoint thread starts it, see Checkpoints). A disk that refuses it
        # refuses the first save too, which says so.
        with contextlib.suppress(sqlite3.Error), transaction(db):
            begin_log(db)
        self._flusher = LoopingCall(self._flush_used)
        self._flusher.clock = self.clock
        self._flusher.start(FLUSH_EVERY, now=False)
        self.checkpoints = Checkpoints(self.path, lambda: self.commits)
        self.checkpoints.start()
        return self.memory.open()

    def close(self) -> Deferred[None]:
        """Write what is left (last-use times, deletions), checkpoint, close.

        Closing again does nothing more, and fires at once."""
        self.closed = True
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        for later in (self._later_gone, self._later_used):
            if later is not None and later.active():
                later.cancel()
        self._flusher = None
        self._later_gone = self._later_used = None
        if self.checkpoints is not None:
            self.checkpoints.stop()
            self.checkpoints = None
        closed = self.memory.close()
        db, self._db = self._db, None
        if db is not None:
            # Every record is in the file already; what is left is bookkeeping,
            # and a file that refuses it must not stop the server stopping.
            try:
                self._write_pending(db)
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                self._note(
                    f"{self.path}: could not write the last-use times and deletions"
                    f" at close ({error}): records idle may be kept longer, deleted"
                    f" ones may come back at the next start"
                )
            finally:
                db.close()
        self._tell()
        return closed

    def flush(self) -> int:
        """Write now the deletions and last-use times still pending, which are
        otherwise written a slice at a time; how many there were. Every saved
        record is in the file already: this is the bookkeeping (``/admin``)."""
        db = self._db
        if db is None:
            return 0
        pending = self._write_pending(db)
        self._tell()
        return pending

    def _write_pending(self, db: sqlite3.Connection) -> int:
        pending = len(self._gone) + len(self._touched)
        with transaction(db):
            done = self._delete_gone(db, len(self._gone))
        self.commits += 1
        del self._gone[:done]
        self._write_last_used(db, list(self._touched))
        self._touched.clear()
        return pending

    # -- loading -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = connect(self.path, self.sync)
        # Checkpoints are the checkpoint thread's: a commit never waits for one.
        db.execute("PRAGMA wal_autocheckpoint=0")
        return db

    def _stamp_meta(self, db: sqlite3.Connection) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
            meta(self.name, self.codec_format).items(),
        )

    def _load(self) -> None:
        db: sqlite3.Connection | None = None
        # While the file is read, a second connection holds it: if the file
        # turns out damaged, closing the first is then not closing the last,
        # which would copy the log into the damaged file and delete the log,
        # changing what is set aside.
        guard = self._guard()
        try:
            db = self._connect()
            found = dict(db.execute("SELECT name, value FROM meta").fetchall())
            floor = self._floor(found.pop("version", "0"))
            if found and found != meta(self.name, self.codec_format):
                db.close()
                moved = move_aside(self.path, "foreign")
                self._note(
                    f"{self.path} was written by {found.get('format', '?')} for slab"
                    f" {found.get('slab', '?')!r} in {found.get('codec', '?')}, not"
                    f" {FILE_FORMAT} for {self.name!r} in {self.codec_format}: moved"
                    f" to {moved.name}; this slab starts empty"
                )
                db = self._connect()
                found, floor = {}, 0
            if not found:
                self._stamp_meta(db)
            self._db = db
            self._restore(db, floor)
        except sqlite3.OperationalError:
            # Locked, or an I/O error: nothing says the file is damaged, so it
            # stays where it is and the slab does not open.
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._db = None
            raise
        except sqlite3.DatabaseError as error:
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    db.close()
            self._db = None
            self.memory = self._new_memory()
            self._told.clear()
            moved = move_aside(self.path, "bad")
            if guard is not None:
                guard.close()  # read-only: it writes nothing back
                guard = None
            rows, damaged = salvage(moved)
            floor = self._salvaged_floor(moved)
            self._note(
                f"{self.path} cannot be read ({error}): moved to {moved.name};"
                f" {len(rows)} records that check out are loaded from it"
                f"{f', {damaged} damaged ones are not' if damaged else ''};"
                f" versions go on from {floor}"
            )
            db = self._connect()
            self._stamp_meta(db)
            with transaction(db):
                db.executemany(
                    UPSERT,
                    (
                        (key, data, version, used, checksum(key, data, version))
                        for key, data, version, used in rows
                    ),
                )
                db.execute(_FLOOR, (str(floor),))
            self._db = db
            self._restore(db, floor)
        finally:
            if guard is not None:
                guard.close()

    def _guard(self) -> sqlite3.Connection | None:
        """A read-only connection that holds the file (and its log) open."""
        if not self.path.exists():
            return None
        check_not_links(self.path)
        try:
            guard = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        except sqlite3.Error:
            return None
        try:
            guard.execute("BEGIN")
            guard.execute("SELECT count(*) FROM sqlite_master").fetchone()
            guard.execute("COMMIT")
        except sqlite3.Error:
            pass  # it holds the file all the same, or nothing can
        return guard

    def _salvaged_floor(self, moved: Path) -> int:
        """Where versions go on after a salvage: above what the damaged file
        says it gave, and above the clock's count (as :meth:`_floor`), since
        rows lost to the damage may have held higher versions than any row
        or ``meta`` that survived, and none may be given again."""
        recorded = recorded_floor(moved)
        clock = min(MAX_VERSION, int(self.clock.seconds() * 10_000))
        if recorded is not None and recorded.isdigit():
            return max(clock, min(int(recorded), MAX_VERSION))
        return clock

    def _floor(self, text: str) -> int:
        """The highest version the file says it gave. One it cannot say (its
        ``meta`` row damaged, or beyond :data:`MAX_VERSION`) makes versions go
        on from the clock, in units of 100 µs, as the Redis store does after a
        loss: above any a file's counter could have reached."""
        if text.isascii() and text.isdigit() and int(text) <= MAX_VERSION:
            return int(text)
        floor = min(MAX_VERSION, int(self.clock.seconds() * 10_000))
        self._note(
            f"{self.path}: the highest version given is recorded as {text[:40]!r},"
            f" which is not a version: versions go on from {floor}, from the clock"
        )
        return floor

    def _restore(self, db: sqlite3.Connection, floor: int) -> None:
        """Read the file into the memory store, oldest use first, so the recency
        order comes back too.

        Rows that fail their checksum, that outlived ``idle_timeout`` while the
        server was down, that no longer fit ``record_size``, or that
        ``max_records`` has no room for (the least recently used) are left out,
        and said so; the file as it was is kept aside first when records had to
        be left out for a smaller setting or for damage. Versions go on above
        the highest the file ever gave.
        """
        total = db.execute("SELECT count(*) FROM records").fetchone()[0]
        now = self.clock.seconds()
        idle = self.idle_timeout
        expired: list[bytes] = []
        too_large: list[bytes] = []
        damaged: list[bytes] = []
        beyond: list[bytes] = []
        room = self.capacity
        record_size = self.record_size
        counted = 0

        def live() -> Iterator[Row]:
            nonlocal counted, floor
            cursor = db.execute(SELECT_ROWS + " ORDER BY last_used")
            while batch := cursor.fetchmany(READ_BATCH):
                for key, data, version, used, check in batch:
                    if not whole(key, data, version, used, check):
                        damaged.append(key)
                        continue
                    if version > MAX_VERSION:
                        beyond.append(key)  # no save could follow it
                        continue
                    floor = max(floor, version)
                    if idle > 0 and now - used >= idle:
                        expired.append(key)
                    elif len(data) > record_size:
                        too_large.append(key)
                    else:
                        counted += 1
                        yield key, data, version, used

        rows = list(live()) if total > room else None
        dropped = max(0, len(rows) - room) if rows is not None else 0
        if rows is not None:
            self.memory.restore_many(rows[dropped:])
        else:
            self.memory.restore_many(live())
        self.memory.version_floor(floor)
        if too_large or dropped or damaged or beyond:
            moved = copy_aside(self.path, "before", db)
            if damaged:
                self._note(
                    f"{self.path}: {len(damaged)} records fail their checksum: not"
                    f" loaded; the file as it was is kept as {moved.name}"
                )
            if beyond:
                self._note(
                    f"{self.path}: {records_text(len(beyond))} with versions above"
                    f" {MAX_VERSION}, after which no save could follow: not loaded;"
                    f" the file as it was is kept as {moved.name}"
                )
            if too_large:
                self._note(
                    f"{self.path}: {len(too_large)} records are larger than"
                    f" record_size {record_size}: not loaded; the file as it was is"
                    f" kept as {moved.name}"
                )
            if dropped:
                self._note(
                    f"{self.path}: {counted} records but max_records {room}: the"
                    f" {dropped} least recently used are not loaded; the file as it"
                    f" was is kept as {moved.name}"
                )
        others = too_large + damaged + beyond
        others += [row[0] for row in (rows or [])[:dropped]]
        if expired:
            expired = self._drop_idle(db, expired, others, floor, now)
            others = [] if expired else others
        if others:
            with transaction(db):
                self._drop_rows(db, others, floor)
        # Players away too long while the server was down: gone, and told so.
        for key in expired:
            self.hooks.queue(self.hooks.expired, key)
        self.hooks.run()

    def _drop_rows(self, db: sqlite3.Connection, keys: list[bytes], floor: int) -> None:
        db.executemany("DELETE FROM records WHERE key = ?", ((k,) for k in keys))
        db.execute(_FLOOR, (str(floor),))

    def _drop_idle(
        self,
        db: sqlite3.Connection,
        expired: list[bytes],
        others: list[bytes],
        floor: int,
        now: float,
    ) -> list[bytes]:
        """Delete the rows idle at start-up, and ``others``, keeping the idle
        ones in a file of their own first, in the same transaction: a clock
        wrong at start-up (a dead RTC battery, a VM restored with a date far
        ahead) makes every row idle, and the rows must outlive it. The idle
        rows deleted (none, if they could not be kept: they stay in the file,
        not loaded)."""
        clock = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        idle = (
            f"{self.path}: {records_text(len(expired))} idle for"
            f" {self.idle_timeout:g} s or more by this clock ({clock})"
        )
        target = attach_aside(db, self.path, "idle")
        kept = False
        try:
            with transaction(db):
                copy_rows_aside(db, expired, floor)
                self._drop_rows(db, expired + others, floor)
            kept = True
        except sqlite3.Error as error:
            if locked(error):
                raise  # nothing says the file is damaged: it stays, unopened
            self._note(f"{idle} could not be kept aside ({error}): not loaded")
            return []
        finally:
            detach_aside(db, target, kept=kept)
        self._note(f"{idle}: not loaded; they are kept in {target.name}")
        return expired

    def _note(self, message: str) -> None:
        _log.warn("{message}", message=message)

    # -- writing -------------------------------------------------------------------

    def _write(self, key: bytes) -> None:
        """Write ``key``'s record as the memory store has it, and every deletion
        the memory store owes the file, in one transaction."""
        db = self._db
        if db is None:
            return
        found = self.memory.peek_now(key)
        with transaction(db):
            # Deletions owed first: the key itself may be among them (a hook
            # that saves the record it was told expired), and its latest
            # state is what the file must keep.
            done = self._delete_gone(db, len(self._gone))
            if found is None:
                db.execute("DELETE FROM records WHERE key = ?", (key,))
                # The record may have held the highest version given.
                db.execute(_FLOOR, (str(self.memory.last_version),))
            else:
                self._upsert(db, key, found.data, found.version)
        self.commits += 1
        del self._gone[:done]

    def _write_saved(self, key: bytes, data: bytes, version: int) -> None:
        """:meth:`_write` for a record just saved, whose bytes and version are
        known: the path of every save, so nothing is looked up twice."""
        db = self._db
        if db is None:
            return
        with transaction(db):
            done = self._delete_gone(db, len(self._gone)) if self._gone else 0
            self._upsert(db, key, data, version)  # after: see _write
        self.commits += 1
        del self._gone[:done]

    def _upsert(
        self, db: sqlite3.Connection, key: bytes, data: bytes, version: int
    ) -> None:
        used = self.memory.last_used(key)
        db.execute(UPSERT, (key, data, version, used, checksum(key, data, version)))

    def _delete_gone(self, db: sqlite3.Connection, most: int) -> int:
        """Delete up to ``most`` rows the memory store dropped, within a
        transaction; how many. The caller takes them off the list once the
        transaction commits: if it does not, they are deleted next time. The
        highest version given goes to the file too, so a version a dropped
        record held is never given again after a restart."""
        gone = self._gone[:most] if most > 0 else []
        if not gone:
            return 0
        db.executemany("DELETE FROM records WHERE key = ?", ((k,) for k in gone))
        db.execute(_FLOOR, (str(self.memory.last_version),))
        return len(gone)

    def _forget(self, key: bytes) -> None:
        """The memory store dropped ``key``'s record: delete its row too. A save
        does that in its own transaction; otherwise (the sweep) soon, a slice
        at a time."""
        self._gone.append(key)
        self._touched.discard(key)
        if self._later_gone is None or not self._later_gone.active():
            self._later_gone = self.clock.callLater(0, self._flush_gone)

    def _flush_gone(self) -> None:
        self._later_gone = None
        db = self._db
        if db is not None and self._gone:
            try:
                with transaction(db):
                    done = self._delete_gone(db, FLUSH_SLICE)
            except sqlite3.Error as error:
                self._note(
                    f"{self.path}: could not delete {records_text(len(self._gone))}"
                    f" the slab let go ({error}): trying again in {FLUSH_EVERY:g} s"
                )
                self._later_gone = self.clock.callLater(FLUSH_EVERY, self._flush_gone)
                return
            self.commits += 1
            del self._gone[:done]
        self._tell()
        if self._gone:
            self._later_gone = self.clock.callLater(0, self._flush_gone)

    def _flush_used(self) -> None:
        """Write the last-use times of records read since the last flush, a
        slice per reactor turn."""
        self._later_used = None
        db = self._db
        if db is None or not self._touched:
            return
        keys = [
            self._touched.pop() for _ in range(min(FLUSH_SLICE, len(self._touched)))
        ]
        try:
            self._write_last_used(db, keys)
        except sqlite3.Error as error:
            self._touched.update(keys)  # the next flush tries them again
            self._note(
                f"{self.path}: could not write the last-use times of"
                f" {records_text(len(self._touched))} ({error}): trying again in"
                f" {FLUSH_EVERY:g} s"
            )
            return
        if self._touched:
            self._later_used = self.clock.callLater(0, self._flush_used)

    def _write_last_used(self, db: sqlite3.Connection, keys: list[bytes]) -> None:
        updates = []
        for key in keys:
            used = self.memory.last_used(key)
            if used is not None:
                updates.append((used, key))
        if updates:
            with transaction(db):
                db.executemany(
                    "UPDATE records SET last_used = ? WHERE key = ?", updates
                )
            self.commits += 1

    def _undo(self, key: bytes, before: Stored | None, used: float | None) -> None:
        """Put the memory store back as the file still has it, after a write to
        the file failed: the record saved goes, what was evicted to make room for
        it comes back as the least recently used, and no hook hears of either."""
        created = sum(1 for hooks, _ in self._told if hooks is self.hooks.created)
        evicted = list(self._evicted)
        self._told[:] = [
            (hooks, k) for hooks, k in self._told if hooks is self.hooks.expired
        ]
        self._evicted.clear()
        self._gone[:] = [k for k in self._gone if k not in evicted]
        self.memory.delete_now(key)
        if before is not None and used is not None:
            self.memory.restore_now(key, before.data, before.version, used)
        db = self._db
        for victim in evicted:
            row = None
            if db is not None:
                with contextlib.suppress(sqlite3.Error):
                    row = db.execute(
                        "SELECT data, version, last_used FROM records WHERE key = ?",
                        (victim,),
                    ).fetchone()
            if row is not None:
                with contextlib.suppress(ValueError):
                    data, version, last_used = row
                    self.memory.restore_now(
                        victim, data, version, last_used, oldest=True
                    )
        self.memory.take_back(creations=created, evictions=len(evicted))

    # -- IImmediateSessionStore ----------------------------------------------------

    def load_now(self, key: bytes) -> Stored | None:
        found = self.memory.load_now(key)
        if found is not None:
            self._touched.add(key)
        if self._told:
            self._tell()  # the record was idle: gone, and told now
        return found

    def peek_now(self, key: bytes) -> Stored | None:
        return self.memory.peek_now(key)

    def save_now(self, key: bytes, data: bytes, expected: int) -> int:
        before = self.memory.peek_now(key)
        used = self.memory.last_used(key)
        try:
            version = self.memory.save_now(key, data, expected)
        except (BadKey, Conflict, RecordTooLarge, StoreFull, TypeError):
            self._tell()  # an idle record may have expired on the way
            raise
        self._touched.discard(key)
        try:
            self._write_saved(key, data, version)
        except Exception as error:
            # Whatever the file said no with (SQLite, or a value it cannot
            # hold), memory goes back to what the file has.
            self._undo(key, before, used)
            self._tell()
            raise StoreUnavailable(
                f"slab {self.name!r} could not write {self.path} ({error}): the"
                f" previous record is kept"
            ) from None
        self._tell()
        return version

    def delete_now(self, key: bytes, expected: int = ANY_VERSION) -> bool:
        before = self.memory.peek_now(key)
        used = self.memory.last_used(key)
        deleted = self.memory.delete_now(key, expected)
        if deleted:
            self._touched.discard(key)
            try:
                self._write(key)
            except Exception as error:
                if before is not None and used is not None:
                    self.memory.restore_now(key, before.data, before.version, used)
                self._tell()
                raise StoreUnavailable(
                    f"slab {self.name!r} could not write {self.path} ({error}): the"
                    f" record is kept"
                ) from None
        self._tell()
        return deleted

    def records_now(self, cursor: str | None = None, limit: int = 256) -> RecordPage:
        return self.memory.records_now(cursor, limit)

    def sweep(self) -> int:
        return self.memory.sweep()

    # -- ISessionStore -----------------------------------------------------------

    def stats(self) -> StoreStats:
        return self.memory.stats()
