"""The persistent store's own promises: records outlive the process, and a bad
file never stops the capsule nor is ever deleted.

What every store does is pinned by ``tests/stores/test_contract.py``. Here each test
runs "lives" of a server in this process: a life takes the state directory's
lock and opens one :class:`SQLiteStore` on a ``Clock`` of its own; a
restart is a new life on the same directory, on a Clock set later. A crash is a
copy of the slab's files (database and WAL) made while a store is open: what a
``kill -9`` would have left on disk.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from random import Random
from typing import TypeVar

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure

from jetforce_sesh import ConfigError, SessionApplication
from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.cli.transfer import export, import_
from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.options import OnFull, SlabOptions
from jetforce_sesh.records.codec import Codec
from jetforce_sesh.stores import ABSENT, ANY_VERSION, Stored
from jetforce_sesh.stores.contract import StoreSpec
from jetforce_sesh.stores.sqlite import checkpoints as checkpoints_module
from jetforce_sesh.stores.sqlite import salvage as salvage_module
from jetforce_sesh.stores.sqlite import store as persist_module
from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.file import FILE_FORMAT
from jetforce_sesh.stores.sqlite.store import FLUSH_EVERY, SQLiteStore, SQLiteStores
from jetforce_sesh.testing import START, SessionHarness, fingerprint_of
from tests.stores.test_memory import (
    MemoryStoreAgainstModel,
    all_records,
)

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


@pytest.fixture
def capsule(tmp_path: Path) -> Iterator[Capsule]:
    made = Capsule(tmp_path / "state")
    yield made
    made.stop_all()  # the checkpoint threads stop with their stores


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


def crash_copy(capsule: Capsule, into: Path) -> Path:
    """The slab's files as they are on disk now, in a state directory of their
    own: what a ``kill -9`` at this moment leaves behind."""
    into.mkdir(mode=0o700)
    for suffix in ("", "-wal"):
        source = Path(str(capsule.file) + suffix)
        if source.exists():
            shutil.copyfile(source, into / (FILE + suffix))
    return into


def save(life: Life, player: bytes, data: bytes, expected: int = ABSENT) -> int:
    return done(life.store.save(player, data, expected))


# -- a clean restart -----------------------------------------------------------


def test_a_clean_restart_keeps_every_record_its_bytes_version_and_last_use(
    capsule: Capsule,
) -> None:
    first = capsule.start()
    save(first, A, b"alpha")
    first.clock.advance(5)
    b = save(first, B, b"")
    first.clock.advance(5)
    a = save(first, A, b"alpha again", ANY_VERSION)
    first.clock.advance(5)
    done(first.store.load(B))  # a last use only the memory store knew of
    before = first.records()
    first.stop()
    second = capsule.start()
    assert {A: (b"alpha again", a, START + 10), B: (b"", b, START + 15)} == before
    assert before == second.records()
    assert (Stored(b"alpha again", a), Stored(b"", b)) == (
        done(second.store.peek(A)),
        done(second.store.peek(B)),
    )
    assert ([], [], []) == (second.logged, second.expired, second.evicted)
    assert [] == asides(capsule.state)


def test_a_clean_restart_keeps_the_recency_order(capsule: Capsule) -> None:
    """The least recently used before the restart is the first evicted after it."""
    first = capsule.start(capacity=3)
    for player in (A, B, C):
        save(first, player, player[:1])
        first.clock.advance(1)
    done(first.store.load(A))  # oldest first: B, C, A
    first.stop()
    second = capsule.start(capacity=3)
    save(second, D, b"d")
    assert [B] == second.evicted
    done(second.store.load(C))  # oldest first: A, D, C
    save(second, E, b"e")
    assert [B, A] == second.evicted
    assert {C, D, E} == set(second.records())


def test_versions_continue_above_the_highest_stored(capsule: Capsule) -> None:
    first = capsule.start()
    given = [save(first, A, b"1"), save(first, B, b"2")]
    given.append(save(first, A, b"3", given[0]))
    first.stop()
    second = capsule.start()
    made = save(second, C, b"4")
    updated = save(second, B, b"5", given[1])
    assert [1, 2, 3, 4, 5] == [*given, made, updated]


# -- a crash -------------------------------------------------------------------


def test_a_crash_keeps_every_save_that_returned(
    capsule: Capsule, tmp_path: Path
) -> None:
    """Each save is in the file when it returns, and so is the deletion of the
    record it evicted: the file never holds a player the store let go."""
    life = capsule.start(capacity=2)
    a = save(life, A, b"a")
    life.clock.advance(1)
    save(life, B, b"b")
    life.clock.advance(1)
    done(life.store.load(A))  # B is now the least recently used
    life.clock.advance(1)
    c = save(life, C, b"c")  # evicts B
    life.clock.advance(1)
    a = save(life, A, b"a2", a)
    assert [B] == life.evicted
    after = Capsule(crash_copy(capsule, tmp_path / "crashed"))
    try:
        again = after.start(capacity=2)
        assert ({A: (b"a2", a, START + 4), C: (b"c", c, START + 3)}, []) == (
            again.records(),
            again.logged,
        )
    finally:
        after.stop_all()


def wal_frames(path: Path) -> int:
    """Pages in the slab file's WAL now (a checkpoint from a connection of
    its own reports them; it copies them too, which changes nothing here)."""
    db = sqlite3.connect(path)
    try:
        busy, frames, _ = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert 0 == busy
        return int(frames)
    finally:
        db.close()


class Overtaken:
    """The store's commit count, as the checkpoint thread reads it before and
    after each pass, with what the reactor does meanwhile made to happen at
    those moments, on real connections.

    A reader holds the file at its state after forty saves, and three more
    saves follow: SQLite copies no page that reader may still need, so the
    first pass stops short of the last saves, as a pass does under load when
    saves land while it copies. The reader lets go after ``held`` passes; a
    save lands during each of the first ``overtaken`` passes.
    """

    def __init__(
        self, capsule: Capsule, life: Life, held: int, overtaken: int = 0
    ) -> None:
        self.life, self.held, self.overtaken = life, held, overtaken
        self.version = 0
        for _ in range(40):
            self.version = save(life, A, b"steady", self.version)
        self.reader: sqlite3.Connection | None = sqlite3.connect(
            capsule.file, isolation_level=None
        )
        self.reader.execute("BEGIN")
        self.reader.execute("SELECT count(*) FROM records").fetchall()
        for _ in range(3):
            self.version = save(life, A, b"meanwhile", self.version)
        self.readings = 0

    def __call__(self) -> int:
        self.readings += 1
        finished = self.readings // 2 if self.readings % 2 == 0 else 0
        if finished and finished <= self.overtaken:
            self.version = save(self.life, A, b"overtaking", self.version)
        if finished == self.held:
            self.let_go()
        return self.life.store.commits

    @property
    def passes(self) -> int:
        return self.readings // 2

    def let_go(self) -> None:
        if self.reader is not None:
            self.reader.execute("COMMIT")
            self.reader.close()
            self.reader = None


def copy(overtaken: Overtaken, path: Path) -> bool:
    checkpoints = checkpoints_module.Checkpoints(path, overtaken)
    try:
        return checkpoints.copy()
    finally:
        checkpoints.close()
        overtaken.let_go()


def test_a_checkpoint_passes_again_until_all_of_the_wal_is_copied(
    capsule: Capsule,
) -> None:
    """SQLite starts a WAL afresh only when a save finds all of it copied; a
    pass that could not copy it all is followed by another, and once one has,
    the next save starts the WAL from its beginning."""
    life = capsule.start()
    overtaken = Overtaken(capsule, life, held=1)
    assert (True, 2) == (copy(overtaken, capsule.file), overtaken.passes)
    save(life, A, b"after", ANY_VERSION)
    assert 1 == wal_frames(capsule.file)


def test_a_checkpoint_passes_again_when_a_save_came_while_it_copied(
    capsule: Capsule,
) -> None:
    life = capsule.start()
    overtaken = Overtaken(capsule, life, held=0, overtaken=2)
    assert (True, 3) == (copy(overtaken, capsule.file), overtaken.passes)


def test_a_checkpoint_that_is_always_overtaken_gives_up_and_the_wal_grows(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the tests above: a copy that never gets all of the WAL
    stops after ``CATCH_UP_PASSES``, and the WAL keeps every save."""
    monkeypatch.setattr(checkpoints_module, "CATCH_UP_PASSES", 3)
    life = capsule.start()
    overtaken = Overtaken(capsule, life, held=3)
    assert (False, 3) == (copy(overtaken, capsule.file), overtaken.passes)
    save(life, A, b"after", ANY_VERSION)
    assert 40 + 3 + 1 <= wal_frames(capsule.file)


def test_a_backup_of_a_running_store_by_sqlites_backup_api_restores_whole(
    capsule: Capsule, tmp_path: Path
) -> None:
    """The how-to's online backup: SQLite's own backup API, while the server
    serves, needs no lock of ours and gives a file a new server starts from."""
    life = capsule.start()
    a = save(life, A, b"alpha")
    life.clock.advance(1)
    b = save(life, B, b"beta")
    (tmp_path / "restored").mkdir(mode=0o700)
    source = sqlite3.connect(capsule.file)
    target = sqlite3.connect(tmp_path / "restored" / FILE)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    a = save(life, A, b"after the backup", a)  # the running store goes on
    restored = Capsule(tmp_path / "restored")
    try:
        again = restored.start()
        assert ({A: (b"alpha", 1), B: (b"beta", b)}, []) == (
            {k: (data, v) for k, (data, v, _) in again.records().items()},
            again.logged,
        )
        assert b + 1 == save(again, C, b"c")  # above the highest the backup holds
    finally:
        restored.stop_all()


@pytest.mark.parametrize(("sync", "level"), [("normal", 1), ("full", 2)])
def test_saves_commit_to_a_wal_at_the_synchronous_level_the_table_promises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync: str, level: int
) -> None:
    """docs/explanation/persistence.md's guarantee table rests on these two
    settings of the store's own connection: WAL, and synchronous NORMAL (1) or
    FULL (2)."""
    made: list[sqlite3.Connection] = []
    real_connect = persist_module.connect

    def connect(path: Path, sync: persist_module.Sync = "normal") -> sqlite3.Connection:
        made.append(real_connect(path, sync))
        return made[-1]

    monkeypatch.setattr(persist_module, "connect", connect)
    stores = SQLiteStores(tmp_path / "state", sync)  # type: ignore[arg-type]
    options = SlabOptions(max_records=4, record_size=16)
    store = stores(StoreSpec(NAME, options, Clock(), 16, "raw"))
    done(store.open())
    try:
        assert 1 == done(store.save(A, b"a", ABSENT))
        assert [("wal", level)] == [
            (
                db.execute("PRAGMA journal_mode").fetchone()[0],
                db.execute("PRAGMA synchronous").fetchone()[0],
            )
            for db in made
        ]
    finally:
        done(store.close())
        stores.directory.release()


def test_a_crash_loses_at_most_the_last_uses_since_the_last_flush(
    capsule: Capsule, tmp_path: Path
) -> None:
    """Reads since the last flush are lost: a last use too early, never too late."""
    life = capsule.start()
    save(life, A, b"a")
    save(life, B, b"b")
    life.clock.advance(3)
    done(life.store.load(A))
    life.clock.advance(FLUSH_EVERY - 3)  # the flush: A last used at START + 3
    done(life.store.load(B))  # after the flush: lost in the crash
    crashed = crash_copy(capsule, tmp_path / "crashed")
    assert {A: (b"a", 1, START + 3), B: (b"b", 2, START)} == rows_of(crashed / FILE)


def refuse_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, every write to the file fails, as on a full disk."""

    @contextmanager
    def refused(db: sqlite3.Connection) -> Iterator[None]:
        raise sqlite3.OperationalError("disk I/O error")
        yield

    monkeypatch.setattr(persist_module, "transaction", refused)


def test_a_save_the_file_refuses_is_undone_whole(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The saved record goes back as it was, the one evicted to make room comes
    back in its place in the recency order, and the file is untouched."""
    life = capsule.start(capacity=2)
    a = save(life, A, b"a")
    life.clock.advance(1)
    b = save(life, B, b"b")
    life.clock.advance(1)
    refuse_writes(monkeypatch)
    with pytest.raises(StoreUnavailable):
        save(life, B, b"b2", b)
    with pytest.raises(StoreUnavailable) as raised:
        save(life, C, b"c")  # would evict A
    assert (
        f"slab 'test' could not write {capsule.file} (disk I/O error): the previous"
        f" record is kept"
    ) == str(raised.value)
    kept = {A: (b"a", a, START), B: (b"b", b, START + 1)}
    assert (kept, kept) == (life.records(), rows_of(capsule.file))
    monkeypatch.undo()
    del life.evicted[:]
    save(life, D, b"d")
    assert ["a"] == who(life.evicted)  # still the least recently used


def test_no_hook_hears_of_a_save_that_was_undone(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the new player's creation nor the eviction that made room for it
    happened, as far as the store and the file are concerned."""
    life = capsule.start(capacity=1)
    save(life, A, b"a")
    del life.created[:]
    refuse_writes(monkeypatch)
    with pytest.raises(StoreUnavailable):
        save(life, B, b"b")
    assert ([], [], ["a"]) == (
        who(life.created),
        who(life.evicted),
        who(list(life.records())),
    )


def test_a_delete_the_file_refuses_keeps_the_record(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    life = capsule.start()
    a = save(life, A, b"a")
    refuse_writes(monkeypatch)
    with pytest.raises(StoreUnavailable) as raised:
        done(life.store.delete(A))
    assert (
        f"slab 'test' could not write {capsule.file} (disk I/O error): the record"
        f" is kept"
    ) == str(raised.value)
    kept = {A: (b"a", a, START)}
    assert (kept, kept) == (life.records(), rows_of(capsule.file))


def test_a_flush_the_file_refuses_is_tried_again_at_the_next(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One bad moment of the disk must not stop last-use times being written
    for the rest of the run."""
    life = capsule.start()
    save(life, A, b"a")
    life.clock.advance(1)
    done(life.store.load(A))
    refuse_writes(monkeypatch)
    with capturedLogs() as events:
        life.clock.advance(FLUSH_EVERY)
    assert [
        f"{capsule.file}: could not write the last-use times of 1 record (disk I/O"
        f" error): trying again in {FLUSH_EVERY:g} s"
    ] == [formatEvent(event) for event in events]
    assert START == rows_of(capsule.file)[A][2]
    monkeypatch.undo()
    life.clock.advance(FLUSH_EVERY)
    assert START + 1 == rows_of(capsule.file)[A][2]


def test_a_file_another_program_is_writing_to_is_left_where_it_is(
    capsule: Capsule,
) -> None:
    """Locked is not damaged: the slab does not open, says why, and the file is
    neither moved aside nor changed."""
    first = capsule.start(idle_timeout=100)
    save(first, A, b"a")
    first.stop()
    other = sqlite3.connect(capsule.file, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock
        with pytest.raises(StoreUnavailable) as raised:
            capsule.start(START + 1000, idle_timeout=100)  # A must be deleted
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert (
        f"{capsule.file} cannot be used (database is locked): is another program"
        f" writing to it? It is left as it is"
    ) == str(raised.value)
    assert ([], {A: (b"a", 1, START)}) == (asides(capsule.state), rows_of(capsule.file))


# -- idle expiry across a restart ----------------------------------------------


def test_a_record_idle_past_idle_timeout_while_down_expires_at_open(
    capsule: Capsule,
) -> None:
    """Idle time counts from the last use before the restart: at reopening A
    has been idle exactly ``idle_timeout`` (gone, and on_expired fires), B for
    less (kept, and it expires ``idle_timeout`` after its last use)."""
    first = capsule.start(idle_timeout=100)
    save(first, A, b"a")
    first.clock.advance(40)
    b = save(first, B, b"b")
    first.stop()
    second = capsule.start(START + 100, idle_timeout=100)
    assert ([A], {B: (b"b", b, START + 40)}) == (second.expired, second.records())
    assert {B: (b"b", b, START + 40)} == rows_of(capsule.file)
    assert [] == second.logged
    second.clock.advance(40 - 0.25)
    assert Stored(b"b", b) == done(second.store.peek(B))
    second.clock.advance(0.25)
    assert None is done(second.store.peek(B))


def test_what_an_expire_hook_saves_at_open_is_kept(capsule: Capsule) -> None:
    """A hook told at open of a record that expired while the server was down
    may save (a tombstone): the save reaches the file like any other."""
    tomb = key("tomb")
    first = capsule.start(idle_timeout=100)
    save(first, A, b"a")
    first.stop()
    versions: list[int] = []
    second = capsule.start(
        idle_timeout=100,
        when_expired=lambda store, gone: store.save(
            tomb, gone[:4], ANY_VERSION
        ).addCallback(versions.append),
    )
    [made] = versions
    assert ([A], {tomb: (A[:4], made, START + DOWN)}) == (
        second.expired,
        rows_of(capsule.file),
    )
    second.stop()
    third = capsule.start(START + DOWN + 1, idle_timeout=100)
    assert {tomb: (A[:4], made, START + DOWN)} == third.records()


def test_a_version_is_never_given_twice_across_a_restart(capsule: Capsule) -> None:
    """Not even when the record that held the highest version expired while
    the server was down: a version names one state of one record for good."""
    first = capsule.start(idle_timeout=100)
    a = save(first, A, b"a")
    b = save(first, B, b"b")
    first.clock.advance(60)
    done(first.store.load(A))  # A stays; B, the highest version, goes
    first.stop()
    second = capsule.start(START + 120, idle_timeout=100)
    assert ([B], {A}) == (second.expired, set(second.records()))
    made = save(second, C, b"c")
    assert (1, 2, 3) == (a, b, made)


def test_deleting_the_record_of_the_highest_version_does_not_free_it(
    capsule: Capsule,
) -> None:
    first = capsule.start()
    save(first, A, b"a")
    b = save(first, B, b"b")
    assert done(first.store.delete(B))
    first.stop()
    second = capsule.start()
    assert b + 1 == save(second, C, b"c")


def test_deletions_reach_the_file_those_of_the_sweep_too(capsule: Capsule) -> None:
    life = capsule.start(idle_timeout=10)
    save(life, A, b"a")
    save(life, B, b"b")
    assert done(life.store.delete(A))
    assert {B} == set(rows_of(capsule.file))
    life.clock.advance(10)  # the sweep drops B
    assert ([B], {}) == (life.expired, rows_of(capsule.file))


# -- last-use times ------------------------------------------------------------


def test_last_use_times_are_written_every_flush_every_seconds_and_at_close(
    capsule: Capsule,
) -> None:
    life = capsule.start()
    save(life, A, b"a")
    life.clock.advance(3)
    done(life.store.load(A))
    life.clock.advance(FLUSH_EVERY - 3 - 0.5)
    assert START == rows_of(capsule.file)[A][2]
    life.clock.advance(0.5)
    assert START + 3 == rows_of(capsule.file)[A][2]
    life.clock.advance(2)
    done(life.store.load(A))
    assert START + 3 == rows_of(capsule.file)[A][2]
    life.stop()
    assert START + FLUSH_EVERY + 2 == rows_of(capsule.file)[A][2]


def test_last_use_times_are_written_a_slice_at_a_time(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush writes ``FLUSH_SLICE`` of them, lets other work due then run
    (here a probe reading the file), then writes the next slice."""
    monkeypatch.setattr(persist_module, "FLUSH_SLICE", 2)
    life = capsule.start()
    for player in (A, B, C):
        save(life, player, b"p")
    life.clock.advance(1)
    for player in (A, B, C):
        done(life.store.load(player))
    between: list[list[float]] = []
    life.clock.callLater(
        FLUSH_EVERY - 1,
        lambda: between.append(
            sorted(row[2] for row in rows_of(capsule.file).values())
        ),
    )
    life.clock.advance(FLUSH_EVERY - 1)
    assert [[START, START + 1, START + 1]] == between
    assert [START + 1] * 3 == [row[2] for row in rows_of(capsule.file).values()]


# -- settings that changed between runs ----------------------------------------


def fill(life: Life, players: list[bytes], size: int = 4) -> dict[bytes, Row]:
    """Save each player a second apart; the records as the file holds them."""
    for n, player in enumerate(players):
        save(life, player, bytes([n]) * size)
        life.clock.advance(1)
    return rows_of(life.store.path)


def test_a_larger_max_records_loads_every_record(capsule: Capsule) -> None:
    first = capsule.start(capacity=3)
    saved = fill(first, [A, B, C])
    first.stop()
    second = capsule.start(capacity=10)
    assert saved == second.records()
    assert ([], [], []) == (second.logged, asides(capsule.state), second.evicted)


def test_a_smaller_max_records_keeps_the_most_recently_used(capsule: Capsule) -> None:
    """The others are left out, and said so; the file as it was is kept aside."""
    first = capsule.start(capacity=5)
    fill(first, [A, B, C, D, E])
    done(first.store.load(B))
    first.clock.advance(1)
    done(first.store.load(A))  # oldest first: C, D, E, B, A
    first.stop()
    saved = rows_of(capsule.file)
    second = capsule.start(capacity=3)
    before = aside(capsule.state, "before")
    assert [
        f"{capsule.file}: 5 records but max_records 3: the 2 least recently used"
        f" are not loaded; the file as it was is kept as {before.name}"
    ] == second.logged
    kept = {player: saved[player] for player in (E, B, A)}
    assert (kept, kept, saved) == (
        second.records(),
        rows_of(capsule.file),
        rows_of(before),
    )
    save(second, C, b"new")  # evicts E, the oldest of those kept
    assert [E] == second.evicted


def test_a_smaller_record_size_leaves_out_the_records_that_no_longer_fit(
    capsule: Capsule,
) -> None:
    first = capsule.start(record_size=16)
    save(first, A, bytes(16))
    save(first, B, bytes(8))
    save(first, C, bytes(9))
    first.stop()
    saved = rows_of(capsule.file)
    second = capsule.start(record_size=8)
    before = aside(capsule.state, "before")
    assert [
        f"{capsule.file}: 2 records are larger than record_size 8: not loaded; the"
        f" file as it was is kept as {before.name}"
    ] == second.logged
    assert ({B: saved[B]}, {B: saved[B]}, saved) == (
        second.records(),
        rows_of(capsule.file),
        rows_of(before),
    )


# -- bad files -----------------------------------------------------------------


def fill_many(capsule: Capsule) -> dict[bytes, Row]:
    """300 records over a dozen pages, in a file closed cleanly."""
    life = capsule.start(capacity=400, record_size=64)
    for n in range(300):
        save(life, key(n), bytes([n % 256]) * 48)
    life.stop()
    return rows_of(capsule.file)


def findable(path: Path, saved: dict[bytes, Row]) -> dict[bytes, Row]:
    """The saved rows SQLite still finds in a damaged file, one key at a time,
    unchanged: the records a salvage can give back. (``writable_schema`` lets it
    read a file shorter than its header says, instead of refusing all of it.)"""
    found: dict[bytes, Row] = {}
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        with suppress(sqlite3.DatabaseError):
            db.execute("PRAGMA writable_schema=ON")
        for player, row in saved.items():
            try:
                got = db.execute(
                    "SELECT data, version, last_used FROM records WHERE key = ?",
                    (player,),
                ).fetchone()
            except sqlite3.DatabaseError:
                continue
            if got is not None and row == tuple(got):
                found[player] = row
    finally:
        db.close()
    return found


def truncated(raw: bytes) -> bytes:
    """The first half of the file's pages, as a full disk might leave it."""
    return raw[: len(raw) // 2]


def flipped(raw: bytes) -> bytes:
    """Sixteen bytes inverted at the start of the page in the middle."""
    page = int.from_bytes(raw[16:18], "big")
    at = len(raw) // page // 2 * page
    damaged = bytearray(raw)
    damaged[at : at + 16] = bytes(b ^ 0xFF for b in raw[at : at + 16])
    return bytes(damaged)


def noise(raw: bytes) -> bytes:
    """Not SQLite at all."""
    return Random(1965).randbytes(len(raw))


@pytest.mark.parametrize(
    "damage, error",
    [
        pytest.param(truncated, "database disk image is malformed", id="truncated"),
        pytest.param(flipped, "database disk image is malformed", id="flipped"),
        pytest.param(noise, "file is not a database", id="not-sqlite"),
    ],
)
def test_a_file_that_cannot_be_read_is_moved_aside_and_its_good_rows_loaded(
    capsule: Capsule, tmp_path: Path, damage: Callable[[bytes], bytes], error: str
) -> None:
    saved = fill_many(capsule)
    damaged = damage(capsule.file.read_bytes())
    capsule.file.write_bytes(damaged)
    scratch = tmp_path / "scratch.sqlite3"
    scratch.write_bytes(damaged)
    good = findable(scratch, saved)
    life = capsule.start(capacity=400, record_size=64)
    moved = aside(capsule.state, "bad")
    assert [
        f"{capsule.file} cannot be read ({error}): moved to {moved.name};"
        f" {len(good)} records that check out are loaded from it"
    ] == life.logged
    assert damaged == moved.read_bytes()
    assert good == life.records()
    serves(capsule, life, good)


def serves(capsule: Capsule, life: Life, good: dict[bytes, Row]) -> None:
    """The store saves and loads, and a restart finds the good records and the
    new one in a healthy file."""
    newcomer = key("newcomer")
    version = save(life, newcomer, b"hello")
    assert Stored(b"hello", version) == done(life.store.load(newcomer))
    life.stop()
    again = capsule.start(capacity=400, record_size=64)
    expected = {**good, newcomer: (b"hello", version, life.clock.seconds())}
    assert (expected, []) == (again.records(), again.logged)


def test_a_row_whose_checksum_fails_is_left_out_and_the_file_kept_aside(
    capsule: Capsule,
) -> None:
    saved = fill_many(capsule)
    forged = key(7)
    db = sqlite3.connect(capsule.file)
    with db:
        db.execute("UPDATE records SET data = ? WHERE key = ?", (b"forged", forged))
    db.close()
    changed = rows_of(capsule.file)
    life = capsule.start(capacity=400, record_size=64)
    before = aside(capsule.state, "before")
    assert [
        f"{capsule.file}: 1 records fail their checksum: not loaded; the file as it"
        f" was is kept as {before.name}"
    ] == life.logged
    good = {player: row for player, row in saved.items() if player != forged}
    assert (good, good, changed) == (
        life.records(),
        rows_of(capsule.file),
        rows_of(before),
    )
    serves(capsule, life, good)


@pytest.mark.parametrize(
    "field, value, says",
    [
        pytest.param(
            "slab", "other", f"{FILE_FORMAT} for slab 'other' in raw", id="slab"
        ),
        pytest.param(
            "codec",
            "msgpack/1",
            f"{FILE_FORMAT} for slab 'test' in msgpack/1",
            id="codec",
        ),
        pytest.param(
            "format",
            "jetforce-sesh/0",
            "jetforce-sesh/0 for slab 'test' in raw",
            id="format",
        ),
    ],
)
def test_a_file_of_another_slab_codec_or_format_is_moved_aside_whole(
    capsule: Capsule, field: str, value: str, says: str
) -> None:
    """None of its rows are this slab's records: the slab starts empty."""
    saved = fill_many(capsule)
    db = sqlite3.connect(capsule.file)
    with db:
        db.execute("UPDATE meta SET value = ? WHERE name = ?", (value, field))
    db.close()
    life = capsule.start(capacity=400, record_size=64)
    moved = aside(capsule.state, "foreign")
    assert [
        f"{capsule.file} was written by {says}, not {FILE_FORMAT} for 'test' in"
        f" raw: moved to {moved.name}; this slab starts empty"
    ] == life.logged
    assert ({}, saved) == (life.records(), rows_of(moved))
    serves(capsule, life, {})


def digest(data: bytes) -> str:
    """Short for bytes, in assertion messages."""
    return hashlib.sha256(data).hexdigest()[:12]


def test_a_second_file_set_aside_in_the_same_second_keeps_the_first(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two starts within one second on a bad disk: both bad files are kept."""
    monkeypatch.setattr(salvage_module, "_stamp", lambda: "20260101T000000")
    capsule.state.mkdir(mode=0o700)
    kept = []
    for n in range(2):
        damaged = Random(n).randbytes(4096)
        capsule.file.write_bytes(damaged)
        kept.append(damaged)
        capsule.start().stop()
    moved = [
        (capsule.state / name).read_bytes()
        for name in asides(capsule.state)
        if name.startswith(f"{FILE}.bad-")
    ]
    assert sorted(map(digest, kept)) == sorted(map(digest, moved))


# -- the state directory -------------------------------------------------------


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_state_directory_is_made_0700_and_its_files_0600(
    capsule: Capsule,
) -> None:
    life = capsule.start(capacity=3)
    fill(life, [A, B, C])
    life.stop()
    second = capsule.start(capacity=2)  # sets a copy aside, too
    save(second, D, b"d")
    names = sorted(path.name for path in capsule.state.iterdir())
    assert 0o700 == mode_of(capsule.state)
    assert {name: 0o600 for name in names} == {
        name: mode_of(capsule.state / name) for name in names
    }
    assert {"jetforce-sesh.lock", FILE, f"{FILE}-wal", f"{FILE}-shm"} <= set(names)
    assert [aside(capsule.state, "before").name] == asides(capsule.state)


def test_a_state_directory_in_use_is_refused_naming_the_pid(tmp_path: Path) -> None:
    first = StateDirectory(tmp_path / "state")
    try:
        with pytest.raises(ConfigError) as raised:
            StateDirectory(tmp_path / "state")
        assert (
            f"state directory {str(tmp_path / 'state')!r} is in use by another"
            f" server (pid {os.getpid()}): stop it, or give another directory"
        ) == str(raised.value)
    finally:
        first.release()
    StateDirectory(tmp_path / "state").release()  # free again


@pytest.mark.parametrize(
    "where, why",
    [
        pytest.param("file/state", "Not a directory", id="under-a-file"),
        pytest.param("file", "File exists", id="a-file"),
    ],
)
def test_a_state_directory_that_cannot_be_made_is_refused(
    tmp_path: Path, where: str, why: str
) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError) as raised:
        SQLiteStores(tmp_path / where)
    assert (
        f"state directory {str(tmp_path / where)!r} cannot be made ({why}): give a"
        f" directory this user may write"
    ) == str(raised.value)


def test_a_sync_mode_other_than_normal_or_full_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        SQLiteStores(tmp_path, "always")  # type: ignore[arg-type]
    assert (
        "sync must be 'normal' or 'full' (got 'always'): 'full' also survives"
        " power loss, at an fsync per save"
    ) == str(raised.value)
    assert [] == list(tmp_path.iterdir())  # nothing made, nothing locked


# -- through the application ---------------------------------------------------


@attrs.define
class NoteBefore:
    visits: int = 0


@attrs.define
class NoteAfter:
    visits: int = 0
    colour: str = "green"


before_app = SessionApplication("notes")
before_app.slab(NoteBefore, name="notes", record_size=64)
after_app = SessionApplication("notes")
after_app.slab(NoteAfter, name="notes", record_size=64)


@before_app.session_route("/visit", record=NoteBefore)
def visit_before(request: Request, record: NoteBefore) -> Response:
    record.visits += 1
    return Response(Status.SUCCESS, "text/plain", f"visits={record.visits}")


@after_app.session_route("/visit", record=NoteAfter)
def visit_after(request: Request, record: NoteAfter) -> Response:
    record.visits += 1
    return Response(
        Status.SUCCESS, "text/plain", f"visits={record.visits} colour={record.colour}"
    )


def run(app: SessionApplication, state: Path, visits: list[str]) -> list[str]:
    """One life of ``app`` on ``state``: each player's visit, its page's body."""
    stores = SQLiteStores(state)
    harness = SessionHarness(app, stores=stores)
    try:
        return [harness.get("/visit", player=player).body for player in visits]
    finally:
        done(app.close(grace=0))
        stores.directory.release()


def test_a_record_class_that_gained_a_field_reads_it_with_its_default(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    assert ["visits=1", "visits=2"] == run(before_app, state, ["ann", "ann"])
    assert ["visits=3 colour=green"] == run(after_app, state, ["ann"])


def test_export_then_import_into_an_empty_directory_gives_the_same_rows(
    tmp_path: Path,
) -> None:
    run(before_app, tmp_path / "old", ["ann", "ann", "ben"])
    old = rows_of(tmp_path / "old" / "notes.sqlite3")
    out = io.StringIO()
    directory = StateDirectory(tmp_path / "old")
    try:
        assert (2, 0) == export(before_app, directory, None, out)
    finally:
        directory.release()
    lines = out.getvalue().splitlines(keepends=True)
    ann = fingerprint_of("ann")
    assert {
        "slab": "notes",
        "key": ann.hex(),
        "last_used": START,
        "version": 2,
        "data": base64.b64encode(old[ann][0]).decode(),
        "fields": {"visits": 2},
    } == next(line for line in map(json.loads, lines) if line["key"] == ann.hex())
    directory = StateDirectory(tmp_path / "new")
    try:
        assert 2 == import_(before_app, directory, None, lines)
    finally:
        directory.release()
    assert old == rows_of(tmp_path / "new" / "notes.sqlite3")
    assert ["visits=3", "visits=2"] == run(before_app, tmp_path / "new", ["ann", "ben"])


def note_codec() -> Codec[NoteBefore]:
    return before_app.slabs[NoteBefore].codec_for(SlabOptions())


GOOD_LINE = {
    "slab": "notes",
    "key": fingerprint_of("ann").hex(),
    "last_used": START,
    "version": 1,
    "data": "",  # filled in by the test, with the slab's codec
}


@pytest.mark.parametrize(
    "bad, why",
    [
        pytest.param(
            {"key": "abcd"},
            "key must be 64 hex digits and version 1 or more",
            id="short-key",
        ),
        pytest.param(
            {"slab": "elsewhere"}, "no slab 'elsewhere' in the capsule", id="slab"
        ),
        pytest.param(
            {"version": "one"},
            "invalid literal for int() with base 10: 'one'",
            id="version",
        ),
        pytest.param(
            {"data": base64.b64encode(b"junk").decode()},
            "not a NoteBefore record: it starts with 6a, not format tag 01",
            id="data",
        ),
    ],
)
def test_import_of_a_bad_line_names_its_number_and_writes_nothing(
    tmp_path: Path, bad: dict[str, object], why: str
) -> None:
    good = {
        **GOOD_LINE,
        "data": base64.b64encode(note_codec().encode(NoteBefore(1))).decode(),
    }
    lines = [json.dumps(good) + "\n", "\n", json.dumps({**good, **bad}) + "\n"]
    directory = StateDirectory(tmp_path / "new")
    try:
        with pytest.raises(UsageError) as raised:
            import_(before_app, directory, None, lines)
    finally:
        directory.release()
    assert f"line 3 cannot be imported: {why}" == str(raised.value)
    assert ["jetforce-sesh.lock"] == [path.name for path in directory.path.iterdir()]


def test_a_record_exported_as_unreadable_imports_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    """A record the capsule's class cannot read any more (say, a field's type
    changed) is still the player's: export keeps its bytes, import puts them
    back, and nothing is lost on the way to a migration."""
    junk = b"\x7fnot msgpack"
    line = {**GOOD_LINE, "data": base64.b64encode(junk).decode()}
    line["unreadable"] = "not a NoteBefore record"
    directory = StateDirectory(tmp_path / "new")
    try:
        assert 1 == import_(before_app, directory, None, [json.dumps(line)])
    finally:
        directory.release()
    ann = fingerprint_of("ann")
    assert {ann: (junk, 1, START)} == rows_of(tmp_path / "new" / "notes.sqlite3")


def test_export_of_a_file_sqlite_cannot_read_is_one_line_saying_what_to_do(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    run(before_app, state, ["ann"])
    path = state / "notes.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    directory = StateDirectory(state)
    try:
        with pytest.raises(UsageError) as raised:
            export(before_app, directory, None, io.StringIO())
    finally:
        directory.release()
    assert (
        f"{path} cannot be read (file is not a database): start jetforce-sesh on"
        f" the directory once, which moves the file aside and keeps the records"
        f" that check out, then export again"
    ) == str(raised.value)


def test_export_for_a_capsule_that_wrote_none_of_the_files_says_which_to_give(
    tmp_path: Path,
) -> None:
    """The demo capsule is the default --app: exporting another capsule's
    directory without naming it must not quietly export nothing."""
    state = tmp_path / "state"
    run(before_app, state, ["ann"])
    directory = StateDirectory(state)
    try:
        with pytest.raises(UsageError) as raised:
            export(after_app_elsewhere, directory, None, io.StringIO())
    finally:
        directory.release()
    assert (
        f"no slab of the capsule has a file in {state} (it holds notes.sqlite3):"
        f" give --app the capsule that wrote them"
    ) == str(raised.value)


after_app_elsewhere = SessionApplication("elsewhere")
after_app_elsewhere.slab(NoteAfter, name="elsewhere", record_size=64)


# -- the store against the model, with its file ---------------------------------


#: How often an open store with an ``idle_timeout`` of 10 s sweeps by itself.
SWEEP_EVERY = 5.0


class SQLiteStoreAgainstModel(MemoryStoreAgainstModel):
    """The memory store's state machine, on a persistent store: it answers as
    the model does, hooks that write to it included, and after every step the
    file holds exactly the records the store does, each at its version."""

    def new_store(  # type: ignore[override]
        self, capacity: int, on_full: OnFull
    ) -> tuple[SQLiteStore, Clock]:
        self.state = Path(tempfile.mkdtemp(prefix="jetforce-sesh-machine-"))
        clock = Clock()
        clock.advance(START)
        self.stores = SQLiteStores(self.state / "state")
        options = SlabOptions(
            max_records=capacity, record_size=8, idle_timeout=10, on_full=on_full
        )
        self.persistent = self.stores(StoreSpec(NAME, options, clock, 8, "raw"))
        done(self.persistent.open())
        self.next_sweep = clock.seconds() + SWEEP_EVERY
        return self.persistent, clock

    @rule(seconds=st.sampled_from([0.5, 1, 4, 9.75, 10, 12]))
    def wait(self, seconds: float) -> None:
        """Time passes; the store's own sweep runs every ``SWEEP_EVERY``
        seconds (an open store sweeps by itself), and the model's with it."""
        end = self.clock.seconds() + seconds
        while self.next_sweep <= end:
            self.clock.advance(self.next_sweep - self.clock.seconds())
            self.model.sweep()
            self.clock.advance(0)
            self.next_sweep += SWEEP_EVERY
        self.clock.advance(end - self.clock.seconds())

    @rule()
    def sweep(self) -> None:
        assert self.model.sweep() == self.store.sweep()
        # The rows of swept records are deleted, and their hooks told, on the
        # next turn of the reactor.
        self.clock.advance(0)

    @invariant()
    def the_file_holds_what_the_store_does(self) -> None:
        self.clock.advance(0)
        live = {r.key: (r.data, r.version) for r in all_records(self.store)}
        on_disk = {
            k: (data, v) for k, (data, v, _) in rows_of(self.persistent.path).items()
        }
        assert live == {k: on_disk.get(k) for k in live}
        # Beyond those, only records gone idle that nothing has let go yet.
        records = self.model.records
        assert all(
            k in records and self.model.idle(records[k])
            for k in on_disk.keys() - live.keys()
        ), on_disk.keys() - live.keys()

    def teardown(self) -> None:
        done(self.persistent.close())
        self.stores.directory.release()
        shutil.rmtree(self.state, ignore_errors=True)


TestSQLiteStoreAgainstModel = SQLiteStoreAgainstModel.TestCase
TestSQLiteStoreAgainstModel.settings = settings(max_examples=100, deadline=None)


def test_a_record_an_expire_hook_saves_again_stays_in_the_file() -> None:
    """The example the state machine above found: a visit finds a record
    idle, its expire hook saves it again, and that save wrote the record, then
    deleted it with the expiry it owed the file, in one transaction."""
    machine = SQLiteStoreAgainstModel()
    try:
        machine.make(capacity=2, on_full="evict", hooks=[("expired", "save", None, 0)])
        machine.wait(0.5)
        machine.save(bytes(32), b"", "absent", 1)
        machine.wait(10)
        machine.load(bytes(32))
        machine.the_file_holds_what_the_store_does()
    finally:
        machine.teardown()
