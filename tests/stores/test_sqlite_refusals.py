"""When the SQLite store's file says no: a save, delete or flush a full disk
refuses is undone or tried again, and a file another program holds is left
where it is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from twisted.logger import capturedLogs, formatEvent

from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.stores.sqlite import store as persist_module
from jetforce_sesh.stores.sqlite.store import FLUSH_EVERY
from jetforce_sesh.testing import START
from tests.stores.sqlite_support import (
    A,
    B,
    C,
    Capsule,
    D,
    asides,
    done,
    rows_of,
    save,
    who,
)


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
