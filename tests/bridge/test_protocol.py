"""The CGI bridge's protocol, on a Clock, against the slab's real memory store."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sesh_bridge as wire
from jetforce_sesh.bridge.protocol import (
    IDLE_TIMEOUT,
    SWEEP_EVERY,
    BridgeFactory,
    BridgeProtocol,
)
from jetforce_sesh.bridge.service import bridged
from jetforce_sesh.bridge.turn import HOLD_TIMEOUT, WAIT_TIMEOUT
from jetforce_sesh.errors import ConfigError
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.testing import SessionHarness, fingerprint_of, later_stores
from tests.bridge.protocol_support import (
    HASH,
    OTHER,
    PAIR,
    UNBOUNDED_HOLDS,
    VERSION,
    Client,
    Notes,
    Visits,
    app,
    factory_of,
    found,
    version_of,
)
from tests.strategies import bridge_messages


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app, defaults=SlabOptions(max_queued=2))


@pytest.fixture
def factory(harness: SessionHarness) -> Iterator[BridgeFactory]:
    made = factory_of(app, harness.clock, UNBOUNDED_HOLDS)
    yield made
    made.doStop()


@pytest.fixture
def client(factory: BridgeFactory) -> Client:
    made = Client(factory)
    assert b"K" == made.select()
    return made


def queued_behind(client: Client, factory: BridgeFactory) -> Client:
    """``client`` holds alice's turn; a second connection waits for it."""
    other = Client(factory)
    other.select()
    client.ask(wire.LOOKUP + HASH.encode())
    other.send(wire.LOOKUP + HASH.encode())
    return other


# -- the basic requests --------------------------------------------------------


def test_a_new_player_reads_version_0_and_the_layouts_defaults(client: Client) -> None:
    assert found(0, 0) == client.ask(wire.LOOKUP + HASH.encode())


def test_update_after_lookup_stores_the_record_for_in_process_routes(
    client: Client, harness: SessionHarness
) -> None:
    client.ask(wire.LOOKUP + HASH.encode())
    reply = client.ask(wire.UPDATE + PAIR.pack(41, 7))
    assert b"K" == reply[:1]
    assert found(version_of(reply), 41, 7) == client.ask(wire.PEEK + HASH.encode())
    assert "42" == harness.get("/visit", player="alice").body


def test_every_fingerprint_spelling_names_the_same_player(client: Client) -> None:
    client.ask(wire.LOOKUP + HASH.encode())
    version = version_of(client.ask(wire.UPDATE + PAIR.pack(5, 5)))
    bare = HASH[7:].lower()
    colons = ":".join(HASH[7:][i : i + 2] for i in range(0, 64, 2))
    for spelling in (bare, colons):
        assert found(version, 5, 5) == client.ask(wire.PEEK + spelling.encode())


def test_compare_and_set_writes_only_over_the_version_it_names(client: Client) -> None:
    name = OTHER.encode()
    head = bytes([len(name)]) + name
    first = client.ask(wire.COMPARE_AND_SET + VERSION.pack(0) + head + PAIR.pack(1, 1))
    assert b"K" == first[:1]
    stale = client.ask(wire.COMPARE_AND_SET + VERSION.pack(0) + head + PAIR.pack(9, 9))
    # The conflict carries what is stored now, to redo the change on.
    assert b"X" + first[1:] + PAIR.pack(1, 1) == stale
    again = VERSION.pack(version_of(first))
    assert b"K" == client.ask(wire.COMPARE_AND_SET + again + head + PAIR.pack(2, 2))[:1]
    assert PAIR.pack(2, 2) == client.ask(wire.PEEK + name)[9:]


def test_delete_forgets_the_record_when_the_version_matches(client: Client) -> None:
    client.ask(wire.LOOKUP + HASH.encode())
    version = version_of(client.ask(wire.UPDATE + PAIR.pack(3, 3)))
    moved = client.ask(wire.DELETE + VERSION.pack(version + 1) + HASH.encode())
    assert b"X" + VERSION.pack(version) + PAIR.pack(3, 3) == moved
    assert b"K\x01" == client.ask(wire.DELETE + VERSION.pack(version) + HASH.encode())
    assert b"K\x00" == client.ask(
        wire.DELETE + VERSION.pack(wire.ANY_VERSION) + HASH.encode()
    )
    assert found(0, 0) == client.ask(wire.PEEK + HASH.encode())


def test_select_with_no_name_picks_the_only_bridged_slab(
    harness: SessionHarness,
) -> None:
    only = BridgeFactory(bridged([app.slabs[Visits]]), harness.clock)
    only.doStart()
    client = Client(only)
    assert b"K" == client.select("")
    assert found(0, 0) == client.ask(wire.LOOKUP + HASH.encode())


# -- turns ---------------------------------------------------------------------


def test_lookup_holds_the_turn_so_an_in_process_request_waits_for_the_update(
    client: Client, harness: SessionHarness
) -> None:
    client.ask(wire.LOOKUP + HASH.encode())
    pages: list[Any] = []
    harness.request("/visit", player="alice").addCallback(pages.append)
    assert [] == pages
    client.ask(wire.UPDATE + PAIR.pack(10, 0))
    assert ["11"] == [page.body for page in pages]


def test_a_lookup_waits_for_an_async_handler_that_waits_then_reads_its_write(
    client: Client, harness: SessionHarness
) -> None:
    pages: list[Any] = []
    harness.request("/slow", player="alice").addCallback(pages.append)
    client.send(wire.LOOKUP + HASH.encode())
    assert [] == client.replies()
    harness.clock.advance(1)
    assert ["1"] == [page.body for page in pages]
    (reply,) = client.replies()
    assert found(version_of(reply), 1, 0) == reply
    # And the handler's next run waits for the bridge in turn.
    harness.request("/slow", player="alice").addCallback(pages.append)
    client.ask(wire.UPDATE + PAIR.pack(10, 0))
    harness.clock.advance(1)
    assert ["1", "11"] == [page.body for page in pages]


def test_a_second_lookup_waits_and_then_reads_what_the_first_wrote(
    factory: BridgeFactory, client: Client
) -> None:
    other = queued_behind(client, factory)
    assert [] == other.replies()
    version = version_of(client.ask(wire.UPDATE + PAIR.pack(1, 1)))
    assert [found(version, 1, 1)] == other.replies()


def test_a_turn_held_too_long_passes_on_and_the_late_update_conflicts(
    factory: BridgeFactory, client: Client, harness: SessionHarness
) -> None:
    other = queued_behind(client, factory)
    harness.clock.advance(HOLD_TIMEOUT - 0.5)
    assert [] == other.replies()
    harness.clock.advance(0.5)
    assert [found(0, 0)] == other.replies()
    written = other.ask(wire.UPDATE + PAIR.pack(5, 5))
    # The slow client's write is not lost silently, nor does it overwrite.
    assert b"X" + written[1:] + PAIR.pack(5, 5) == client.ask(
        wire.UPDATE + PAIR.pack(1, 1)
    )


def test_a_client_that_leaves_while_holding_passes_the_turn_on(
    factory: BridgeFactory, client: Client
) -> None:
    other = queued_behind(client, factory)
    client.protocol.connectionLost(None)
    assert [found(0, 0)] == other.replies()


def test_a_client_that_leaves_while_waiting_frees_its_place(
    factory: BridgeFactory, client: Client, harness: SessionHarness
) -> None:
    waiting = [Client(factory) for _ in range(2)]
    client.ask(wire.LOOKUP + HASH.encode())
    for each in waiting:
        each.select()
        each.send(wire.LOOKUP + HASH.encode())
    waiting[0].protocol.connectionLost(None)
    pages: list[Any] = []
    harness.request("/visit", player="alice").addCallback(pages.append)
    client.ask(wire.RELEASE)
    assert [found(0, 0)] == waiting[1].replies()
    waiting[1].ask(wire.RELEASE)
    assert ["1"] == [page.body for page in pages]


def test_a_lookup_finding_the_queue_full_is_refused(
    factory: BridgeFactory, client: Client
) -> None:
    client.ask(wire.LOOKUP + HASH.encode())
    clients = [Client(factory) for _ in range(3)]
    for each in clients:
        each.select()
        each.send(wire.LOOKUP + HASH.encode())
    assert [] == clients[0].replies() == clients[1].replies()
    refused = b"Nthis player's queue is full (2 may wait): try again later"
    assert [refused] == clients[2].replies()
    assert not clients[2].closed


def test_a_lookup_that_waits_too_long_is_refused(
    factory: BridgeFactory, client: Client, harness: SessionHarness
) -> None:
    waiting = Client(factory)
    waiting.select()
    # An in-process request holds the turn, its handler waiting on a reply that
    # never comes (until its own time-out, longer than the bridge's wait).
    stalled = harness.request("/stall", player="alice")
    waiting.send(wire.LOOKUP + HASH.encode())
    harness.clock.advance(WAIT_TIMEOUT - 0.5)
    assert [] == waiting.replies()
    harness.clock.advance(0.5)
    assert [b"Nthis player stayed busy for 10 s: try again later"] == waiting.replies()
    harness.clock.advance(20)
    assert stalled.called
    # The refused LOOKUP left the queue: the next one gets the turn at once.
    fresh = Client(factory)
    fresh.select()
    assert found(0, 0) == fresh.ask(wire.LOOKUP + HASH.encode())


def test_closing_the_slab_refuses_the_lookups_waiting(
    factory: BridgeFactory, client: Client
) -> None:
    other = queued_behind(client, factory)
    app.close(grace=0)
    (reply,) = other.replies()
    assert b"N" == reply[:1]
    assert not other.closed


# -- what the bridge refuses ---------------------------------------------------


def test_a_record_the_class_refuses_is_not_stored(factory: BridgeFactory) -> None:
    client = Client(factory)
    client.select("level", 4)
    assert b"K" + VERSION.pack(0) + struct.pack("<i", 1) == client.ask(
        wire.LOOKUP + HASH.encode()
    )
    assert (
        b"Nrecord refused, nothing changed: Level refused the stored values:"
        b" ValueError: 'level' must be >= 1: 0"
    ) == client.ask(wire.UPDATE + struct.pack("<i", 0))
    assert b"K" + VERSION.pack(0) + struct.pack("<i", 1) == client.ask(
        wire.PEEK + HASH.encode()
    )


def test_a_full_slab_that_refuses_says_so(factory: BridgeFactory) -> None:
    client = Client(factory)
    client.select("level", 4)
    for player in ("a", "b"):
        client.ask(wire.LOOKUP + fingerprint_of(player).hex().encode())
        assert b"K" == client.ask(wire.UPDATE + struct.pack("<i", 2))[:1]
    client.ask(wire.LOOKUP + fingerprint_of("c").hex().encode())
    reply = client.ask(wire.UPDATE + struct.pack("<i", 2))
    assert reply.startswith(b"Nthe slab is full: ")
    assert not client.closed


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"", "unknown message code b''"),
        (b"Z", "unknown message code b'Z'"),
        (
            wire.UPDATE + PAIR.pack(1, 1),
            "UPDATE before LOOKUP: look the player up first",
        ),
        (
            wire.LOOKUP + b"SHA256:XYZ",
            "not a fingerprint: fingerprint must be",
        ),
        (wire.LOOKUP + b"\xff", "not a fingerprint: UnicodeDecodeError: 'ascii' codec"),
        (wire.COMPARE_AND_SET + b"\x00" * 8, "COMPARE-AND-SET is too short"),
        (
            wire.COMPARE_AND_SET + b"\x00" * 8 + b"\x09abc",
            "COMPARE-AND-SET is too short",
        ),
        (wire.DELETE + b"\x00", "DELETE is too short"),
        (wire.RELEASE + b"x", "RELEASE carries nothing"),
        (wire.SELECT + b"\x00", "SELECT is too short: it needs the record size"),
        (
            wire.SELECT + struct.pack("!I", 16) + b"nope",
            "no slab 'nope' is served over the bridge; these are: level, visits"
            " (only slabs declared with a layout are)",
        ),
        (
            wire.SELECT + struct.pack("!I", 16) + b"notes",
            "no slab 'notes' is served over the bridge; these are: level, visits"
            " (only slabs declared with a layout are)",
        ),
        (
            wire.SELECT + struct.pack("!I", 8) + b"visits",
            "slab 'visits' has 16-byte records (layout '<QQ'), not 8: use that"
            " record size",
        ),
        (wire.SELECT + struct.pack("!I", 16), "this capsule serves 2 slabs over the"),
    ],
)
def test_a_bad_message_gets_an_error_and_the_connection_closes(
    client: Client, harness: SessionHarness, message: bytes, error: str
) -> None:
    reply = client.ask(message)
    assert (b"E", True) == (reply[:1], client.closed)
    assert reply[1:].decode().startswith(error)
    # Nothing is held: the player's in-process request goes through.
    assert "1" == harness.get("/visit", player="alice").body


def test_a_record_of_the_wrong_size_is_an_error(client: Client) -> None:
    client.ask(wire.LOOKUP + HASH.encode())
    reply = client.ask(wire.UPDATE + b"\x00" * 15)
    assert b"Ea record of slab 'visits' is 16 bytes, not 15" == reply
    assert client.closed


def test_a_message_before_select_is_an_error(factory: BridgeFactory) -> None:
    client = Client(factory)
    assert b"ELOOKUP before SELECT: select a slab first" == client.ask(
        wire.LOOKUP + HASH.encode()
    )


def test_an_oversized_length_is_refused_before_its_body(client: Client) -> None:
    client.protocol.dataReceived(struct.pack("!I", wire.MAX_MESSAGE + 1))
    assert [
        b"Emessage of %d bytes: messages are at most %d"
        % (wire.MAX_MESSAGE + 1, wire.MAX_MESSAGE)
    ] == client.replies()
    assert client.closed


def test_two_messages_at_once_is_an_error(
    client: Client, factory: BridgeFactory
) -> None:
    holder = Client(factory)
    holder.select()
    holder.ask(wire.LOOKUP + HASH.encode())
    client.send(wire.LOOKUP + HASH.encode())  # waits for the turn
    client.send(wire.PEEK + HASH.encode())
    assert [
        b"Ea message before the reply to the last: send one at a time"
    ] == client.replies()
    # Its place in the queue is gone: the holder's release starts nobody.
    assert b"K" == holder.ask(wire.RELEASE)


def test_a_silent_connection_is_dropped(
    factory: BridgeFactory, harness: SessionHarness
) -> None:
    client = Client(factory)
    harness.clock.advance(IDLE_TIMEOUT - 0.5)
    assert not client.closed
    harness.clock.advance(0.5)
    assert [b"Enothing received for 30 s"] == client.replies()
    assert client.closed


def test_a_half_sent_message_counts_as_silence(
    client: Client, harness: SessionHarness
) -> None:
    client.protocol.dataReceived(struct.pack("!I", 20) + b"L")
    harness.clock.advance(IDLE_TIMEOUT)
    assert [b"Enothing received for 30 s"] == client.replies()


def test_a_capsule_without_layouts_has_nothing_to_bridge() -> None:
    with pytest.raises(ConfigError) as raised:
        bridged([app.slabs[Notes]])
    assert (
        "no slab has a fixed layout, so the bridge would serve nothing: declare one"
        " with app.slab(Record, layout='<Q'), or leave --bridge-socket out"
        == str(raised.value)
    )


def test_protocol_is_built_per_connection(factory: BridgeFactory) -> None:
    assert isinstance(factory.buildProtocol(None), BridgeProtocol)


# -- fuzz ----------------------------------------------------------------------


@settings(max_examples=150)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 2), bridge_messages | st.floats(0, 40)),
        max_size=30,
    )
)
def test_no_message_changes_a_record_unless_answered_done(
    steps: list[tuple[int, bytes | float]],
) -> None:
    harness = SessionHarness(app, defaults=SlabOptions(max_queued=2))
    factory = factory_of(app, harness.clock, UNBOUNDED_HOLDS)
    store = app.slabs[Visits].opened.immediate
    assert store is not None
    clients = [Client(factory) for _ in range(3)]
    for each in clients:
        each.select()

    def snapshot() -> dict[bytes, tuple[bytes, int]]:
        return {
            record.key: (record.data, record.version)
            for record in store.records_now(limit=10).records
        }

    for index, step in steps:
        client = clients[index]
        before = snapshot()
        if isinstance(step, float):
            harness.clock.pump([step / 4] * 4)
            assert before == snapshot()
            continue
        client.send(step)
        replies = client.replies()
        after = snapshot()
        if after != before:
            # Only a write the writer heard was done, of exactly its record.
            assert step[:1] in (b"U", b"C", b"D")
            # (Replies before it answer a LOOKUP of this client's that waited.)
            assert b"K" == replies[-1][:1]
            changed = {
                key
                for key in after.keys() | before.keys()
                if after.get(key) != before.get(key)
            }
            assert 1 == len(changed)
            (key,) = changed
            if step[:1] == b"D":
                assert key not in after
            else:
                assert step[-16:] == after[key][0]
        if replies and replies[-1][:1] == b"E":
            assert client.closed
    # However it went, nothing holds a player's turn for long.
    harness.clock.pump([SWEEP_EVERY] * int(HOLD_TIMEOUT * 3 / SWEEP_EVERY))
    for player in ("ab" * 32, "cd" * 32):
        fresh = Client(factory)
        fresh.select()
        assert b"K" == fresh.ask(wire.LOOKUP + player.encode())[:1]


def test_a_store_that_does_not_answer_in_time_is_a_refusal_not_an_error() -> None:
    harness = SessionHarness(app, stores=later_stores(WAIT_TIMEOUT + 5))
    harness.clock.advance(WAIT_TIMEOUT + 5)  # the stores open
    factory = BridgeFactory(bridged(app.slabs.values()), harness.clock)
    factory.doStart()
    client = Client(factory)
    client.send(wire.SELECT + struct.pack("!I", 16) + b"visits")
    assert [b"K"] == client.replies()
    client.send(wire.LOOKUP + HASH.encode())
    harness.clock.advance(WAIT_TIMEOUT)
    assert [b"Nthe record store is unavailable: try again later"] == client.replies()
    assert not client.closed
    # The LOOKUP that failed holds no turn.
    assert fingerprint_of("alice") not in app.slabs[Visits].opened.turns
    factory.doStop()
