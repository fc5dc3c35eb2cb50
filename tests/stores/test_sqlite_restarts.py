"""The SQLite store across restarts: a clean stop keeps every record, its bytes,
version and last use, and their order; a crash keeps every save that returned;
time away and settings changed meanwhile count at the next open. (What a
"life" and a crash are here: ``tests/stores/sqlite_support.py``.)
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from jetforce_sesh.stores import ANY_VERSION, Stored
from jetforce_sesh.stores.sqlite import store as persist_module
from jetforce_sesh.stores.sqlite.store import FLUSH_EVERY
from jetforce_sesh.testing import START
from tests.stores.sqlite_support import (
    DOWN,
    FILE,
    A,
    B,
    C,
    Capsule,
    D,
    E,
    aside,
    asides,
    crash_copy,
    done,
    fill,
    key,
    rows_of,
    save,
)

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
    kept = aside(capsule.state, "idle")
    assert [
        f"{capsule.file}: 1 record idle for 100 s or more by this clock"
        f" (2026-01-01T00:01:40Z): not loaded; they are kept in {kept.name}"
    ] == second.logged
    assert {A: (b"a", 1, START)} == rows_of(kept)
    second.clock.advance(40 - 0.25)
    assert Stored(b"b", b) == done(second.store.peek(B))
    second.clock.advance(0.25)
    assert None is done(second.store.peek(B))


def test_a_clock_far_ahead_at_start_up_keeps_every_row_aside(
    capsule: Capsule,
) -> None:
    """A dead RTC battery, a VM restored with a date a year ahead: every row
    looks idle at open. They are deleted from the slab's file, but kept first
    in a slab file of their own, which, renamed back once the clock is right,
    is the slab again, with its versions."""
    day = 86400.0
    first = capsule.start(idle_timeout=30 * day)
    saved = fill(first, [A, B, C])
    first.stop()
    wrong = capsule.start(START + 365 * day, idle_timeout=30 * day)
    kept = aside(capsule.state, "idle")
    assert [
        f"{capsule.file}: 3 records idle for 2.592e+06 s or more by this clock"
        f" (2027-01-01T00:00:00Z): not loaded; they are kept in {kept.name}"
    ] == wrong.logged
    assert ({}, {}, [A, B, C]) == (
        wrong.records(),
        rows_of(capsule.file),
        sorted(wrong.expired, key=[A, B, C].index),
    )
    assert saved == rows_of(kept)
    assert 0o600 == stat.S_IMODE(kept.stat().st_mode)
    wrong.stop()
    # The clock is right again; the operator puts the file back.
    kept.replace(capsule.file)
    right = capsule.start(START + 60, idle_timeout=30 * day)
    assert saved == right.records()
    assert 4 == save(right, D, b"d")  # versions go on above the kept ones


def test_a_routine_idle_expiry_at_start_up_keeps_only_the_idle_rows(
    capsule: Capsule,
) -> None:
    """The file kept holds the rows dropped, not the whole slab: restarts of a
    capsule whose players come and go do not pile up copies of everything."""
    first = capsule.start(idle_timeout=100)
    fill(first, [A, B, C, D])
    first.clock.advance(60)
    done(first.store.load(C))
    done(first.store.load(D))
    first.stop()
    second = capsule.start(START + 120, idle_timeout=100)
    kept = aside(capsule.state, "idle")
    assert ([A, B], {A, B}, {C, D}) == (
        sorted(second.expired, key=[A, B].index),
        set(rows_of(kept)),
        set(rows_of(capsule.file)),
    )
    assert {"format", "slab", "codec", "version"} == set(meta_of(kept))


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


def meta_of(path: Path) -> dict[str, str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(db.execute("SELECT name, value FROM meta"))
    finally:
        db.close()
