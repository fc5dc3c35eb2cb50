"""A record a request is using stays: neither the idle sweep nor an eviction
drops it under a handler that waits, on any store in this process; and a record
the handler read that went away anyway (deleted elsewhere) is never replaced by
a fresh one behind the player's back.

The first two are ``sweep_drops_record_in_use.py``: the handler used to run
again on a new record and answer ``20 count=1`` to a player at 5.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.task import Clock, deferLater
from twisted.logger import capturedLogs

from jetforce_sesh import SessionApplication, SlabOptions, memory_stores
from jetforce_sesh.stores.contract import StoreFactory
from jetforce_sesh.stores.sqlite.store import SQLiteStores
from jetforce_sesh.testing import (
    START,
    Page,
    SessionHarness,
    fingerprint_of,
    later_stores,
)


@attrs.define
class Tally:
    count: int = 0


def slow_app(runs: list[int], seconds: float = 12) -> SessionApplication:
    app = SessionApplication("slow")
    app.slab(Tally, record_size=32)

    @app.session_route("/tap", record=Tally)
    def tap(request: Request, record: Tally) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count={record.count}")

    @app.session_route("/think", record=Tally)
    async def think(request: Request, record: Tally) -> Response:
        runs.append(record.count)
        clock = app.slabs[Tally].clock
        await deferLater(clock, seconds, lambda: None)  # within its 30 s limit
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count={record.count}")

    return app


@pytest.fixture(params=["memory", "later", "sqlite"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        yield memory_stores
    elif request.param == "later":
        yield later_stores(0.5)
    else:
        made = SQLiteStores(tmp_path / "state")
        yield made
        made.directory.release()


def new_clock() -> Clock:
    clock = Clock()
    clock.advance(START)
    return clock


def settle(harness: SessionHarness, path: str, player: str = "player") -> Page:
    pages: list[Page] = []
    harness.request(path, player=player).addCallback(pages.append)
    for _ in range(20):
        if pages:
            break
        harness.clock.advance(0.5)
    return pages[0]


def test_the_sweep_passes_over_the_record_of_a_request_still_running(
    stores: StoreFactory,
) -> None:
    runs: list[int] = []
    app = slow_app(runs)
    harness = SessionHarness(
        app, clock=new_clock(), defaults=SlabOptions(idle_timeout=10), stores=stores
    )
    harness.clock.advance(1)
    for _ in range(5):
        settle(harness, "/tap")
    runs.clear()
    pages: list[Page] = []
    harness.request("/think").addCallback(pages.append)
    for _ in range(40):
        harness.clock.advance(1)  # sweeps at every 5 s: the read was at 0
    assert ([Page(20, "text/plain", "count=6")], [5]) == (pages, runs)
    app.close(grace=0)
    harness.clock.advance(1)


def test_an_eviction_passes_over_the_record_of_a_request_still_running(
    stores: StoreFactory,
) -> None:
    """The least recently used record is the one whose request runs longest:
    the next one is evicted instead."""
    runs: list[int] = []
    app = slow_app(runs)
    harness = SessionHarness(
        app,
        clock=new_clock(),
        defaults=SlabOptions(max_records=2, on_full="evict"),
        stores=stores,
    )
    harness.clock.advance(1)
    for _ in range(5):
        settle(harness, "/tap", "ann")
    runs.clear()
    pages: list[Page] = []
    harness.request("/think", player="ann").addCallback(pages.append)
    harness.clock.advance(1)
    assert "count=1" == settle(harness, "/tap", "bob").body
    assert "count=1" == settle(harness, "/tap", "cid").body  # the slab is full
    for _ in range(40):
        harness.clock.advance(1)
    assert ([Page(20, "text/plain", "count=6")], [5]) == (pages, runs)
    slab = app.slabs[Tally]
    assert "count=1" == settle(harness, "/tap", "bob").body  # bob made room
    assert 1 <= slab.store.stats().evictions
    app.close(grace=0)
    harness.clock.advance(1)


def test_a_record_idle_when_its_player_comes_back_expires_as_ever() -> None:
    """Holding the turn is not using the record: a player away longer than the
    idle timeout starts afresh, sweep or no sweep."""
    app = slow_app([])
    harness = SessionHarness(app, defaults=SlabOptions(idle_timeout=200))
    harness.get("/tap")
    harness.clock.advance(200)  # sweeps every 60 s: none has seen it idle yet
    assert "count=1" == harness.get("/tap").body


def test_a_record_deleted_under_a_request_is_not_replaced_by_a_fresh_one() -> None:
    """The admin deletes the record while the move waits; the save conflicts.
    Running the move again on a new record would answer 20 with the player's
    progress gone: the player is told instead, and nothing is kept."""
    runs: list[int] = []
    app = slow_app(runs, seconds=2)
    harness = SessionHarness(app)
    for _ in range(5):
        harness.get("/tap")
    runs.clear()
    pages: list[Page] = []
    harness.request("/think").addCallback(pages.append)
    slab = app.slabs[Tally]
    player = fingerprint_of("player")
    slab.drop(player)
    with capturedLogs() as events:
        harness.clock.advance(2)
    assert [
        Page(
            40,
            "Your game changed elsewhere while this request was played; nothing of"
            " it was kept: try again",
            "",
        )
    ] == pages
    assert ([5], None, 1) == (runs, slab.peek_now(player), slab.stats.vanished)
    assert [
        f"slab {slab.name}: the record of player {player[:4].hex()} went away"
        " while a request used it; nothing was kept"
    ] == [e["log_format"].format(**e) for e in events if e.get("event") == "vanished"]
    assert "count=1" == harness.get("/tap").body  # and the player sees it start anew


def test_a_held_key_is_let_go_whatever_the_request_ends_with() -> None:
    runs: list[int] = []
    app = slow_app(runs, seconds=2)
    harness = SessionHarness(app)
    harness.get("/tap")
    opened = app.slabs[Tally].opened
    harness.request("/think")
    assert {fingerprint_of("player")} == opened.turns.in_use
    harness.clock.advance(2)
    assert set() == opened.turns.in_use
    harness.get("/tap")
    assert set() == opened.turns.in_use
