"""``python -m benchmarks.stall``: does reading across players stall the server?

The hall of fame ranks every record of two games and the pet census reads every
pet. With a million records per slab, reading them all takes seconds of CPU; done
at once, it would freeze every other request for that long. This benchmark fills
the demo capsule's slabs, runs the real reactor, and while a ranking or a census
runs, or while players view the hall of fame 500 times a second (which ranks at
most once a second, however many view it), it measures:

- the longest stall: a probe asks to run every millisecond, and the worst delay
  between when it asked and when it ran is the longest time the reactor was busy
  with something else;
- the p50 and p99 of other requests (the visit counter, called through the
  application every two milliseconds): from when each was due to when its
  answer was ready;
- how long the whole read took, wall clock.

The goal is a longest stall of at most 5 ms at 1,000,000 records, judged on the
reactor thread's CPU time (see :class:`Ticker`); the wall-clock stall is shown
beside it.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred

from jetforce_sesh import Slab, SlabOptions
from jetforce_sesh.games import counter, guess, halloffame, hangman, pet
from jetforce_sesh.stores import ANY_VERSION, MemoryStore
from jetforce_sesh.testing import make_environ

GOAL_MS = 5.0
reactor: Any = _reactor


def fill(slab: Slab[Any], count: int, records: Sequence[object]) -> None:
    """``count`` records in ``slab``, cycling through ``records``."""
    store = slab.store
    assert isinstance(store, MemoryStore)
    encoded = [slab.codec.encode(record) for record in records]
    for number in range(count):
        key = number.to_bytes(32, "big")
        store.save_now(key, encoded[number % len(encoded)], ANY_VERSION)


def samples() -> dict[Slab[Any], list[object]]:
    return {
        guess.slab: [
            guess.GuessRecord(played=5 + n % 9, total=(5 + n % 9) * (3 + n % 5))
            for n in range(97)
        ],
        hangman.slab: [
            hangman.HangmanRecord(wins=n % 23, losses=n % 7) for n in range(97)
        ],
        pet.slab: [
            pet.Pet(born=1.0e9, updated=1.0e9 + n, hunger=float(n % 90))
            for n in range(97)
        ],
    }


class Ticker:
    """Asks to run ``every`` seconds; remembers how late each run began, on the
    wall clock and in the reactor thread's CPU time.

    On a shared machine the wall-clock delay also counts time the whole process
    was not running (another process had the CPU); the CPU time the reactor
    thread spent meanwhile counts only what it did instead of running this: the
    stall the code under test caused.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self.late: list[float] = []
        self.busy: list[float] = []
        self.due = 0.0
        self.asked_cpu = 0.0
        self.call: Any = None

    def start(self) -> None:
        self.due = time.perf_counter() + self.every
        self.asked_cpu = time.thread_time()
        self.call = reactor.callLater(self.every, self._tick)

    def _tick(self) -> None:
        self.busy.append(time.thread_time() - self.asked_cpu)
        self.run()
        self.late.append(max(0.0, time.perf_counter() - self.due))
        self.due = time.perf_counter() + self.every
        self.asked_cpu = time.thread_time()
        self.call = reactor.callLater(self.every, self._tick)

    def run(self) -> None:
        """What to do at each tick (nothing: a probe of the reactor alone)."""

    def stop(self) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()


class Visitors(Ticker):
    """The visit counter, requested every ``every`` seconds by many players; a
    request's latency is from when it was due to when its answer was ready."""

    def __init__(self, every: float = 0.002) -> None:
        super().__init__(every)
        self.environs = [make_environ("/counter", player=f"v{n}") for n in range(500)]
        self.count = 0

    def run(self) -> None:
        environ = dict(self.environs[self.count % len(self.environs)])
        self.count += 1
        for _ in counter.app(environ, lambda status, meta: None):
            pass


def measure(name: str, task: Callable[[], Deferred[Any]]) -> Deferred[dict[str, float]]:
    """Run ``task`` with the probe and the visitors going; their figures."""
    probe, visitors = Ticker(0.001), Visitors()
    probe.start()
    visitors.start()
    started = time.perf_counter()
    done: Deferred[dict[str, float]] = Deferred()

    def finished(_: object) -> None:
        took = time.perf_counter() - started
        probe.stop()
        visitors.stop()
        ms = sorted(1000 * t for t in visitors.late)
        done.callback(
            {
                "longest stall ms": 1000 * max(probe.late, default=0.0),
                "longest busy ms": 1000 * max(probe.busy, default=0.0),
                "requests": len(ms),
                "request p50 ms": statistics.median(ms) if ms else float("nan"),
                "request p99 ms": ms[int(0.99 * (len(ms) - 1))] if ms else float("nan"),
                "read took s": took,
            }
        )

    task().addCallback(finished)
    return done


class FameViewers(Ticker):
    """``/halloffame``, viewed every ``every`` seconds by many players, through
    the application as the server calls it; a view's latency is from when it
    was due to when its page was ready."""

    def __init__(self, every: float = 0.002) -> None:
        super().__init__(every)
        self.environs = [
            make_environ("/halloffame", player=f"f{n}") for n in range(500)
        ]
        self.count = 0
        self.answered: list[float] = []

    def run(self) -> None:
        due = self.due
        environ = dict(self.environs[self.count % len(self.environs)])
        self.count += 1

        def ready(_: object = None) -> None:
            self.answered.append(time.perf_counter() - due)

        for part in halloffame.app(environ, lambda status, meta: None):
            if isinstance(part, Deferred):
                part.addCallback(ready)
            else:
                ready()


def views(seconds: float = 3.0) -> Deferred[dict[str, float]]:
    """Players view the hall of fame for ``seconds``; the probe's longest stall,
    the views' latencies, and how many rankings were read meanwhile."""
    probe, viewers = Ticker(0.001), FameViewers()
    readings = halloffame.standings.readings
    probe.start()
    viewers.start()
    done: Deferred[dict[str, float]] = Deferred()

    def finished() -> None:
        probe.stop()
        viewers.stop()
        ms = sorted(1000 * t for t in viewers.answered)
        done.callback(
            {
                "longest stall ms": 1000 * max(probe.late, default=0.0),
                "longest busy ms": 1000 * max(probe.busy, default=0.0),
                "requests": len(ms),
                "request p50 ms": statistics.median(ms) if ms else float("nan"),
                "request p99 ms": ms[int(0.99 * (len(ms) - 1))] if ms else float("nan"),
                "read took s": seconds,
                "rankings": halloffame.standings.readings - readings,
                "ranking under way": float(halloffame.standings.waiting is not None),
            }
        )

    reactor.callLater(seconds, finished)
    return done


def ranking() -> Deferred[Any]:
    halloffame.standings.taken_at = float("-inf")  # stale: read everything again
    return Deferred.fromCoroutine(halloffame.standings.current())


def census() -> Deferred[Any]:
    return Deferred.fromCoroutine(pet.census.count())


def run(records: int, seconds: float = 3.0) -> dict[str, dict[str, float]]:
    from jetforce_sesh import app

    app.open(reactor, SlabOptions(max_records=records))
    counter.app.open(reactor, SlabOptions(max_records=1000))
    started = time.perf_counter()
    for slab, examples in samples().items():
        fill(slab, records, examples)
    took = time.perf_counter() - started
    print(f"filled 3 slabs of {records:,} records in {took:.0f} s")
    gc.collect()
    results: dict[str, dict[str, float]] = {}

    def go() -> Deferred[Any]:
        chain: Deferred[Any] = measure("hall of fame ranking", ranking)
        chain.addCallback(lambda r: results.__setitem__("hall of fame ranking", r))
        chain.addCallback(lambda _: measure("pet census", census))
        chain.addCallback(lambda r: results.__setitem__("pet census", r))
        chain.addCallback(lambda _: views(seconds))
        chain.addCallback(lambda r: results.__setitem__("hall of fame views", r))
        chain.addBoth(lambda _: reactor.stop())
        return chain

    reactor.callWhenRunning(go)
    reactor.run()
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stall",
        description="Measure the longest reactor stall while a ranking or a census"
        " reads every record.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="Records in each slab read"
    )
    parser.add_argument(
        "--views-seconds",
        type=float,
        default=3.0,
        help="How long players view the hall of fame, 500 times a second",
    )
    args = parser.parse_args(argv)
    results = run(args.records, args.views_seconds)
    print(f"Reading across players, {args.records:,} records per slab:")
    for name, figures in results.items():
        stall, busy, p50, p99 = (
            figures["longest stall ms"],
            figures["longest busy ms"],
            figures["request p50 ms"],
            figures["request p99 ms"],
        )
        verdict = "met" if busy <= GOAL_MS else "MISSED"
        what = (
            f"views p50 {p50:.2f} ms, p99 {p99:.2f} ms over {figures['requests']:.0f}"
            f" in {figures['read took s']:g} s; {figures['rankings']:.0f}"
            f" ranking{'' if figures['rankings'] == 1 else 's'} read"
            + (" (and one under way)" if figures["ranking under way"] else "")
            if "rankings" in figures
            else f"other requests p50 {p50:.2f} ms, p99 {p99:.2f} ms over"
            f" {figures['requests']:.0f}; read took {figures['read took s']:.1f} s"
        )
        print(
            f"  {name:<20} longest stall {stall:6.2f} ms, of it the reactor busy"
            f" {busy:5.2f} ms (goal ≤ {GOAL_MS:g} ms: {verdict}); {what}"
        )


if __name__ == "__main__":
    main()
