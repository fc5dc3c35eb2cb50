"""A bad slab file never stops the capsule and is never deleted: a file SQLite
cannot read is moved aside and the rows that check out are loaded, a row whose
checksum fails is left out, a file of another slab, codec or format is moved
aside whole.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from random import Random

import pytest

from jetforce_sesh.stores import Stored
from jetforce_sesh.stores.sqlite import salvage as salvage_module
from jetforce_sesh.stores.sqlite.file import FILE_FORMAT
from tests.stores.sqlite_reader import SlabFile, loadable
from tests.stores.sqlite_support import (
    FILE,
    Capsule,
    Life,
    Row,
    aside,
    asides,
    done,
    key,
    rows_of,
    save,
)


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
    good = loadable(SlabFile(scratch).rows())
    assert good.items() <= saved.items()
    life = capsule.start(capacity=400, record_size=64)
    moved = aside(capsule.state, "bad")
    floor = int(life.clock.seconds() * 10_000)
    assert [
        f"{capsule.file} cannot be read ({error}): moved to {moved.name};"
        f" {len(good)} records that check out are loaded from it; versions go on"
        f" from {floor}"
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


def test_a_salvaged_slab_never_gives_again_a_version_a_lost_row_held(
    capsule: Capsule,
) -> None:
    """The rows a damage took held versions no surviving row or meta can tell:
    versions go on from the clock's count (in 100 µs), above any a file's
    counter reaches, so a compare-and-set that read a lost record before the
    damage can never match a record made after it."""
    saved = fill_many(capsule)
    highest = max(version for _, version, _ in saved.values())
    capsule.file.write_bytes(noise(capsule.file.read_bytes()))
    life = capsule.start(capacity=400, record_size=64)
    floor = int(life.clock.seconds() * 10_000)
    made = save(life, key("after"), b"after")
    assert (300, floor + 1) == (highest, made)
    life.stop()
    again = capsule.start(capacity=400, record_size=64)
    assert floor + 2 == save(again, key("later"), b"later")
