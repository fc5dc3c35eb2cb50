"""``python -m benchmarks.persist``: what ``--state-dir`` costs, where it can hurt.

Three figures, each against its goal from the persistence issue:

- **per operation** (micro): ``save_now`` and ``load_now`` on a
  :class:`~jetforce_sesh.MemoryStore` and on a
  :class:`~jetforce_sesh.stores.sqlite.store.SQLiteStore` with ``synchronous=normal``
  and ``full``, on a real file in a temporary directory; median of repeats,
  interleaved. End to end the same comparison is ``python -m benchmarks
  --scenarios plain,session,persist``.
- **start-up**: a file of ``--records`` records (1,000,000 by default) is written
  directly with SQLite, then a store opens it: the time until it serves.
  Goal ≤ 3 s.
- **longest stall**: with that store open under the real reactor, players visit
  (a load and a save every millisecond, on keys spread over the million) for
  ``--seconds``, long enough for the last-use flushes (every
  ``FLUSH_EVERY`` s) and the checkpoint thread (every ``CHECKPOINT_EVERY`` s)
  to run several times. A probe asks to run every millisecond; the worst delay
  is the longest time the reactor was busy with anything else. Goal ≤ 5 ms.
  The close at the end (writing every last use still unwritten, and a
  checkpoint) is timed too: it runs while the server stops, not while it serves.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock

from benchmarks.stall import Ticker
from jetforce_sesh import SlabOptions
from jetforce_sesh.stores import ANY_VERSION, MemoryStore
from jetforce_sesh.stores.contract import StoreSpec
from jetforce_sesh.stores.sqlite.checkpoints import CHECKPOINT_EVERY
from jetforce_sesh.stores.sqlite.file import (
    UPSERT,
    checksum,
    connect,
    meta,
    transaction,
)
from jetforce_sesh.stores.sqlite.store import FLUSH_EVERY, SQLiteStore, SQLiteStores

reactor: Any = _reactor

NAME = "bench"
RECORD_SIZE = 64
DATA = bytes(range(48))
START_GOAL_S = 3.0
STALL_GOAL_MS = 5.0


def key(number: int) -> bytes:
    return number.to_bytes(32, "big")


def spec(records: int, clock: IReactorTime) -> StoreSpec:
    options = SlabOptions(max_records=records, record_size=RECORD_SIZE)
    return StoreSpec(NAME, options, clock, RECORD_SIZE, "raw")


# -- per operation ---------------------------------------------------------------


def _time_ops(run: Callable[[], None], count: int) -> float:
    started = time.perf_counter()
    run()
    return (time.perf_counter() - started) / count * 1e6


def _one(kind: str, players: list[bytes], directory: str) -> tuple[float, float]:
    """µs per save and per load on a fresh store of ``kind``."""
    clock = Clock()
    stores: SQLiteStores | None = None
    store: MemoryStore | SQLiteStore
    if kind == "memory":
        store = MemoryStore(
            NAME, record_size=RECORD_SIZE, capacity=len(players), clock=clock
        )
    else:
        stores = SQLiteStores(directory, kind)  # type: ignore[arg-type]
        store = stores(spec(len(players), clock))
    store.open()

    def saves() -> None:
        for player in players:
            store.save_now(player, DATA, ANY_VERSION)

    def loads() -> None:
        for player in players:
            store.load_now(player)

    try:
        return _time_ops(saves, len(players)), _time_ops(loads, len(players))
    finally:
        store.close()
        if stores is not None:
            stores.directory.release()


def micro(operations: int, repeats: int) -> dict[str, dict[str, float]]:
    """Median µs per save and per load for each kind of store, interleaved."""
    players = [key(n) for n in range(operations)]
    figures: dict[str, dict[str, list[float]]] = {}
    for _ in range(repeats):
        for kind in ("memory", "normal", "full"):
            with tempfile.TemporaryDirectory() as directory:
                save, load = _one(kind, players, directory)
            mine = figures.setdefault(kind, {"save": [], "load": []})
            mine["save"].append(save)
            mine["load"].append(load)
    return {
        kind: {op: statistics.median(times) for op, times in ops.items()}
        for kind, ops in figures.items()
    }


# -- start-up and stalls ---------------------------------------------------------


def row(n: int, records: int, now: float) -> tuple[bytes, bytes, int, float, int]:
    """Record ``n`` as a server leaves it: the oldest use first."""
    return key(n), DATA, n + 1, now - records + n, checksum(key(n), DATA, n + 1)


def write_file(path: Path, records: int, now: float) -> None:
    """A slab file of ``records`` records, as a server would have left it."""
    db = connect(path)
    try:
        with transaction(db):
            db.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                meta(NAME, "raw").items(),
            )
            db.executemany(
                UPSERT,
                (row(n, records, now) for n in range(records)),
            )
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    # On disk before the server starts, as a file from an earlier run is: the
    # kernel writing 100 MB back meanwhile would slow every fsync measured.
    os.sync()


class Players(Ticker):
    """A load and a save every tick, on keys spread over the whole file; the
    slowest single save is remembered."""

    def __init__(self, store: MemoryStore | SQLiteStore, records: int) -> None:
        super().__init__(0.001)
        self.store = store
        self.records = records
        self.count = 0
        self.slowest_save = 0.0

    def run(self) -> None:
        player = key((self.count * 7919) % self.records)
        self.count += 1
        found = self.store.load_now(player)
        started = time.perf_counter()
        self.store.save_now(player, DATA, found.version if found else 0)
        self.slowest_save = max(self.slowest_save, time.perf_counter() - started)


def serve(records: int, seconds: float, directory: Path) -> dict[str, float]:
    """Start-up, then ``seconds`` of visits to a memory store of as many
    records (the floor: what this machine's noise and the visits alone do to
    the probe), then as long on the persistent store; then close."""
    memory = MemoryStore(NAME, record_size=RECORD_SIZE, capacity=records, clock=reactor)
    memory.restore_many(row(n, records, reactor.seconds())[:4] for n in range(records))
    stores = SQLiteStores(directory)
    store = stores(spec(records, reactor))
    started = time.perf_counter()
    write_file(store.path, records, reactor.seconds())
    written = time.perf_counter() - started
    gc.collect()
    started = time.perf_counter()
    store.open()
    opened = time.perf_counter() - started
    loaded = len(store)
    figures: dict[str, float] = {}

    def phase(
        name: str, on: MemoryStore | SQLiteStore, then: Callable[[], None]
    ) -> None:
        probe, players = Ticker(0.001), Players(on, records)
        probe.start()
        players.start()

        def end() -> None:
            probe.stop()
            players.stop()
            figures[f"{name} longest stall ms"] = 1000 * max(probe.late, default=0.0)
            figures[f"{name} slowest save ms"] = 1000 * players.slowest_save
            figures[f"{name} visits"] = players.count
            then()

        reactor.callLater(seconds, end)

    def finish() -> None:
        wal = Path(f"{store.path}-wal")
        figures["WAL MB"] = wal.stat().st_size / 1e6 if wal.exists() else 0.0
        started = time.perf_counter()
        store.close()
        figures["close s"] = time.perf_counter() - started
        reactor.stop()

    reactor.callWhenRunning(
        phase, "memory", memory, lambda: phase("persist", store, finish)
    )
    reactor.run()
    stores.directory.release()
    figures.update(
        {
            "file written s": written,
            "start-up s": opened,
            "records loaded": loaded,
            "file MB": store.path.stat().st_size / 1e6,
        }
    )
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.persist",
        description="What --state-dir costs per operation, at start-up, and in"
        " reactor stalls.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--seconds",
        type=float,
        default=2 * FLUSH_EVERY + CHECKPOINT_EVERY + 1,
        help="How long players visit while stalls are measured",
    )
    parser.add_argument("--operations", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    ops = micro(args.operations, args.repeats)
    print(
        f"Per operation, {args.operations:,} players, {RECORD_SIZE}-byte slots,"
        f" median of {args.repeats}:"
    )
    for kind, label in (
        ("memory", "MemoryStore"),
        ("normal", "SQLiteStore synchronous=normal"),
        ("full", "SQLiteStore synchronous=full"),
    ):
        save, load = ops[kind]["save"], ops[kind]["load"]
        print(
            f"  {label:<36} save {save:8.2f} µs ({save / ops['memory']['save']:5.1f}×)"
            f"   load {load:6.2f} µs ({load / ops['memory']['load']:4.1f}×)"
        )

    with tempfile.TemporaryDirectory() as directory:
        figures = serve(args.records, args.seconds, Path(directory))
    start, stall = figures["start-up s"], figures["persist longest stall ms"]
    print(
        f"A file of {args.records:,} records ({figures['file MB']:.0f} MB,"
        f" written in {figures['file written s']:.1f} s):"
    )
    print(
        f"  start-up {start:.2f} s for {figures['records loaded']:,.0f} records"
        f" (goal ≤ {START_GOAL_S:g} s: {'met' if start <= START_GOAL_S else 'MISSED'})"
    )
    print(
        f"Visits, a load and a save every ms for {args.seconds:g} s each (last uses"
        f" flushed every {FLUSH_EVERY:g} s, checkpoints every {CHECKPOINT_EVERY:g} s):"
    )
    for name, label in (
        ("memory", "MemoryStore (floor)"),
        ("persist", "SQLiteStore"),
    ):
        print(
            f"  {label:<20} {figures[f'{name} visits']:>7,.0f} visits, longest stall"
            f" {figures[f'{name} longest stall ms']:5.2f} ms, slowest save"
            f" {figures[f'{name} slowest save ms']:5.2f} ms"
        )
    verdict = "met" if stall <= STALL_GOAL_MS else "MISSED"
    print(f"  persistent longest stall goal ≤ {STALL_GOAL_MS:g} ms: {verdict}")
    print(
        f"  WAL file at the end {figures['WAL MB']:.1f} MB (its largest: a page per"
        " save between two checkpoints); close (last uses and a checkpoint)"
        f" {figures['close s']:.2f} s"
    )


if __name__ == "__main__":
    main()
