"""Turns over several bridge connections and in-process requests, against a
model: a hypothesis state machine sends LOOKUP, PEEK, UPDATE, COMPARE-AND-SET,
DELETE and RELEASE from three connections, visits from the players
themselves, and lets time pass, so that turns run out, LOOKUPs wait too long,
silent connections are dropped and late writes come.

The model is written from the reference (docs/reference/bridge.md), not from
the code: one holder per player, at most two waiting in arrival order; a LOOKUP
holds until its connection writes, releases, looks up again or goes, or for 10
s; a COMPARE-AND-SET or DELETE takes the turn for its write; an UPDATE writes
only under its own LOOKUP's turn, else ``X``; a version is one more than the
last the store gave. Every reply, every page and every stored record must be
the model's.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import sesh_bridge as wire
from jetforce_sesh.bridge.protocol import IDLE_TIMEOUT, SWEEP_EVERY
from jetforce_sesh.bridge.turn import HOLD_TIMEOUT, WAIT_TIMEOUT
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.testing import SessionHarness, fingerprint_of
from tests.bridge.protocol_support import (
    PAIR,
    UNBOUNDED_HOLDS,
    VERSION,
    Client,
    Visits,
    app,
    factory_of,
)

PLAYERS = ("alice", "bob")
NAMES = {player: fingerprint_of(player).hex().encode() for player in PLAYERS}
QUEUE = 2
CLIENTS = 3
PIPELINED = b"Ea message before the reply to the last: send one at a time"
QUEUE_FULL = b"Nthis player's queue is full (2 may wait): try again later"
BUSY = b"Nthis player stayed busy for 10 s: try again later"
SILENT = b"Enothing received for 30 s"

players = st.sampled_from(PLAYERS)
clients = st.integers(0, CLIENTS - 1)
counts = st.integers(0, 5)


@attrs.define(eq=False)
class Conn:
    """What the model knows of one connection."""

    client: Client
    heard: float
    closed: bool = False
    #: The player whose turn it holds, since when, for how long at most.
    holds: str | None = None
    since: float = 0.0
    #: What it waits in a player's queue to do: (kind, player, arguments).
    waits: tuple[str, str, tuple[Any, ...]] | None = None
    #: The player it read or wrote last, and the version it saw.
    last: str | None = None
    version: int = 0
    #: Replies it should have got since the last check.
    expected: list[bytes] = attrs.Factory(list)


class BridgeTurns(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.harness = SessionHarness(app, defaults=SlabOptions(max_queued=QUEUE))
        self.clock = self.harness.clock
        self.factory = factory_of(app, self.clock, UNBOUNDED_HOLDS)
        self.start = self.clock.seconds()
        self.next_sweep = self.start + SWEEP_EVERY
        self.store = app.slabs[Visits].opened.immediate
        #: The model: records by player, the last version given, whose turn
        #: it is and who waits, in arrival order.
        self.records: dict[str, tuple[int, int, int]] = {}
        self.last_version = 0
        self.holder: dict[str, object] = {}
        self.queue: dict[str, list[object]] = {player: [] for player in PLAYERS}
        self.conns: list[Conn] = []
        #: The connections the bridge serves, in the order they came.
        self.order: list[Conn] = []
        self.pages: list[Any] = []
        self.expected_pages: list[tuple[int, str]] = []
        for _ in range(CLIENTS):
            self.conns.append(self._connect())

    # -- the model -------------------------------------------------------------

    @property
    def now(self) -> float:
        return self.clock.seconds()

    def _connect(self) -> Conn:
        conn = Conn(Client(self.factory), self.now)
        assert b"K" == conn.client.select()
        self.order.append(conn)
        return conn

    def _record(self, player: str) -> bytes:
        version, count, ever = self.records.get(player, (0, 0, 0))
        return VERSION.pack(version) + PAIR.pack(count, ever)

    def _reply(self, conn: Conn, reply: bytes) -> None:
        conn.expected.append(reply)
        conn.heard = self.now

    def _read(self, conn: Conn, player: str) -> None:
        conn.last = player
        conn.version = self.records.get(player, (0, 0, 0))[0]
        self._reply(conn, b"K" + self._record(player))

    def _close(self, conn: Conn, error: bytes | None) -> None:
        if error is not None:
            conn.expected.append(error)
        conn.closed = True
        self.order.remove(conn)
        self._end_turn(conn)

    def _end_turn(self, conn: Conn) -> None:
        if conn.holds is not None:
            player, conn.holds = conn.holds, None
            self._release(player)
        elif conn.waits is not None:
            self.queue[conn.waits[1]].remove(conn)
            conn.waits = None

    def _release(self, player: str) -> None:
        """The turn goes back: the waiters start in arrival order, each that
        finishes at once passing it on."""
        self.holder.pop(player, None)
        while self.queue[player]:
            waiter = self.queue[player].pop(0)
            self.holder[player] = waiter
            if isinstance(waiter, Conn):
                kind, _, arguments = waiter.waits or ("", "", ())
                waiter.waits = None
                if kind == "lookup":
                    waiter.holds, waiter.since = player, self.now
                    self._read(waiter, player)
                    return
                self._write(waiter, kind, player, arguments)
            else:
                self._visit_now(player)
            del self.holder[player]

    def _take(
        self, conn: Conn, kind: str, player: str, arguments: tuple[Any, ...]
    ) -> None:
        """What a LOOKUP, or a write that needs the turn, does."""
        if kind != "lookup" and conn.holds == player:
            self._write(conn, kind, player, arguments)
            conn.holds = None
            self._release(player)
            return
        self._end_turn(conn)
        if player not in self.holder:
            if kind == "lookup":
                self.holder[player] = conn
                conn.holds, conn.since = player, self.now
                self._read(conn, player)
                return
            self.holder[player] = conn
            self._write(conn, kind, player, arguments)
            self._release(player)
            return
        if len(self.queue[player]) >= QUEUE:
            self._reply(conn, QUEUE_FULL)
            return
        self.queue[player].append(conn)
        conn.waits, conn.since = (kind, player, arguments), self.now

    def _write(
        self, conn: Conn, kind: str, player: str, arguments: tuple[Any, ...]
    ) -> None:
        current = self.records.get(player, (0, 0, 0))[0]
        conn.last = player
        if kind == "delete":
            (expected,) = arguments
            if expected not in (wire.ANY_VERSION, current):
                conn.version = current
                self._reply(conn, b"X" + self._record(player))
                return
            existed = self.records.pop(player, None) is not None
            conn.version = 0
            self._reply(conn, b"K\x01" if existed else b"K\x00")
            return
        expected, count, ever = arguments
        if expected != current:
            conn.version = current
            self._reply(conn, b"X" + self._record(player))
            return
        self.last_version += 1
        self.records[player] = (self.last_version, count, ever)
        conn.version = self.last_version
        self._reply(conn, b"K" + VERSION.pack(self.last_version))

    def _visit_now(self, player: str) -> None:
        _, count, ever = self.records.get(player, (0, 0, 0))
        self.last_version += 1
        self.records[player] = (self.last_version, count + 1, ever)
        self.expected_pages.append((20, str(count + 1)))

    def _sweep(self) -> None:
        """The bridge's sweep, as the reference says: turns held too long end
        first, then each connection's waiting and silence are checked."""
        now = self.now
        order = list(self.order)
        for conn in order:
            if conn.holds is not None and now - conn.since >= HOLD_TIMEOUT:
                self._end_turn(conn)
        for conn in order:
            if conn.closed:
                continue
            if conn.holds is not None and now - conn.since >= HOLD_TIMEOUT:
                self._end_turn(conn)
            if conn.waits is not None and now - conn.since >= WAIT_TIMEOUT:
                self._end_turn(conn)
                self._reply(conn, BUSY)
            if conn.waits is None and now - conn.heard >= IDLE_TIMEOUT:
                self._close(conn, SILENT)

    def _send(self, index: int, message: bytes) -> Conn | None:
        """Send ``message`` on connection ``index``; the Conn if the model
        should answer it (None: it was answered already, with an error)."""
        conn = self.conns[index]
        conn.client.send(message)
        if conn.waits is not None:
            self._close(conn, PIPELINED)
            return None
        return conn

    # -- the rules -------------------------------------------------------------

    @rule(index=clients, player=players)
    def lookup(self, index: int, player: str) -> None:
        if self.conns[index].closed:
            return
        conn = self._send(index, wire.LOOKUP + NAMES[player])
        if conn is not None:
            self._take(conn, "lookup", player, ())

    @rule(index=clients, player=players)
    def peek(self, index: int, player: str) -> None:
        if self.conns[index].closed:
            return
        conn = self._send(index, wire.PEEK + NAMES[player])
        if conn is not None:
            self._read(conn, player)

    @rule(index=clients, count=counts, ever=counts)
    def update(self, index: int, count: int, ever: int) -> None:
        if self.conns[index].closed:
            return
        conn = self._send(index, wire.UPDATE + PAIR.pack(count, ever))
        if conn is None:
            return
        if conn.last is None:
            self._close(conn, b"EUPDATE before LOOKUP: look the player up first")
            return
        player = conn.last
        if conn.holds != player:
            conn.version = self.records.get(player, (0, 0, 0))[0]
            self._reply(conn, b"X" + self._record(player))
            return
        self._write(conn, "update", player, (conn.version, count, ever))
        conn.holds = None
        self._release(player)

    @rule(
        index=clients,
        player=players,
        seen=st.booleans(),
        count=counts,
        ever=counts,
    )
    def compare_and_set(
        self, index: int, player: str, seen: bool, count: int, ever: int
    ) -> None:
        conn = self.conns[index]
        if conn.closed:
            return
        expected = conn.version if seen else 0
        name = NAMES[player]
        message = (
            wire.COMPARE_AND_SET
            + VERSION.pack(expected)
            + bytes([len(name)])
            + name
            + PAIR.pack(count, ever)
        )
        if self._send(index, message) is not None:
            self._take(conn, "cas", player, (expected, count, ever))

    @rule(index=clients, player=players, which=st.sampled_from(["any", "seen", "0"]))
    def delete(self, index: int, player: str, which: str) -> None:
        conn = self.conns[index]
        if conn.closed:
            return
        expected = {"any": wire.ANY_VERSION, "seen": conn.version, "0": 0}[which]
        message = wire.DELETE + VERSION.pack(expected) + NAMES[player]
        if self._send(index, message) is not None:
            self._take(conn, "delete", player, (expected,))

    @rule(index=clients)
    def release(self, index: int) -> None:
        if self.conns[index].closed:
            return
        conn = self._send(index, wire.RELEASE)
        if conn is not None:
            self._end_turn(conn)
            self._reply(conn, b"K")

    @rule(index=clients)
    def reconnect(self, index: int) -> None:
        if self.conns[index].closed:
            self.conns[index] = self._connect()

    @rule(player=players)
    def visit(self, player: str) -> None:
        self.harness.request("/visit", player=player).addCallback(self.pages.append)
        if player not in self.holder:
            self._visit_now(player)
        elif len(self.queue[player]) >= QUEUE:
            self.expected_pages.append((44, ""))
        else:
            self.queue[player].append(object())

    @rule(seconds=st.sampled_from([0.25, 1.0, 2.5, 9.75, 10.0, 31.0]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)
        # However far the clock jumps, the sweep runs once, at the new time.
        if self.next_sweep <= self.now:
            self._sweep()
            passed = (self.now - self.start) // SWEEP_EVERY + 1
            self.next_sweep = self.start + passed * SWEEP_EVERY

    # -- what must hold --------------------------------------------------------

    @invariant()
    def every_reply_is_the_models(self) -> None:
        for conn in self.conns:
            assert conn.expected == conn.client.replies()
            assert conn.closed == conn.client.closed
            conn.expected.clear()

    @invariant()
    def every_page_is_the_models(self) -> None:
        assert self.expected_pages == [
            (page.status, page.body if page.status == 20 else "") for page in self.pages
        ]

    @invariant()
    def every_record_is_the_models(self) -> None:
        assert self.store is not None
        stored = {
            record.key: (record.version, *PAIR.unpack(record.data))
            for record in self.store.records_now(limit=10).records
        }
        assert {
            fingerprint_of(player): record for player, record in self.records.items()
        } == stored

    def teardown(self) -> None:
        self.factory.doStop()


BridgeTurns.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
test_turns_over_several_connections_as_the_model_says = BridgeTurns.TestCase
