"""The SQLite store's WAL: checkpoints copy all of it, however saves overtake
them; saves commit to it at the synchronous level the guarantee table
promises; and a backup by SQLite's own API, while the store serves, restores
whole.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores import ABSENT, ANY_VERSION
from jetforce_sesh.stores.contract import StoreSpec
from jetforce_sesh.stores.sqlite import checkpoints as checkpoints_module
from jetforce_sesh.stores.sqlite import store as persist_module
from jetforce_sesh.stores.sqlite.store import SQLiteStores
from tests.stores.sqlite_support import FILE, NAME, A, B, C, Capsule, Life, done, save


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
    """SQLite starts a WAL afresh only when a commit finds all of it copied; a
    pass that could not copy it all is followed by another, and once one has,
    the thread starts the WAL from its beginning (one frame), and the next
    save follows it there."""
    life = capsule.start()
    overtaken = Overtaken(capsule, life, held=1)
    assert (True, 2) == (copy(overtaken, capsule.file), overtaken.passes)
    save(life, A, b"after", ANY_VERSION)
    assert 2 == wal_frames(capsule.file)


# -- who starts the WAL afresh ------------------------------------------------------


def salts(path: Path) -> bytes:
    """The WAL header's salts: a commit that starts the WAL afresh writes new
    ones (and syncs the header: the fdatasync that must not be the reactor's)."""
    with open(f"{path}-wal", "rb") as wal:
        return wal.read(24)[16:24]


def steady(life: Life, count: int = 40) -> int:
    version = 0
    for _ in range(count):
        version = save(life, A, b"steady", version)
    return version


def test_the_checkpoint_thread_starts_the_wal_afresh_and_the_reactor_never_does(
    capsule: Capsule,
) -> None:
    """sync_normal_fsync_on_reactor.py: with --sync normal the reactor thread
    ran an fdatasync of the WAL after every checkpoint that copied all of it,
    starting the WAL afresh with its next save."""
    life = capsule.start()
    version = steady(life)
    before = salts(capsule.file)
    checkpoints = checkpoints_module.Checkpoints(
        capsule.file, lambda: life.store.commits
    )
    try:
        assert checkpoints.copy()
        started = salts(capsule.file)
        assert before != started  # the thread started it afresh
        for _ in range(3):
            version = save(life, A, b"after", version)
        assert (started, 1 + 3) == (salts(capsule.file), wal_frames(capsule.file))
    finally:
        checkpoints.close()


def test_while_the_wal_is_pinned_a_save_appends_to_it_however_much_is_copied(
    capsule: Capsule,
) -> None:
    """The pin is what closes the moment between a copy of all of the WAL and
    the thread's restart, when the reactor's save would start the WAL."""
    life = capsule.start()
    version = steady(life)
    before = salts(capsule.file)
    checkpoints = checkpoints_module.Checkpoints(
        capsule.file, lambda: life.store.commits
    )
    try:
        db = checkpoints._connect()
        checkpoints.pin()
        busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (0, frames) == (busy, copied)  # all of it copied
        save(life, A, b"after", version)  # which would start it afresh
        assert (before, frames + 1) == (salts(capsule.file), wal_frames(capsule.file))
    finally:
        checkpoints.close()


def test_without_the_pin_the_reactors_save_would_start_the_wal(
    capsule: Capsule,
) -> None:
    """The control of the test above, on SQLite alone."""
    life = capsule.start()
    version = steady(life)
    before = salts(capsule.file)
    other = sqlite3.connect(capsule.file, isolation_level=None)
    try:
        busy, frames, copied = other.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
        assert (0, frames) == (busy, copied)
    finally:
        other.close()
    save(life, A, b"after", version)
    assert before != salts(capsule.file)


def test_the_wal_of_a_file_opened_again_is_started_at_start_up(
    capsule: Capsule,
) -> None:
    """A clean stop empties the WAL: the store starts it as it opens, so its
    first save appends, and the reactor starts no WAL while it serves."""
    first = capsule.start()
    steady(first, 3)
    first.stop()
    second = capsule.start()
    opened = salts(capsule.file)
    save(second, B, b"b")
    assert opened == salts(capsule.file)


def test_an_idle_store_is_left_alone(capsule: Capsule) -> None:
    """Nothing saved since the thread started the WAL afresh: nothing to copy,
    and no write of the thread's own every five seconds."""
    life = capsule.start()
    steady(life)
    checkpoints = checkpoints_module.Checkpoints(
        capsule.file, lambda: life.store.commits
    )
    try:
        assert (True, True) == (checkpoints.due(), checkpoints.copy())
        assert not checkpoints.due()
        save(life, B, b"b")
        assert checkpoints.due()
    finally:
        checkpoints.close()


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
