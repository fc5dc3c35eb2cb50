"""The route at its seams, as a hypothesis state machine against a model.

Players make requests that hold their record, queue behind each other, finish,
fail, time out, swallow their cancellation, lose their client, meet a record
changed behind their back, and meet the capsule closing. After every step the
stored record is what the answers told the players, and once everything has
settled, every request whose client stayed has exactly one answer.

The machine runs against every store in this process (``store_kinds.KINDS``):
the memory store, one that answers later, one whose save arrives after the
route stopped waiting, one that loses the answer to a save it made, and the
SQLite store; and against the Redis store on a real valkey-server
(``store_kinds.RedisKind``), whose answers come over a socket on the real
reactor while the route's own time is the Clock. A player answered "may or
may not have been kept" has a record at one of two counts until an answer says
which; the model keeps both.
"""

from __future__ import annotations

from typing import Any

import attrs
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher

from jetforce_sesh import SessionApplication
from jetforce_sesh.stores import ANY_VERSION
from jetforce_sesh.stores.redis.store import RedisStore
from jetforce_sesh.stores.sqlite.store import SQLiteStore
from jetforce_sesh.testing import START, fingerprint_of, make_environ
from tests.redis_support import RedisServer
from tests.session.store_kinds import (
    KINDS,
    RecordsNow,
    RedisKind,
    SQLiteKind,
    records_of,
)

PLAYERS = ("ann", "bob")
TIMEOUT = 5.0
MAX_QUEUED = 2


@attrs.define
class Tally:
    count: int = 0


class Exchange:
    """One request as Jetforce runs it: status, then the body chunk by chunk,
    waiting for each Deferred; ``leave()`` is the client disconnecting."""

    def __init__(self, app: SessionApplication, path: str, player: str) -> None:
        self.player = player
        self.path = path
        self.answers: list[tuple[int, str]] = []
        self.body: list[str] = []
        #: Set when the record was changed behind its back while it ran: its
        #: save may have come first, so its answer says nothing of the record.
        self.stale = False
        self.done = False
        self.left = False
        self.waiting: Deferred[Any] | None = None
        self.chunks = iter(app(make_environ(path, player=player), self._status))
        self._pump()

    def _status(self, status: int, meta: str) -> None:
        self.answers.append((status, meta))

    def _pump(self, data: object = None) -> None:
        self.waiting = None
        if isinstance(data, str):
            self.body.append(data)
        for chunk in self.chunks:
            if isinstance(chunk, Deferred):
                self.waiting = chunk
                chunk.addCallbacks(self._pump, self._lost)
                return
            if isinstance(chunk, str):
                self.body.append(chunk)
        self.done = True

    def _lost(self, failure: Any) -> None:
        failure.trap(CancelledError)
        self.done = True

    def leave(self) -> None:
        self.left = True
        if self.waiting is not None:
            self.waiting.cancel()

    @property
    def pending(self) -> bool:
        """Whether this may still change the record and be answered."""
        return not self.answers and not self.left and self.path in COUNTING

    @property
    def text(self) -> str:
        return "".join(self.body)


def make_app(clock: Clock, gates: list[Deferred[None]]) -> SessionApplication:
    app = SessionApplication("machine")
    app.slab(Tally, record_size=32, max_queued=MAX_QUEUED)

    @app.session_route("/inc", record=Tally)
    def inc(request: Request, record: Tally) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/gate", record=Tally, timeout=TIMEOUT)
    async def gate(request: Request, record: Tally) -> Response:
        record.count += 1
        waiting: Deferred[None] = Deferred()
        gates.append(waiting)
        await waiting
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/fail", record=Tally, timeout=TIMEOUT)
    async def fail(request: Request, record: Tally) -> Response:
        record.count += 1000
        waiting: Deferred[None] = Deferred()
        gates.append(waiting)
        await waiting
        raise RuntimeError("late bug")

    @app.session_route("/stubborn", record=Tally, timeout=TIMEOUT)
    async def stubborn(request: Request, record: Tally) -> Response:
        waiting: Deferred[None] = Deferred()
        gates.append(waiting)
        try:
            await waiting
        except CancelledError:
            record.count += 100  # a fallback that must never be kept
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    return app


UNSURE = (
    "The game's records did not answer in time; your move may or may not have been"
    " kept: look again in a moment"
)
#: Paths whose kept change adds one to the count.
COUNTING = ("/inc", "/gate", "/stubborn")

ALLOWED_FAILURES = {
    40: {
        "The game took too long to answer; your previous state is kept",
        "Your game changed elsewhere while this request was played; nothing of"
        " it was kept: try again",
    },
    41: {
        "The capsule is restarting; your previous state is kept: try again in a moment",
        UNSURE,
    },
    42: {"An unexpected error occurred; your previous state is kept"},
    44: {
        "Your earlier requests to this game are still being answered: wait for"
        " them, then try again"
    },
}


class RouteMachine(RuleBasedStateMachine):
    kind = "memory"
    #: The valkey-server of kind "redis" (set by its test).
    redis_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.clock.advance(START)
        self.gates: list[Deferred[None]] = []
        self.app = make_app(self.clock, self.gates)
        self.stores: Any
        if self.kind == "redis":
            self.stores, self.persistent = RedisKind(self.redis_url), True
        else:
            make, self.persistent = KINDS[self.kind]
            self.stores = make()
        opening = self.app.open(self.clock, stores=self.stores)
        self.settle(opening)
        # A store that answers later opens later.
        self.until(opening, 0.5)
        self.exchanges: list[Exchange] = []
        #: The counts each player's record may be at, as the answers tell.
        self.model = {player: {0} for player in PLAYERS}
        self.seen = 0  # answers already checked against the model
        self.closing: Deferred[None] | None = None
        # Failures are logged on purpose here: keep them off the test output.
        self.events: list[Any] = []
        globalLogPublisher.addObserver(self.events.append)

    def teardown(self) -> None:
        globalLogPublisher.removeObserver(self.events.append)
        self.until(self.app.close(grace=0), 1)
        if isinstance(self.stores, SQLiteKind | RedisKind):
            self.stores.remove()

    def settle(self, opening: Deferred[None] | None = None) -> None:
        """For the Redis store: let the real reactor run until Redis has
        answered all it was asked, and the connections asked to close (or,
        given ``opening``, to open) have."""
        if not isinstance(self.stores, RedisKind):
            return
        self.stores.settle(opening)
        # What the answers let the route do now, on its Clock, may ask Redis
        # more: until nothing is due.
        for _ in range(1000):
            now = self.clock.seconds()
            if not any(c.getTime() <= now for c in self.clock.getDelayedCalls()):
                return
            self.clock.advance(0)
            self.stores.settle()
        raise AssertionError("the route and Redis never settled")

    def until(self, deferred: Deferred[None], step: float) -> None:
        """Move the Clock ``step`` at a time (and settle) until ``deferred``
        fires, a hundred steps at most."""
        for _ in range(100):
            self.settle()
            if deferred.called:
                return
            self.clock.advance(step)

    @property
    def store(self) -> RecordsNow | None:
        opened = self.app.slabs[Tally]._opened
        if opened is None:
            return None
        if isinstance(opened.store, RedisStore):
            self.settle()
            return self.stores.records(opened.store)  # type: ignore[no-any-return]
        return records_of(opened.store)

    @property
    def outer(self) -> object:
        opened = self.app.slabs[Tally]._opened
        return None if opened is None else opened.store

    def stored(self, player: str) -> int:
        store = self.store
        assert store is not None
        found = store.peek_now(fingerprint_of(player))
        return (
            0 if found is None else self.app.slabs[Tally].codec.decode(found.data).count
        )

    # -- rules ---------------------------------------------------------------

    @rule(
        player=st.sampled_from(PLAYERS),
        path=st.sampled_from(["/inc", "/gate", "/fail", "/stubborn"]),
    )
    def request(self, player: str, path: str) -> None:
        self.exchanges.append(Exchange(self.app, path, player))
        self.check_answers()

    @precondition(lambda self: bool(self.gates))
    @rule(data=st.data())
    def open_gate(self, data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(self.gates) - 1))
        gate = self.gates.pop(index)
        if not gate.called:
            gate.callback(None)
        self.check_answers()

    @rule(seconds=st.sampled_from([0.5, 1.0, TIMEOUT]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.check_answers()

    @precondition(lambda self: any(not e.done for e in self.exchanges))
    @rule(data=st.data())
    def leave(self, data: st.DataObject) -> None:
        waiting = [e for e in self.exchanges if not e.done]
        leaving = data.draw(st.sampled_from(waiting))
        if leaving.pending:
            # Its save may be under way, and is let finish: kept, unanswered.
            self.may_have_counted(leaving.player)
        leaving.leave()
        self.check_answers()

    def may_have_counted(self, player: str) -> None:
        possible = self.model[player]
        self.model[player] = possible | {c + 1 for c in possible}

    @precondition(lambda self: self.store is not None and self.closing is None)
    @rule(player=st.sampled_from(PLAYERS), count=st.integers(0, 50))
    def meddle(self, player: str, count: int) -> None:
        """Another process changes the record behind the route's back."""
        store = self.store
        assert store is not None
        if isinstance(self.outer, SQLiteStore):
            store = self.outer  # written through to the file, as any save
        data = self.app.slabs[Tally].codec.encode(Tally(count=count))
        store.save_now(fingerprint_of(player), data, ANY_VERSION)
        self.model[player] = {count}
        for exchange in self.exchanges:
            if exchange.player == player and exchange.pending:
                exchange.stale = True

    @precondition(lambda self: hasattr(self.outer, "trouble"))
    @rule()
    def trouble(self) -> None:
        """The next save arrives late, or its answer is lost."""
        self.outer.trouble()  # type: ignore[union-attr]

    @precondition(lambda self: self.closing is None)
    @rule(grace=st.sampled_from([0.0, 1.0, TIMEOUT * 2]))
    def close(self, grace: float) -> None:
        self.closing = self.app.close(grace=grace)
        self.check_answers()

    @precondition(lambda self: self.closing is not None and self.closing.called)
    @rule()
    def reopen(self) -> None:
        self.check_answers()
        self.closing = None
        self.settle(self.app.open(self.clock, stores=self.stores))
        if not self.persistent:  # memory records go with the store
            self.model = {player: {0} for player in PLAYERS}

    # -- checks ----------------------------------------------------------------

    def check_answers(self) -> None:
        """Answers arrive in the order their saves happened: replay them on the
        model, in order, as they come."""
        self.settle()
        for exchange in self.exchanges:
            answers = exchange.answers
            assert len(answers) <= 1, answers
        # Answers of 20 carry the count they saved; check each once, in order.
        fresh = [
            e for e in self.exchanges if e.answers and not getattr(e, "checked", False)
        ]
        for exchange in fresh:
            exchange.checked = True  # type: ignore[attr-defined]
            status, meta = exchange.answers[0]
            event(f"answered {status}{' unsure' if meta == UNSURE else ''}")
            possible = self.model[exchange.player]
            if status == 20:
                assert not exchange.left
                assert exchange.path in COUNTING
                count = int(exchange.text.removeprefix("count "))
                assert f"count {count}" == exchange.text
                if exchange.stale:
                    # Changed behind its back while it was under way: its save
                    # came before that change (and the record is as meddled)
                    # or after it (and the record is its count).
                    if count - 1 in possible:
                        self.model[exchange.player] = possible | {count}
                elif count - 1 in possible:
                    self.model[exchange.player] = {count}
                else:
                    raise AssertionError((count, possible))
            else:
                assert meta in ALLOWED_FAILURES[status], (status, meta)
                if meta == UNSURE:
                    assert exchange.path in COUNTING
                    self.may_have_counted(exchange.player)

    @invariant()
    def the_record_is_what_the_answers_said(self) -> None:
        if self.store is None:
            return
        for player in PLAYERS:
            possible = set(self.model[player])
            if any(e.player == player and e.pending for e in self.exchanges):
                # A save already made, its answer still on its way.
                possible |= {c + 1 for c in possible}
            assert self.stored(player) in possible, (player, possible)

    @invariant()
    def a_closed_capsule_has_answered_everyone_still_there(self) -> None:
        self.settle()
        if self.closing is not None and self.closing.called:
            for exchange in self.exchanges:
                assert exchange.done or exchange.left, exchange.path

    @invariant()
    def nothing_waits_once_everything_is_done(self) -> None:
        """Once every client has its answer or has left, a turn is held only
        by a request that waits for its store (which answers, or times out)."""
        self.settle()
        if all(e.done for e in self.exchanges) and not self.gates:
            opened = self.app.slabs[Tally]._opened
            if opened is not None:
                for visit in opened.running:
                    assert visit.waiting_on is not None
                    assert visit.timer is not None and visit.timer.active()
                holders = {visit.key for visit in opened.running}
                assert set(opened.turns._waiting) <= holders


RouteMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
test_route_against_its_model = RouteMachine.TestCase


def _on(kind: str, examples: int) -> Any:
    machine = type(f"RouteMachineOn{kind.title()}", (RouteMachine,), {"kind": kind})
    machine.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=40, deadline=None
    )
    return machine.TestCase


test_route_on_a_store_that_answers_later = _on("later", 100)
test_route_on_a_store_whose_saves_arrive_late = _on("late-save", 100)
test_route_on_a_store_that_loses_answers = _on("lossy", 100)
test_route_on_the_sqlite_store = _on("sqlite", 50)


def test_route_on_the_redis_store(redis_server: RedisServer) -> None:
    """The same machine on the Redis store: a real valkey-server (the test
    session's, under a key prefix of each run's own), answers on the real
    reactor between the machine's steps; "another process" changes records
    through Redis. 300 examples: about 5 s on a 2-core machine."""
    machine = type(
        "RouteMachineOnRedis",
        (RouteMachine,),
        {"kind": "redis", "redis_url": redis_server.url},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=300, stateful_step_count=40, deadline=None),
    )
