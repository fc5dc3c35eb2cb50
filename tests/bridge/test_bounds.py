"""The bridge under clients that misbehave, on a Clock: pipelined messages,
writes outside their turn, too many connections, chains of holds, records
that are not the layout's own bytes, and certificates past their dates.

Each refusal is checked word for word: it is what the CGI program shows."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from jetforce.app.base import Request, Response, Status

import sesh_bridge as wire
from jetforce_sesh import SessionApplication
from jetforce_sesh.bridge.limits import BridgeLimits
from jetforce_sesh.bridge.protocol import BridgeFactory
from jetforce_sesh.bridge.service import bridged
from jetforce_sesh.bridge.turn import HOLD_TIMEOUT
from jetforce_sesh.errors import ConfigError
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.testing import SessionHarness, fingerprint_of
from tests.bridge.protocol_support import (
    HASH,
    PAIR,
    VERSION,
    Client,
    app,
    factory_of,
    found,
    version_of,
)

ALICE = HASH.encode()
BOB = fingerprint_of("bob").hex().encode()


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app, defaults=SlabOptions(max_queued=2))


@pytest.fixture
def factory(harness: SessionHarness) -> Iterator[BridgeFactory]:
    made = factory_of(app, harness.clock)
    yield made
    made.doStop()


def selected(factory: BridgeFactory, **peer: Any) -> Client:
    client = Client(factory, **peer)
    assert b"K" == client.select()
    return client


def cas(player: bytes, expected: int, count: int, ever: int = 0) -> bytes:
    return cas_of(player, expected, PAIR.pack(count, ever))


def cas_of(player: bytes, expected: int, record: bytes) -> bytes:
    return (
        wire.COMPARE_AND_SET
        + VERSION.pack(expected)
        + bytes([len(player)])
        + player
        + record
    )


def frame(message: bytes) -> bytes:
    return struct.pack("!I", len(message)) + message


# -- one request at a time -------------------------------------------------------


def test_requests_sent_before_the_reply_to_the_last_are_refused(
    factory: BridgeFactory,
) -> None:
    """A SELECT may go ahead of the first request; a second request in the same
    read was sent before its client could read the first reply."""
    client = Client(factory)
    select = wire.SELECT + struct.pack("!I", 16) + b"visits"
    client.protocol.dataReceived(
        frame(select) + frame(wire.PEEK + ALICE) + frame(wire.PEEK + ALICE)
    )
    assert [
        b"K",
        found(0, 0),
        b"Ea message before the reply to the last: send one at a time",
    ] == client.replies()
    assert client.closed


def test_a_request_after_two_selects_is_refused(factory: BridgeFactory) -> None:
    client = Client(factory)
    select = frame(wire.SELECT + struct.pack("!I", 16) + b"visits")
    client.protocol.dataReceived(select + select + frame(wire.PEEK + ALICE))
    assert [
        b"K",
        b"K",
        b"Ea message before the reply to the last: send one at a time",
    ] == client.replies()


def test_a_request_split_across_reads_is_one_request(factory: BridgeFactory) -> None:
    client = selected(factory)
    message = frame(wire.PEEK + ALICE)
    client.protocol.dataReceived(message[:7])
    assert [] == client.replies()
    client.protocol.dataReceived(message[7:])
    assert [found(0, 0)] == client.replies()
    assert [found(0, 0)] == [client.ask(wire.PEEK + ALICE)]


# -- turns as documented ---------------------------------------------------------


def test_an_update_after_a_peek_writes_nothing_and_gets_the_record_there_now(
    factory: BridgeFactory,
) -> None:
    writer = selected(factory)
    version = version_of(writer.ask(cas(ALICE, 0, 4, 4)))
    client = selected(factory)
    assert found(version, 4, 4) == client.ask(wire.PEEK + ALICE)
    assert b"X" + VERSION.pack(version) + PAIR.pack(4, 4) == client.ask(
        wire.UPDATE + PAIR.pack(9, 9)
    )
    assert found(version, 4, 4) == client.ask(wire.PEEK + ALICE)


def test_an_update_after_the_turn_ended_writes_nothing(factory: BridgeFactory) -> None:
    client = selected(factory)
    client.ask(wire.LOOKUP + ALICE)
    first = client.ask(wire.UPDATE + PAIR.pack(1, 1))
    # The write ended the turn; so did the RELEASE after the second LOOKUP.
    assert b"X" + first[1:] + PAIR.pack(1, 1) == client.ask(
        wire.UPDATE + PAIR.pack(2, 2)
    )
    client.ask(wire.LOOKUP + ALICE)
    client.ask(wire.RELEASE)
    assert b"X" + first[1:] + PAIR.pack(1, 1) == client.ask(
        wire.UPDATE + PAIR.pack(3, 3)
    )


def test_a_late_update_cannot_land_inside_the_next_holders_turn(
    factory: BridgeFactory, harness: SessionHarness
) -> None:
    """The turn of a slow client runs out and another takes it: the slow one's
    UPDATE gets X, and the holder's own UPDATE is stored. (The holder is of
    another user: the slow one's user has spent its hold budget.)"""
    slow, holder = selected(factory), selected(factory, uid=1001)
    slow.ask(wire.LOOKUP + ALICE)
    harness.clock.pump([1.0] * int(HOLD_TIMEOUT))
    assert found(0, 0) == holder.ask(wire.LOOKUP + ALICE)
    assert b"X" + VERSION.pack(0) + PAIR.pack(0, 0) == slow.ask(
        wire.UPDATE + PAIR.pack(999, 999)
    )
    written = holder.ask(wire.UPDATE + PAIR.pack(1, 1))
    assert b"K" == written[:1]
    assert found(version_of(written), 1, 1) == slow.ask(wire.PEEK + ALICE)


def test_a_compare_and_set_waits_for_the_turn_another_holds(
    factory: BridgeFactory,
) -> None:
    holder, other = selected(factory), selected(factory)
    holder.ask(wire.LOOKUP + ALICE)
    other.send(cas(ALICE, 0, 7, 7))
    assert [] == other.replies()
    mine = holder.ask(wire.UPDATE + PAIR.pack(1, 1))
    assert b"K" == mine[:1]
    # Then the compare-and-set, on the version it named: the record moved.
    assert [b"X" + mine[1:] + PAIR.pack(1, 1)] == other.replies()


def test_a_delete_waits_for_the_turn_an_in_process_request_holds(
    factory: BridgeFactory, harness: SessionHarness
) -> None:
    client = selected(factory)
    pages: list[Any] = []
    holder = selected(factory)
    holder.ask(wire.LOOKUP + ALICE)
    harness.request("/visit", player="alice").addCallback(pages.append)
    client.send(wire.DELETE + VERSION.pack(wire.ANY_VERSION) + ALICE)
    holder.ask(wire.RELEASE)
    # In arrival order: the visit, then the delete of what it wrote.
    assert ["1"] == [page.body for page in pages]
    assert [b"K\x01"] == client.replies()
    assert "1" == harness.get("/visit", player="alice").body


def test_a_write_of_another_player_ends_the_turn_held(
    factory: BridgeFactory, harness: SessionHarness
) -> None:
    client = selected(factory)
    client.ask(wire.LOOKUP + ALICE)
    assert b"K" == client.ask(cas(BOB, 0, 1))[:1]
    # Alice's turn went back: her in-process request does not wait.
    assert "1" == harness.get("/visit", player="alice").body


def test_a_refused_record_ends_the_turn_as_any_write_does(
    factory: BridgeFactory, harness: SessionHarness
) -> None:
    client = Client(factory)
    client.select("level", 4)
    client.ask(wire.LOOKUP + ALICE)
    assert client.ask(wire.UPDATE + struct.pack("<i", 0)).startswith(b"N")
    assert b"X" == client.ask(wire.UPDATE + struct.pack("<i", 5))[:1]


# -- what is stored is what the layout re-encodes ----------------------------------

flags = SessionApplication("flags")


@attrs.define
class Flag:
    n: int = 0
    on: bool = False


flags.slab(Flag, name="flag", layout="<Q?x")


@flags.session_route("/look", record=Flag)
def look(request: Request, record: Flag) -> Response:
    return Response(Status.SUCCESS, "text/plain", f"n={record.n} on={record.on}")


def test_a_record_is_stored_as_the_layout_encodes_it() -> None:
    """A bool byte of 2 and a pad byte of 0xff read as the layout's own bytes
    would: stored so, a visit that changes nothing saves nothing, and the CGI
    program's next compare-and-set on the version it wrote goes through."""
    harness = SessionHarness(flags)
    bridge = factory_of(flags, harness.clock)
    client = Client(bridge)
    assert b"K" == client.select("flag", 10)
    sent = struct.pack("<Q", 7) + b"\x02\xff"
    written = version_of(client.ask(cas_of(ALICE, 0, sent)))
    assert b"K" + VERSION.pack(written) + struct.pack("<Q?x", 7, True) == client.ask(
        wire.PEEK + ALICE
    )
    assert "n=7 on=True" == harness.get("/look", player="alice").body
    again = client.ask(cas_of(ALICE, written, sent))
    assert b"K" == again[:1]
    assert written + 1 == version_of(again)
    bridge.doStop()


# -- connections in all, per user, per process -------------------------------------


def test_a_connection_past_a_cap_is_answered_and_closed(
    harness: SessionHarness,
) -> None:
    limits = BridgeLimits(max_connections=4, max_per_user=3, max_per_process=2)
    bridge = factory_of(app, harness.clock, limits)
    one = [Client(bridge, pid=1), Client(bridge, pid=1)]
    third = Client(bridge, pid=1)
    assert [
        b"Nprocess 1 has 2 bridge connections open, as many as"
        b" --bridge-max-per-process allows: close one first"
    ] == third.replies()
    assert third.closed
    one.append(Client(bridge, pid=2))
    fourth = Client(bridge, pid=3)
    assert [
        b"Nuser 1000 has 3 bridge connections open, as many as --bridge-max-per-user"
        b" allows: close one, or try again later"
    ] == fourth.replies()
    one.append(Client(bridge, uid=1001))
    fifth = Client(bridge, uid=1002)
    assert [
        b"Nthe bridge serves 4 connections, as many as --bridge-max-connections"
        b" allows: try again later"
    ] == fifth.replies()
    # The refused take no place: one closed lets the next one in.
    for refused in (third, fourth, fifth):
        refused.protocol.connectionLost(None)
    one[0].protocol.connectionLost(None)
    again = Client(bridge, pid=1)
    assert (b"K", False) == (again.select(), again.closed)
    bridge.doStop()


def test_a_refused_select_closes_the_connection(harness: SessionHarness) -> None:
    bridge = factory_of(app, harness.clock)
    client = Client(bridge)
    app.close(grace=0)
    client.protocol.dataReceived(
        frame(wire.SELECT + struct.pack("!I", 16) + b"visits")
        + frame(wire.LOOKUP + ALICE)
    )
    # The LOOKUP sent with it is not answered as if the SELECT had worked.
    assert [b"Nthe capsule is not serving now: try again later"] == client.replies()
    assert client.closed
    bridge.doStop()


# -- how long one user may keep a player's turn ----------------------------------


def budgeted(harness: SessionHarness, budget: float, window: float) -> BridgeFactory:
    return factory_of(
        app, harness.clock, BridgeLimits(hold_budget=budget, hold_window=window)
    )


def test_a_chain_of_holds_runs_out_of_budget_and_the_player_gets_through(
    harness: SessionHarness,
) -> None:
    bridge = budgeted(harness, 3, 60)
    chain = [selected(bridge), selected(bridge)]
    chain[0].ask(wire.LOOKUP + ALICE)
    chain[1].send(wire.LOOKUP + ALICE)  # waits, to hold next
    pages: list[Any] = []
    harness.request("/visit", player="alice").addCallback(pages.append)
    harness.clock.pump([1.0] * 3)
    # The first hold was cut at the budget; the second is refused at once,
    # and the player's visit, queued behind them, is served.
    assert [
        b"Nuser 1000's programs held this player's turn for 3 s within 60 s, as"
        b" long as --bridge-hold-budget allows: try again in 57 s"
    ] == chain[1].replies()
    assert ["1"] == [page.body for page in pages]
    assert chain[0].ask(wire.LOOKUP + ALICE).startswith(b"Nuser 1000's programs")
    # Other players, and other users, are not held back.
    assert b"K" == chain[0].ask(wire.LOOKUP + BOB)[:1]
    assert found(1, 1) == selected(bridge, uid=1001).ask(wire.LOOKUP + ALICE)
    bridge.doStop()


def test_the_budget_comes_back_when_the_window_closes(
    harness: SessionHarness,
) -> None:
    bridge = budgeted(harness, 2, 30)
    client = selected(bridge)
    client.ask(wire.LOOKUP + ALICE)
    harness.clock.pump([1.0] * 2)
    assert client.ask(wire.LOOKUP + ALICE).endswith(b"try again in 28 s")
    harness.clock.pump([1.0] * 28)
    assert found(0, 0) == client.ask(wire.LOOKUP + ALICE)
    bridge.doStop()


def test_short_holds_add_up_to_the_budget(harness: SessionHarness) -> None:
    bridge = budgeted(harness, 2, 60)
    client = selected(bridge)
    for _ in range(4):
        client.ask(wire.LOOKUP + ALICE)
        harness.clock.advance(0.5)
        assert b"K" == client.ask(wire.RELEASE)
    assert client.ask(wire.LOOKUP + ALICE).startswith(b"Nuser 1000's programs held")
    bridge.doStop()


def test_a_compare_and_set_counts_its_wait_for_nothing(
    harness: SessionHarness,
) -> None:
    """Waiting in line is no hold: only the time the turn is held counts."""
    bridge = budgeted(harness, 1, 60)
    holder, writer = selected(bridge, uid=1001), selected(bridge)
    holder.ask(wire.LOOKUP + ALICE)
    writer.send(cas(ALICE, 0, 5))
    harness.clock.pump([1.0] * 5)
    assert [b"K" + VERSION.pack(1)] == writer.replies()
    bridge.doStop()


# -- the certificate's dates -----------------------------------------------------

VALID = b" 2020-01-01T00:00:00Z 2999-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("dates", "reply"),
    [
        (VALID, found(0, 0)),
        (b" - -", found(0, 0)),
        (b" - 2999-01-01T00:00:00Z", found(0, 0)),
        (
            b" 2020-01-01T00:00:00Z 1970-06-01T00:00:00Z",
            b"VYour certificate expired on 1970-06-01: make a new one",
        ),
        (
            b" 2999-01-01T00:00:00Z -",
            b"VYour certificate is not valid until 2999-01-01 00:00 UTC: use another"
            b" one",
        ),
    ],
)
def test_the_certificates_dates_are_checked_as_the_routes_check_them(
    factory: BridgeFactory, dates: bytes, reply: bytes
) -> None:
    client = selected(factory)
    assert reply == client.ask(wire.LOOKUP + ALICE + dates)
    assert not client.closed


def test_an_expired_certificate_reads_and_writes_nothing(
    factory: BridgeFactory, harness: SessionHarness
) -> None:
    harness.clock.advance(86400 * 365)  # 1971
    expired = ALICE + b" 1970-01-01T00:00:00Z 1970-06-01T00:00:00Z"
    refused = b"VYour certificate expired on 1970-06-01: make a new one"
    client = selected(factory)
    assert [refused] * 4 == [
        client.ask(wire.PEEK + expired),
        client.ask(wire.LOOKUP + expired),
        client.ask(cas(expired, 0, 1)),
        client.ask(wire.DELETE + VERSION.pack(wire.ANY_VERSION) + expired),
    ]
    # The route answers the same certificate 62 with the same words.
    page = harness.get(
        "/visit",
        player="alice",
        not_before="1970-01-01T00:00:00Z",
        not_after="1970-06-01T00:00:00Z",
    )
    assert (62, refused[1:].decode()) == (page.status, page.meta)


@pytest.mark.parametrize(
    ("player", "error"),
    [
        (
            ALICE + b" 2020-01-01T00:00:00Z",
            "a player is a fingerprint, or a fingerprint and its certificate's two"
            " dates (TLS_CLIENT_NOT_BEFORE TLS_CLIENT_NOT_AFTER), not 2 words",
        ),
        (
            ALICE + b" 2020-01-01 2999-01-01T00:00:00Z",
            "a certificate's dates are as Jetforce writes them, YYYY-MM-DDTHH:MM:SSZ,"
            " or - when not known (got '2020-01-01' and '2999-01-01T00:00:00Z')",
        ),
        (b"nonsense - -", "not a fingerprint: fingerprint must be"),
    ],
)
def test_a_player_that_does_not_parse_is_an_error(
    factory: BridgeFactory, player: bytes, error: str
) -> None:
    client = selected(factory)
    reply = client.ask(wire.LOOKUP + player)
    assert (b"E", True) == (reply[:1], client.closed)
    assert reply[1:].decode().startswith(error)


# -- which slabs a socket serves -------------------------------------------------


def test_a_socket_may_serve_only_the_slabs_named(harness: SessionHarness) -> None:
    served = bridged(app.slabs.values(), ["level"])
    assert ["level"] == list(served)
    bridge = BridgeFactory(served, harness.clock, restricted=True)
    bridge.doStart()
    client = Client(bridge)
    assert (
        b"Eno slab 'visits' is served over the bridge; these are: level (only the"
        b" slabs --bridge-slabs names are)"
    ) == client.select("visits")
    bridge.doStop()


@pytest.mark.parametrize(
    ("names", "error"),
    [
        (
            ["visits", "nope"],
            "--bridge-slabs names 'nope', which is no slab of this capsule; its slabs"
            " with a layout are: level, visits",
        ),
        (
            ["notes"],
            "--bridge-slabs names slab 'notes', which has no fixed layout, so the"
            " bridge cannot serve it: give it a layout= or leave it out",
        ),
    ],
)
def test_naming_a_slab_the_bridge_cannot_serve_stops_start_up(
    names: list[str], error: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        bridged(app.slabs.values(), names)
    assert error == str(raised.value)


# -- the settings ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (
            {"max_connections": 0},
            "bridge connections in all must be a whole number from 1 to 65536 (got"
            " 0): use e.g. 256 (--bridge-max-connections 256)",
        ),
        (
            {"max_per_user": 1.5},
            "bridge connections per user must be a whole number from 1 to 65536 (got"
            " 1.5): use e.g. 128 (--bridge-max-per-user 128)",
        ),
        (
            {"max_unsent": -1},
            "unsent bytes per bridge connection must be a whole number from 0 to"
            " 67108864 (got -1): use e.g. 65536 (--bridge-max-unsent 65536)",
        ),
        (
            {"hold_budget": 0},
            "the bridge's hold budget must be a number of seconds above 0 and at"
            " most 86400 (got 0): use e.g. 10 (--bridge-hold-budget 10)",
        ),
        (
            {"hold_budget": 90, "hold_window": 60},
            "the bridge's hold budget (90 s) is longer than its window (60 s), so it"
            " would bound nothing: give --bridge-hold-budget at most"
            " --bridge-hold-window",
        ),
    ],
)
def test_a_setting_out_of_range_says_which_and_what_to_use(
    settings: dict[str, Any], error: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        BridgeLimits(**settings)
    assert error == str(raised.value)


def test_the_defaults() -> None:
    assert BridgeLimits(256, 128, 8, 65536, 10.0, 60.0) == BridgeLimits()
