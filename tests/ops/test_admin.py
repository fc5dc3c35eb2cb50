"""``/admin``: who may see it, the dashboard, and its actions, each asked first."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.logger import capturedLogs

from jetforce_sesh import SessionApplication, SQLiteStores, use_accounts
from jetforce_sesh.ops.admin import Admin, fingerprint_prefix, parse_admin_cert, uptime
from jetforce_sesh.server.banner import size
from jetforce_sesh.server.stats import ServerStats
from jetforce_sesh.session.route import ENVIRON_SECRET
from jetforce_sesh.stores import ANY_VERSION, MemoryStore
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of, make_environ
from tests.accounts.support import link, revoke
from tests.confirming import asked_at
from tests.support import REPO

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
Admin([fingerprint_of("root"), fingerprint_of("root2")], [slab], stats).install(app)

ANN = fingerprint_of("ann").hex()


@attrs.define
class Count:
    n: int = 0


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
        f" Tally: records of player {ANN[:16]}…, 5 bytes,"
        " last used 2026-01-01 00:00 UTC",
        "",
        "=> /admin Back to the dashboard",
    ]
    path = f"/admin/drop/tests.ops.test_admin.Tally/{ANN[:16]}"
    at = asked_at(harness, path, player="root")
    confirm = harness.get(at, player="root")
    assert (10, f"Type yes to drop Tally's record of player {ANN[:8]}") == (
        confirm.status,
        confirm.meta,
    )
    assert "2" == harness.get("/tally", player="ann").body  # still there
    at = asked_at(harness, path, player="root")
    kept = harness.get(at, player="root", query="no")
    assert (
        f"Tally's record of player {ANN[:8]} is kept: the answer was not yes."
        == (kept.lines[2])
    )
    with capturedLogs() as events:
        dropped = harness.get(at, player="root", query="yes")
    assert dropped.lines == [
        "# Dropped",
        "",
        f"Tally's record of player {ANN[:8]} is dropped.",
        "",
        "=> /admin Back to the dashboard",
    ]
    root = fingerprint_of("root").hex()[:8]
    assert [
        (
            f"admin {root} dropped Tally's record of player {ANN[:8]}",
            "admin drop",
            "tests.ops.test_admin.Tally",
            ANN[:8],
            root,
        )
    ] == [
        (e["log_format"].format(**e), e["event"], e["slab"], e["player"], e["admin"])
        for e in events
    ]
    assert ANN not in repr(events)  # never the whole fingerprint in the log
    again = harness.get(path, player="root", query="yes")
    assert f"Tally's record of player {ANN[:8]} was gone already." == again.lines[2]
    assert ["1", "2"] == [harness.get("/tally", player=p).body for p in ("ann", "bob")]


def test_no_admin_link_from_elsewhere_drops_or_writes_anything(
    harness: SessionHarness, tmp_path: Path
) -> None:
    """``admin_prefilled_confirm_and_labels.py`` A: ``/admin/drop/...?yes``,
    another admin's link, or a link made for another record: a 30 to the
    admin's own link, which asks; nothing is dropped."""
    harness.get("/tally", player="ann")
    path = f"/admin/drop/tests.ops.test_admin.Tally/{ANN[:16]}"
    theirs = asked_at(harness, path, player="root2")
    for url in (path, path + "/", path + "/" + "a" * 16, theirs):
        page = harness.get(url, player="root", query="yes")
        assert 30 == page.status, (url, page)
    harness.get("/tally", player="ann")  # the record changes: a link made before
    stale = harness.get(asked_at(harness, path, player="root"), player="root")
    assert 10 == stale.status
    assert "3" == harness.get("/tally", player="ann").body


def test_the_search_query_stays_out_of_the_access_log(harness: SessionHarness) -> None:
    environ = make_environ("/admin/drop", player="root", query=ANN)
    list(app(environ, lambda status, meta: None))
    assert environ[ENVIRON_SECRET]
    environ = make_environ("/admin/drop", player="ann", query=ANN)
    list(app(environ, lambda status, meta: None))
    assert environ[ENVIRON_SECRET]  # even when refused


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
        "That is not hex digits: give the start of the player's fingerprint,"
        " e.g. 3fa0c2",
    ) == (bad.status, bad.meta)


def test_the_search_reads_a_slice_per_turn_of_the_reactor() -> None:
    """2,000 records (and the players' own) are read in 8 slices of 256, one
    per turn of the reactor: requests in between are served at once."""
    big = SessionApplication("big")
    many = big.slab(Count, record_size=16, max_records=4000)

    @big.session_route("/count", record=Count)
    def count(request: Request, record: Count) -> Response:
        record.n += 1
        return Response(Status.SUCCESS, "text/plain", str(record.n))

    Admin([fingerprint_of("root")], [many], stats).install(big)
    harness = SessionHarness(big)
    store = many.store
    assert isinstance(store, MemoryStore)
    for n in range(2000):
        key = n.to_bytes(32, "big")
        store.save_now(key, many.codec.encode(Count(n)), ANY_VERSION)
    reads: list[int] = []
    listing = store.records_now

    def counted(cursor: str | None = None, limit: int = 256) -> Any:
        reads.append(limit)
        return listing(cursor, limit)

    store.records_now = counted  # type: ignore[method-assign]
    pages: list[Page] = []
    harness.request("/admin/drop", player="root", query="ff").addCallback(pages.append)
    # One slice read, then the reactor's turn: another request is served.
    assert ([], [256]) == (pages, reads)
    assert "1" == harness.get("/count", player="meanwhile").body
    harness.clock.advance(0)
    assert [256] * 8 == reads  # 2,001 records, 256 a turn
    assert "No player's fingerprint starts with ff." == pages[0].lines[2]


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
        prefilled = harness.get("/admin/flush", player="root", query="yes")
        assert 30 == prefilled.status  # a link from elsewhere writes nothing
        at = asked_at(harness, "/admin/flush", player="root")
        asked = harness.get(at, player="root")
        assert (10, "Type yes to write now what the files of 1 slab(s) owe") == (
            asked.status,
            asked.meta,
        )
        with capturedLogs() as events:
            done = harness.get(at, player="root", query="yes")
        root = fingerprint_of("root").hex()[:8]
        assert [f"admin {root} flushed 1 slab(s): 1 rows written"] == [
            e["log_format"].format(**e) for e in events
        ]
        assert done.lines == [
            "# Written",
            "",
            "1 slab(s) written: 1 last-use times and deletions that were pending.",
            "",
            "=> /admin Back to the dashboard",
        ]
    finally:
        app.close(grace=0)


fleet = SessionApplication("Fleet")


@attrs.define
class Trips:
    n: int = 0


fleet.slab(Trips, name="trips", record_size=16)


@fleet.session_route("/trip", record=Trips)
def trip(request: Request, record: Trips) -> Response:
    record.n += 1
    return Response(Status.SUCCESS, "text/plain", str(record.n))


fleet_accounts = use_accounts(fleet)
fleet_stats = ServerStats(SessionHarness(SessionApplication()).clock)
Admin([fingerprint_of("root")], list(fleet.slabs.values()), fleet_stats).install(fleet)


def answered(
    harness: SessionHarness, path: str, player: str, query: str | None = None
) -> Page:
    """The page for ``path``, once the search's slices have been read."""
    pages: list[Page] = []
    harness.request(path, player=player, query=query).addCallback(pages.append)
    harness.clock.advance(0)
    return pages[0]


def test_cleaning_up_a_revoked_certificate_cannot_let_it_back_in() -> None:
    """``admin_prefilled_confirm_and_labels.py`` B: the lost phone named the
    account and was revoked from the laptop. The admin's search for it labels
    each row; the rows that would let it back in, or strand the laptop, are
    refused; after dropping the others, the phone still plays apart."""
    harness = SessionHarness(fleet)
    fleet_stats.clock = harness.clock
    for _ in range(4):
        harness.get("/trip", player="lost")
    link(harness, "lost", "laptop")
    revoke(harness, "lost", by="laptop")
    assert "1" == harness.get("/trip", player="lost").body
    lost = fingerprint_of("lost").hex()
    member = fleet_accounts.members.peek_now(fingerprint_of("lost"))
    assert member is not None
    fresh = member.account.hex()
    found = answered(harness, "/admin/drop", "root", lost[:8])
    rows = sorted(
        (line.split()[1], line.split(" ", 2)[2].rsplit(", ", 2)[0])
        for line in found.lines
        if line.startswith("=> /admin/drop/")
    )
    assert sorted(
        [
            (f"/admin/drop/accounts/{lost[:16]}", f"Accounts: account {lost[:16]}…"
             " and its list of 1 certificate(s)"),
            (f"/admin/drop/accounts.limits/{lost[:16]}",
             f"Accounts: counts of codes: {lost[:16]}…"),
            (f"/admin/drop/accounts.certificates/{lost[:16]}",
             f"Accounts: certificate links: certificate {lost[:16]}… linked to"
             f" account {fresh[:16]}…"),
            (f"/admin/drop/accounts.revoked/{lost[:16]}",
             f"Accounts: revoked first certificates: certificate {lost[:16]}…,"
             " revoked from its account"),
            (f"/admin/drop/trips/{lost[:16]}",
             f"Fleet: records of account {lost[:16]}…, played by 1 certificate"),
        ]
    ) == rows  # fmt: skip
    outcomes = {}
    for path, _ in rows:
        page = answered(harness, path, "root")
        if page.status == 30:
            page = answered(harness, page.meta, "root", "yes")
        outcomes[path.split("/")[3]] = page.lines[0]
    assert {
        "accounts": "# Not dropped",
        "accounts.certificates": "# Dropped",
        "accounts.limits": "# Dropped",
        "accounts.revoked": "# Not dropped",
        "trips": "# Dropped",
    } == outcomes
    # The phone plays its fresh account (one trip so far), the laptop the
    # account (whose trips the admin dropped): apart.
    assert ["1", "2", "3", "2"] == [
        harness.get("/trip", player=p).body
        for p in ("laptop", "lost", "lost", "laptop")
    ]


@pytest.mark.e2e
def test_the_admin_stall_benchmark_runs_on_the_real_reactor() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.stall_admin", "--records", "2000"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert 0 == result.returncode, result.stderr
    lines = result.stdout.splitlines()
    assert "Admin drop search, 3 slabs of 2,000 records:" in lines
    assert 2 == sum("longest slice" in line for line in lines)
