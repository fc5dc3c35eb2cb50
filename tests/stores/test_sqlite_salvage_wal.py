"""Damaged files that have a write-ahead log, as a crash leaves them: what the
store loads is checked against :mod:`tests.stores.sqlite_reader`, which reads
the file and its log by hand and shares no code with SQLite or the salvage.

Each file holds 300 records, checkpointed by a clean stop; a second life then
changes some and adds others, and is "killed" (its files copied while open), so
the log holds what the database file does not. A page of the database file is
then destroyed, as a bad sector would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stores.sqlite_reader import SlabFile, loadable
from tests.stores.sqlite_support import (
    FILE,
    Capsule,
    aside,
    crash_copy,
    key,
    rows_of,
    save,
)


def crashed_with_a_log(capsule: Capsule, tmp_path: Path) -> Capsule:
    """The files of a server killed with saves in its log, in a directory of
    their own."""
    first = capsule.start(capacity=400, record_size=64)
    versions = {}
    for n in range(300):
        versions[n] = save(first, key(n), bytes([n % 256]) * 48)
    first.stop()
    second = capsule.start(capacity=400, record_size=64)
    for n in (10, 20, 30):  # changed: the log has the new bytes
        second.clock.advance(1)
        save(second, key(n), b"changed" * 6, versions[n])
    for n in range(300, 303):  # new: only in the log
        second.clock.advance(1)
        save(second, key(n), b"new" * 16)
    crashed = Capsule(crash_copy(capsule, tmp_path / "crashed"))
    second.stop()
    assert Path(f"{crashed.file}-wal").stat().st_size > 0
    return crashed


def destroy(path: Path, page: int, size: int) -> bytes:
    """Page ``page`` of the database file overwritten with zeros; the file."""
    raw = bytearray(path.read_bytes())
    raw[(page - 1) * size : page * size] = bytes(size)
    path.write_bytes(bytes(raw))
    return bytes(raw)


@pytest.mark.parametrize(
    "covered", [False, True], ids=["page-only-in-file", "page-in-log"]
)
def test_a_destroyed_page_costs_its_rows_and_the_log_is_read(
    capsule: Capsule, tmp_path: Path, covered: bool
) -> None:
    """Every row the log changed or added comes back as the log has it, and a
    destroyed page costs only the rows on it (none if the log has a newer copy
    of the page: SQLite reads that one)."""
    crashed = crashed_with_a_log(capsule, tmp_path)
    before = SlabFile(crashed.file)
    pages = before.leaves()
    logged = set(before.log.pages)
    chosen = sorted(p for p in pages if (p in logged) == covered and len(pages[p]) > 5)
    assert chosen, (sorted(pages), sorted(logged))
    page = chosen[len(chosen) // 2]
    damaged = destroy(crashed.file, page, before.page_size)
    log = Path(f"{crashed.file}-wal").read_bytes()
    oracle = SlabFile(crashed.file)
    expected = loadable(oracle.rows())
    assert ([] if covered else [page]) == oracle.unreadable
    assert 303 - (0 if covered else len(pages[page])) == len(expected)
    life = crashed.start(capacity=400, record_size=64)
    try:
        assert expected == life.records()
        if not covered:
            moved = aside(crashed.state, "bad")
            assert (damaged, log) == (
                moved.read_bytes(),
                Path(f"{moved}-wal").read_bytes(),
            ), "the file set aside is the file as it was, log and all"
        assert expected == rows_of(crashed.file)
    finally:
        crashed.stop_all()


def test_a_log_torn_in_its_last_frame_loses_only_that_save(
    capsule: Capsule, tmp_path: Path
) -> None:
    """A crash in the middle of writing the log: the save whose frame is torn
    never returned, and every earlier one is kept."""
    crashed = crashed_with_a_log(capsule, tmp_path)
    wal = Path(f"{crashed.file}-wal")
    before = SlabFile(crashed.file)
    wal.write_bytes(wal.read_bytes()[: -before.page_size // 2])
    pages = before.leaves()
    page = sorted(p for p in pages if p not in before.log.pages and len(pages[p]) > 5)[
        0
    ]
    destroy(crashed.file, page, before.page_size)
    expected = loadable(SlabFile(crashed.file).rows())
    assert key(302) not in expected  # the last save's frame is torn
    assert key(301) in expected or key(301) in pages[page]
    life = crashed.start(capacity=400, record_size=64)
    try:
        assert expected == life.records()
    finally:
        crashed.stop_all()


def test_the_reader_agrees_with_sqlite_on_a_healthy_crashed_file(
    capsule: Capsule, tmp_path: Path
) -> None:
    """The oracle itself, on a file nothing damaged: what SQLite recovers."""
    crashed = crashed_with_a_log(capsule, tmp_path)
    expected = loadable(SlabFile(crashed.file).rows())
    assert 303 == len(expected)
    life = crashed.start(capacity=400, record_size=64)
    try:
        assert (expected, []) == (life.records(), life.logged)
    finally:
        crashed.stop_all()
    assert FILE == crashed.file.name
