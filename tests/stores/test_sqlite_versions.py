"""Versions the SQLite store cannot go on from: a row or a floor past
``MAX_VERSION`` (an import of an earlier release wrote one), a floor that is
not a number, and a slab that has given its last version. Each leaves the
other players serving, and no save that failed stays in memory.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.stores import MAX_VERSION, Stored
from jetforce_sesh.stores.sqlite.file import checksum
from jetforce_sesh.testing import START
from tests.stores.sqlite_support import (
    A,
    B,
    C,
    Capsule,
    aside,
    done,
    rows_of,
    save,
)


def write_row(path: Path, key: bytes, data: bytes, version: int) -> None:
    """A row as an earlier release's import wrote it: checksum and all."""
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
            (key, data, version, START, checksum(key, data, version)),
        )
    finally:
        db.close()


def set_floor(path: Path, text: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)", (text,))
    finally:
        db.close()


def test_a_row_at_a_version_no_save_could_follow_is_left_out(
    capsule: Capsule,
) -> None:
    """At 2**63 - 1 every save of the slab would fail, for every player, at
    every start: the row is kept aside with the file as it was, the others
    load, and versions go on above theirs."""
    first = capsule.start()
    b = save(first, B, b"b")
    first.stop()
    write_row(capsule.file, A, b"a", 2**63 - 1)
    second = capsule.start()
    kept = aside(capsule.state, "before")
    assert [
        f"{capsule.file}: 1 record with versions above {MAX_VERSION}, after which"
        f" no save could follow: not loaded; the file as it was is kept as"
        f" {kept.name}"
    ] == second.logged
    assert ({B: (b"b", b, START)}, [A, B]) == (
        second.records(),
        sorted(rows_of(kept), key=[A, B].index),
    )
    assert [B] == list(rows_of(capsule.file))
    assert b + 1 == save(second, C, b"c")


@pytest.mark.parametrize("floor", ["9223372036854775807", "-3", "seven", ""])
def test_a_version_floor_that_is_not_a_version_goes_on_from_the_clock(
    capsule: Capsule, floor: str
) -> None:
    """The file cannot say which versions it gave: versions go on from the
    clock (in 100 µs units, as the Redis store's after a loss), above any a
    file's counter could have reached, and the slab serves."""
    first = capsule.start()
    save(first, A, b"a")
    first.stop()
    set_floor(capsule.file, floor)
    second = capsule.start()
    clock = int(second.clock.seconds() * 10_000)
    assert [
        f"{capsule.file}: the highest version given is recorded as {floor!r},"
        f" which is not a version: versions go on from {clock}, from the clock"
    ] == second.logged
    assert clock + 1 == save(second, B, b"b")


def test_a_slab_that_gave_its_last_version_refuses_saves_and_keeps_its_records(
    capsule: Capsule,
) -> None:
    first = capsule.start()
    a = save(first, A, b"a")
    first.stop()
    set_floor(capsule.file, str(MAX_VERSION))
    second = capsule.start()
    with pytest.raises(StoreUnavailable) as raised:
        save(second, A, b"a2", a)
    assert (
        f"slab 'test' has given every version up to {MAX_VERSION}: it keeps its"
        f" records but can save no more"
    ) == str(raised.value)
    with pytest.raises(StoreUnavailable):
        save(second, B, b"b")
    assert ({A: (b"a", a, START)}, []) == (second.records(), second.created)
    assert {A: (b"a", a, START)} == rows_of(capsule.file)


def test_a_save_the_file_fails_for_any_reason_is_undone_in_memory(
    capsule: Capsule, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only SQLite's own errors: a value the file cannot hold (an int past
    its range, as 2**63 was) is undone too, and answered as a store that cannot
    keep the record, never left in memory to be served."""
    life = capsule.start()
    a = save(life, A, b"a")

    def refuse(*args: object) -> None:
        raise OverflowError("Python int too large to convert to SQLite INTEGER")

    del life.created[:]
    monkeypatch.setattr(life.store, "_write_saved", refuse)
    with pytest.raises(StoreUnavailable) as raised:
        save(life, A, b"a2", a)
    assert (
        f"slab 'test' could not write {capsule.file} (Python int too large to"
        f" convert to SQLite INTEGER): the previous record is kept"
    ) == str(raised.value)
    assert Stored(b"a", a) == done(life.store.peek(A))
    with pytest.raises(StoreUnavailable):
        save(life, B, b"b")
    assert ({A}, []) == (set(life.records()), life.created)
