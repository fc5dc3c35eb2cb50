"""What a running capsule counts: per slab, and for the server as a whole.

A slab's figures come from two places that already count: its store
(:class:`~jetforce_sesh.stores.contract.StoreStats`: records, hits, evictions...)
and its routes (:class:`~jetforce_sesh.session.slab.SlabStats`: failures,
time-outs...). This module puts them side by side, and counts what only the
server sees: every request, its answer's status class, and the rate over the
last minute, timed on the reactor's clock so a test can drive it with a Clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from jetforce_sesh.server.banner import size
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.contract import ISessionStore

_log = Logger()

#: Seconds the request rate is averaged over.
WINDOW = 60
#: The status classes an answer falls in; "none" is a connection closed before
#: its answer was written.
CLASSES = ("1x", "2x", "3x", "4x", "5x", "6x", "none")


class ServerStats:
    """Requests and answers, counted as the access log writes them."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.started = clock.seconds()
        self.requests = 0
        self.answers = dict.fromkeys(CLASSES, 0)
        # Requests per second of the last WINDOW seconds: slot n holds the
        # count of second s where s % WINDOW == n, and _seconds[n] says which s.
        self._counts = [0] * WINDOW
        self._seconds = [-1] * WINDOW

    def answered(self, status: int) -> None:
        """Count one request and the status it was answered with (0: none)."""
        self.requests += 1
        self.answers[_CLASS_OF.get(status, "none")] += 1
        second = int(self.clock.seconds())
        slot = second % WINDOW
        if self._seconds[slot] != second:
            self._seconds[slot], self._counts[slot] = second, 0
        self._counts[slot] += 1

    def per_second(self) -> float:
        """Requests per second over the last minute (or since start, if shorter)."""
        now = int(self.clock.seconds())
        recent = sum(
            count
            for second, count in zip(self._seconds, self._counts, strict=True)
            if now - WINDOW < second <= now
        )
        span = min(WINDOW, max(1, now - int(self.started) + 1))
        return recent / span


def status_class(status: int) -> str:
    return f"{status // 10}x" if 10 <= status <= 69 else "none"


# Every request is counted: its class looked up, not formatted.
_CLASS_OF = {status: status_class(status) for status in range(10, 70)}


@attrs.frozen
class SlabFigures:
    """One slab's figures, from its store and from its routes."""

    name: str
    title: str
    in_use: int
    capacity: int
    #: Bytes the store holds in this process; None for a store elsewhere.
    reserved: int | None
    hits: int
    misses: int
    creations: int
    evictions: int
    expirations: int
    refusals: int
    too_large: int
    failures: int
    timeouts: int

    @classmethod
    def of(cls, slab: Slab[Any], store: ISessionStore | None = None) -> SlabFigures:
        """The figures of ``slab``, open, or of its ``store`` (closed since)."""
        store = store if store is not None else slab.store
        counted = store.stats()
        mine = slab.stats
        return cls(
            name=slab.name,
            title=slab.title,
            in_use=counted.in_use,
            capacity=counted.capacity,
            reserved=getattr(store, "reserved_bytes", None),
            hits=counted.hits,
            misses=counted.misses,
            creations=counted.creations,
            evictions=counted.evictions,
            expirations=counted.expirations,
            refusals=counted.refusals,
            too_large=mine.too_large,
            failures=mine.failures,
            timeouts=mine.timeouts,
        )

    def line(self) -> str:
        """The figures in one line, for a log."""
        memory = f" ({size(self.reserved)})" if self.reserved is not None else ""
        return (
            f"slab {self.name}: {self.in_use}/{self.capacity} records{memory},"
            f" {self.hits} hits, {self.misses} misses, {self.creations} created,"
            f" {self.evictions} evicted, {self.expirations} expired,"
            f" {self.refusals} refused, {self.too_large} too large,"
            f" {self.failures} failed, {self.timeouts} timed out"
        )


def open_slabs(slabs: Sequence[Slab[Any]]) -> list[Slab[Any]]:
    """Those of ``slabs`` that are open now (a slab closes at shutdown)."""
    return [slab for slab in slabs if slab.is_open]


def server_line(stats: ServerStats) -> str:
    """The server's figures in one line, for a log."""
    answers = ", ".join(
        f"{count} {name}" for name, count in stats.answers.items() if count
    )
    return (
        f"{stats.requests} requests{f' ({answers})' if answers else ''},"
        f" {stats.per_second():.2f}/s over the last minute"
    )


def log_summary(
    stats: ServerStats, figures: Sequence[SlabFigures], event: str = "summary"
) -> None:
    """One line for the server and one per slab, at info level, each with its
    figures as fields for an observer that keeps them (JSON)."""
    _log.info(
        "{event}: {line}",
        event=event,
        line=server_line(stats),
        requests=stats.requests,
        answers=dict(stats.answers),
        per_second=round(stats.per_second(), 2),
    )
    for each in figures:
        _log.info(
            "{event}: {line}", event=event, line=each.line(), **attrs.asdict(each)
        )


class Summaries:
    """``--log-summary SECONDS``: the summary logged every so often."""

    def __init__(
        self, stats: ServerStats, slabs: Sequence[Slab[Any]], every: float
    ) -> None:
        self.stats = stats
        self.slabs = list(slabs)
        self.every = every
        self._loop = LoopingCall(self.log)
        self._loop.clock = stats.clock

    def log(self) -> None:
        log_summary(self.stats, [SlabFigures.of(s) for s in open_slabs(self.slabs)])

    def start(self) -> None:
        if self.every > 0 and not self._loop.running:
            self._loop.start(self.every, now=False)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
