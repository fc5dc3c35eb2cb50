"""Files a slab cannot use as they are: kept aside, never deleted, under a name
that says why and when; and, from a damaged one, the records that check out."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

from jetforce_sesh.stores.sqlite.file import (
    ASIDE_SCHEMA,
    SELECT_ROWS,
    SQLITE_FILES,
    Row,
    make_private,
    whole,
)


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%S")


def _free_name(path: Path, why: str) -> Path:
    """A name next to ``path`` that says why and when, and is nobody's yet."""
    target = path.with_name(f"{path.name}.{why}-{_stamp()}")
    number = 1
    while any(os.path.lexists(f"{target}{s}") for s in SQLITE_FILES):
        number += 1
        target = path.with_name(f"{path.name}.{why}-{_stamp()}-{number}")
    return target


def move_aside(path: Path, why: str) -> Path:
    """Move ``path`` (with its WAL and index files) to a name that says why."""
    target = _free_name(path, why)
    for suffix in SQLITE_FILES:
        source = Path(str(path) + suffix)
        if os.path.lexists(source):
            os.replace(source, Path(str(target) + suffix))
    return target


def copy_aside(path: Path, why: str, db: sqlite3.Connection) -> Path:
    """A copy of the database as it is now, next to it, by SQLite's backup API."""
    target = _free_name(path, why)
    make_private(target)
    copy = sqlite3.connect(target)
    try:
        db.backup(copy)
    finally:
        copy.close()
    return target


def attach_aside(db: sqlite3.Connection, path: Path, why: str) -> Path:
    """A new slab file next to ``path``, attached to ``db`` as ``aside`` with
    empty tables: rows are copied into it by SQL in ``db`` (so a million of
    them cost no memory here), in the transaction that drops them. Outside any
    transaction of ``db``; :func:`detach_aside` when done."""
    target = _free_name(path, why)
    make_private(target)
    db.execute("ATTACH DATABASE ? AS aside", (os.fspath(target),))
    try:
        db.executescript(ASIDE_SCHEMA)
    except BaseException:
        detach_aside(db, target, kept=False)
        raise
    return target


def copy_rows_aside(db: sqlite3.Connection, keys: Sequence[bytes], floor: int) -> None:
    """Copy the rows of ``keys`` and the ``meta`` rows into ``aside``, with the
    version floor ``floor``: a file that, renamed back, is the slab again.
    Within a transaction of ``db``."""
    db.execute("INSERT INTO aside.meta SELECT name, value FROM main.meta")
    db.execute(
        "INSERT OR REPLACE INTO aside.meta (name, value) VALUES ('version', ?)",
        (str(floor),),
    )
    db.executemany(
        "INSERT INTO aside.records SELECT * FROM main.records WHERE key = ?",
        ((key,) for key in keys),
    )


def detach_aside(db: sqlite3.Connection, target: Path, *, kept: bool) -> None:
    """Detach ``aside``; unless it ``kept`` rows, remove the file made for it."""
    with contextlib.suppress(sqlite3.Error):
        db.execute("DETACH DATABASE aside")
    if not kept:
        for suffix in ("", "-journal"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{target}{suffix}")


def _reader(moved: Path) -> sqlite3.Connection | None:
    """A read-only connection to a file set aside, through its write-ahead
    log if it has one (the saves a crash left there are records too), else
    as the database file alone; None if SQLite opens neither. Neither writes
    the database file or its log: what is kept aside stays as it was."""
    for uri in (f"file:{moved}?mode=ro", f"file:{moved}?mode=ro&immutable=1"):
        try:
            db = sqlite3.connect(uri, uri=True)
        except sqlite3.Error:
            continue
        try:
            db.execute("PRAGMA writable_schema=ON")
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            if "immutable" not in uri:
                db.close()
                continue
        return db
    return None


def recorded_floor(moved: Path) -> str | None:
    """The ``meta`` row ``version`` of a file set aside ("0" if it has none),
    or None if it cannot be read."""
    db = _reader(moved)
    if db is None:
        return None
    try:
        row = db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()
    return "0" if row is None else str(row[0])


def salvage(moved: Path) -> tuple[list[Row], int]:
    """The rows of a damaged file that can still be read and check out.

    Keys are read in order; where a damaged page stops the reading, the read
    starts again just past it (found by probing ever further ahead, then
    closing back in), and reads back down from there to the damage, so a
    damaged page costs the rows SQLite can no longer reach through it, not
    the rest of the file (nor the entry of the page above it next to it,
    which a search from below cannot reach). The write-ahead log is read
    too. A file shorter than its header says (a full disk) is read as far as
    it goes.
    """
    rows: list[Row] = []
    damaged = 0
    db = _reader(moved)
    if db is None:
        return rows, 0
    end = 1 << 256

    def first(start: int) -> tuple[object, ...] | None:
        """The first row from ``start`` on, or None; DatabaseError if the
        page it is on cannot be read."""
        row: tuple[object, ...] | None = db.execute(
            SELECT_ROWS + " WHERE key >= ? ORDER BY key LIMIT 1",
            (start.to_bytes(32, "big"),),
        ).fetchone()
        return row

    def readable(start: int) -> bool:
        try:
            first(start)
        except sqlite3.DatabaseError:
            return False
        return True

    def take(
        key: object, data: object, version: object, used: object, check: object
    ) -> None:
        nonlocal damaged
        if whole(key, data, version, used, check):
            rows.append((key, data, version, used))  # type: ignore[arg-type]
        else:
            damaged += 1

    def back_to(low: int, high: int) -> None:
        """Read the rows below ``high`` down to ``low`` (or to damage), a row
        at a time: what lies between a damaged page and the point the
        reading goes on from (``end``: the last row of the file)."""
        while high > low:
            try:
                if high >= end:
                    query = SELECT_ROWS + " ORDER BY key DESC LIMIT 1"
                    row = db.execute(query).fetchone()
                else:
                    query = SELECT_ROWS + " WHERE key < ? ORDER BY key DESC LIMIT 1"
                    row = db.execute(query, (high.to_bytes(32, "big"),)).fetchone()
            except sqlite3.DatabaseError:
                return
            if row is None or type(row[0]) is not bytes or len(row[0]) != 32:
                return
            found = int.from_bytes(row[0], "big")
            if found < low:
                return
            take(*row)
            high = found

    try:
        start = 0
        stuck = -1
        # However damaged the file, the salvage ends: a bounded number of
        # restarts, each one past the last.
        for _ in range(100_000):
            if start >= end:
                break
            try:
                cursor = db.execute(
                    SELECT_ROWS + " WHERE key >= ? ORDER BY key",
                    (start.to_bytes(32, "big"),),
                )
                for key, data, version, used, check in cursor:
                    take(key, data, version, used, check)
                    if type(key) is bytes and len(key) == 32:
                        start = int.from_bytes(key, "big") + 1
                break
            except sqlite3.DatabaseError:
                pass
            # The fast reading reads a row ahead: go on a row at a time up
            # to the damage itself, so no readable row is left behind.
            while start < end:
                try:
                    row = first(start)
                except sqlite3.DatabaseError:
                    break
                if row is None:
                    start = end
                    break
                take(*row)
                found = row[0]
                if type(found) is not bytes or len(found) != 32:
                    break
                start = int.from_bytes(found, "big") + 1
            if start >= end:
                break
            if start <= stuck:
                start = stuck + 1  # failed here before: go on past it
            stuck = start
            # Damage at ``start``: probe ever further ahead for a point the
            # reading can go on from, then close back in on the damage.
            step = 1
            while start + step < end and not readable(start + step):
                step <<= 1
            if start + step >= end:
                back_to(start, end)
                break
            failing, working = start, start + step
            while working - failing > 1:
                middle = (failing + working) // 2
                if readable(middle):
                    working = middle
                else:
                    failing = middle
            back_to(start, working)
            start = working
    except sqlite3.Error:
        pass
    finally:
        db.close()
    return rows, damaged
