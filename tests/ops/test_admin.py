"""``/admin``: who may see it, the dashboard, and its actions, each asked first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.logger import capturedLogs

from jetforce_sesh import SessionApplication, SQLiteStores
from jetforce_sesh.ops.admin import Admin, fingerprint_prefix, parse_admin_cert, uptime
from jetforce_sesh.server.banner import size
from jetforce_sesh.server.stats import ServerStats
from jetforce_sesh.testing import SessionHarness, fingerprint_of

app = SessionApplication("Tally", entry="/tally")


@attrs.define
class Tally:
    n: int = 0


slab = app.slab(Tally, record_size=16, max_records=100)


@app.session_route("/tally", record=Tally)
def tally(request: Request, record: Tally) -> Response:
    record.n += 1
    return Response(Status.SUCCESS, "text/plain", str(record.n))


@app.session_route("/look", record=Tally)
def look(request: Request, record: Tally) -> Response:
    return Response(Status.SUCCESS, "text/plain", str(record.n))


stats = ServerStats(SessionHarness(SessionApplication()).clock)
Admin([fingerprint_of("root")], [slab], stats).install(app)

ANN = fingerprint_of("ann").hex()


@pytest.fixture
def harness() -> Iterator[SessionHarness]:
    harness = SessionHarness(app)
    stats.clock = harness.clock
    stats.started = harness.clock.seconds()
    yield harness
    app.close(grace=0)


@pytest.mark.parametrize("path", ["/admin", "/admin/drop", "/admin/flush"])
def test_no_certificate_is_60_and_another_one_61(
    harness: SessionHarness, path: str
) -> None:
    none = harness.get(path, player=None)
    other = harness.get(path, player="ann")
    assert [
        (60, "The admin pages need an admin's client certificate"),
        (61, "This certificate is not one of the capsule's admins'"),
    ] == [(none.status, none.meta), (other.status, other.meta)]


def test_the_dashboard_shows_the_server_and_each_slab(harness: SessionHarness) -> None:
    harness.get("/tally", player="ann")
    harness.get("/tally", player="ann")
    stats.answered(20)
    harness.clock.advance(90)
    page = harness.get("/admin", player="root")
    assert (20, "text/gemini") == (page.status, page.meta)
    assert page.lines == [
        "# Admin",
        "",
        "## Server",
        "",
        "* 1 requests (1 2x), 0.00/s over the last minute",
        "* Up 1 min 30 s",
        "",
        "## Slabs",
        "",
        "### Tally (tests.ops.test_admin.Tally)",
        "",
        f"* Records: 1 of 100 (1.0%), {size(slab.store.reserved_bytes)} reserved",  # type: ignore[attr-defined]
        "* Hits 1, misses 1, created 1",
        "* Evicted 0, expired 0, refused 0",
        "* Too large to save 0, handler failures 0, time-outs 0",
        "",
        "## Actions",
        "",
        "=> /admin/drop Drop one player's record",
    ]


def test_dropping_a_record_lists_the_matches_then_asks(
    harness: SessionHarness,
) -> None:
    harness.get("/tally", player="ann")
    harness.get("/tally", player="bob")
    asked = harness.get("/admin/drop", player="root")
    assert (10, "Fingerprint of the player, or its start (hex digits)") == (
        asked.status,
        asked.meta,
    )
    found = harness.get("/admin/drop", player="root", query=ANN[:6].upper())
    assert found.lines == [
        f"# Records of players {ANN[:6]}…",
        "",
        f"=> /admin/drop/tests.ops.test_admin.Tally/{ANN[:16]}"
        f" Tally: {ANN[:16]}…, 5 bytes,"
        " last used 2026-01-01 00:00 UTC",
        "",
        "=> /admin Back to the dashboard",
    ]
    path = f"/admin/drop/tests.ops.test_admin.Tally/{ANN[:16]}"
    confirm = harness.get(path, player="root")
    assert (10, f"Type yes to drop Tally's record of player {ANN[:8]}") == (
        confirm.status,
        confirm.meta,
    )
    assert "2" == harness.get("/tally", player="ann").body  # still there
    with capturedLogs() as events:
        dropped = harness.get(path, player="root", query="yes")
    assert dropped.lines == [
        "# Dropped",
        "",
        f"Tally's record of player {ANN[:8]} is dropped.",
        "",
        "=> /admin Back to the dashboard",
    ]
    assert [("admin drop", "tests.ops.test_admin.Tally", ANN[:8])] == [
        (e["event"], e["slab"], e["player"]) for e in events
    ]
    assert ANN not in repr(events)  # never the whole fingerprint in the log
    again = harness.get(path, player="root", query="yes")
    assert f"Tally's record of player {ANN[:8]} was gone already." == again.lines[2]
    assert ["1", "2"] == [harness.get("/tally", player=p).body for p in ("ann", "bob")]


def test_a_prefix_nobody_has_finds_nothing_and_garbage_is_asked_again(
    harness: SessionHarness,
) -> None:
    harness.get("/tally", player="ann")
    prefix = "0" if not ANN.startswith("0") else "1"
    page = harness.get("/admin/drop", player="root", query=prefix * 10)
    assert f"No player's fingerprint starts with {prefix * 10}." == page.lines[2]
    bad = harness.get("/admin/drop", player="root", query="nobody")
    assert (
        10,
        "'nobody' is not hex digits: give the start of the player's fingerprint,"
        " e.g. 3fa0c2",
    ) == (bad.status, bad.meta)


def test_the_uptime_is_shown_in_its_two_largest_units() -> None:
    assert ["0 s", "45 s", "1 min 30 s", "1 h 0 min", "2 d 3 h"] == [
        uptime(s) for s in (0, 45, 90, 3600 + 59, 2 * 86400 + 3 * 3600 + 125)
    ]


def test_a_fingerprint_or_its_start_in_any_usual_spelling() -> None:
    whole = fingerprint_of("ann")
    assert [ANN, "ab12", "ab12cd", ANN, None, None] == [
        fingerprint_prefix(text)
        for text in (
            "SHA256:" + ANN.upper(),
            "AB12",
            "ab:12:CD",
            parse_admin_cert(whole.hex()).hex(),
            "xyz",
            "",
        )
    ]


def test_an_admin_cert_that_is_no_fingerprint_is_refused_with_the_fix() -> None:
    with pytest.raises(ValueError) as caught:
        parse_admin_cert("admin")
    assert str(caught.value).startswith(
        "--admin-cert 'admin' is not a fingerprint: give the admin's certificate's"
        " SHA-256 fingerprint, e.g. from `openssl x509 -noout -fingerprint -sha256"
        " -in admin.crt` (fingerprint must be"
    )


def test_flushing_needs_persistence(harness: SessionHarness) -> None:
    page = harness.get("/admin/flush", player="root")
    assert (
        51,
        "Records live in memory only (no --state-dir): nothing to write",
    ) == (page.status, page.meta)


def test_flushing_writes_what_the_files_owe_once_asked(tmp_path: Path) -> None:
    harness = SessionHarness(app, stores=SQLiteStores(tmp_path))
    stats.clock = harness.clock
    try:
        harness.get("/tally", player="ann")
        harness.get("/look", player="ann")  # a last-use time to write
        assert (
            "=> /admin/flush Write what the record files still owe"
            == (harness.get("/admin", player="root").lines[-1])
        )
        asked = harness.get("/admin/flush", player="root")
        assert (10, "Type yes to write now what the files of 1 slab(s) owe") == (
            asked.status,
            asked.meta,
        )
        done = harness.get("/admin/flush", player="root", query="yes")
        assert done.lines == [
            "# Written",
            "",
            "1 slab(s) written: 1 last-use times and deletions that were pending.",
            "",
            "=> /admin Back to the dashboard",
        ]
    finally:
        app.close(grace=0)
