"""What a running capsule counts, on a Clock: requests, answers, rates, slabs."""

from __future__ import annotations

from collections.abc import Iterator

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.logger import LogLevel, capturedLogs

from jetforce_sesh import SessionApplication
from jetforce_sesh.server.stats import (
    ServerStats,
    SlabFigures,
    Summaries,
    log_summary,
    server_line,
    status_class,
)
from jetforce_sesh.testing import SessionHarness

app = SessionApplication("Tally", entry="/tally")


@attrs.define
class Tally:
    n: int = 0


slab = app.slab(Tally, record_size=16, max_records=2, on_full="refuse")


@app.session_route("/tally", record=Tally)
def tally(request: Request, record: Tally) -> Response:
    record.n += 1
    return Response(Status.SUCCESS, "text/plain", str(record.n))


@app.session_route("/look", record=Tally)
def look(request: Request, record: Tally) -> Response:
    return Response(Status.SUCCESS, "text/plain", str(record.n))


@app.session_route("/broken", record=Tally)
def broken(request: Request, record: Tally) -> Response:
    raise RuntimeError("a bug")


@pytest.fixture
def harness() -> Iterator[SessionHarness]:
    harness = SessionHarness(app)
    yield harness
    app.close(grace=0)


def test_answers_are_counted_by_status_class() -> None:
    stats = ServerStats(SessionHarness(SessionApplication()).clock)
    for status in (20, 20, 10, 44, 51, 60, 0):
        stats.answered(status)
    assert (7, {"1x": 1, "2x": 2, "3x": 0, "4x": 1, "5x": 1, "6x": 1, "none": 1}) == (
        stats.requests,
        stats.answers,
    )
    assert ["none", "none", "6x"] == [status_class(s) for s in (0, 70, 69)]


def test_the_rate_is_over_the_last_minute_on_the_clock() -> None:
    clock = SessionHarness(SessionApplication()).clock
    stats = ServerStats(clock)
    for _ in range(30):
        stats.answered(20)
    assert 30.0 == stats.per_second()  # in the first second: 30 in 1 s
    clock.advance(59)
    for _ in range(30):
        stats.answered(20)
    assert 1.0 == stats.per_second()  # 60 in the last 60 s
    clock.advance(1)
    assert 0.5 == stats.per_second()  # the first 30 are older than a minute
    clock.advance(60)
    assert (0.0, "60 requests (60 2x), 0.00/s over the last minute") == (
        stats.per_second(),
        server_line(stats),
    )


def test_a_slab_s_figures_come_from_its_store_and_its_routes(
    harness: SessionHarness,
) -> None:
    harness.get("/tally", player="ann")
    harness.get("/tally", player="ann")
    harness.get("/look", player="bob")
    harness.get("/tally", player="cat")
    assert 41 == harness.get("/tally", player="dan").status  # full, refused
    assert 42 == harness.get("/broken", player="ann").status
    figures = SlabFigures.of(slab)
    assert (
        SlabFigures(
            name="tests.server.test_stats.Tally",
            title="Tally",
            in_use=2,
            capacity=2,
            reserved=figures.reserved,
            hits=2,
            misses=4,
            creations=2,
            evictions=0,
            expirations=0,
            refusals=1,
            too_large=0,
            failures=1,
            timeouts=0,
        )
        == figures
    )
    assert figures.reserved is not None and figures.reserved > 2 * 16
    assert figures.line().startswith(
        "slab tests.server.test_stats.Tally: 2/2 records ("
    ) and figures.line().endswith(
        ", 2 hits, 4 misses, 2 created, 0 evicted, 0 expired, 1 refused,"
        " 0 too large, 1 failed, 0 timed out"
    )


def test_the_summary_logs_one_line_each_with_its_figures_as_fields(
    harness: SessionHarness,
) -> None:
    stats = ServerStats(harness.clock)
    stats.answered(20)
    with capturedLogs() as events:
        log_summary(stats, [SlabFigures.of(slab)])
    assert [LogLevel.info, LogLevel.info] == [e["log_level"] for e in events]
    assert (
        "summary",
        1,
        {"1x": 0, "2x": 1, "3x": 0, "4x": 0, "5x": 0, "6x": 0, "none": 0},
    ) == (events[0]["event"], events[0]["requests"], events[0]["answers"])
    assert ("tests.server.test_stats.Tally", 0) == (
        events[1]["name"],
        events[1]["in_use"],
    )


def test_summaries_come_every_interval_and_stop(harness: SessionHarness) -> None:
    summaries = Summaries(ServerStats(harness.clock), [slab], every=300)
    with capturedLogs() as events:
        summaries.start()
        harness.clock.advance(299)
        assert [] == events
        harness.clock.advance(1)
        assert 2 == len(events)
        summaries.stop()
        harness.clock.advance(600)
        assert 2 == len(events)
    assert [] == harness.clock.getDelayedCalls()


def test_no_summaries_unless_asked_for(harness: SessionHarness) -> None:
    summaries = Summaries(ServerStats(harness.clock), [slab], every=0)
    summaries.start()
    assert [] == harness.clock.getDelayedCalls()
