"""A bridge connection's place in a player's turn-taking: waiting, then
holding, then given back, each within its time, and the holding charged to the
user whose program held it (:mod:`jetforce_sesh.bridge.holds`).

The turn is the slab's own (:class:`~jetforce_sesh.session.turns.Turns`), the
one an in-process request of the player takes, so a CGI program's
read-change-write never interleaves with a route's. The bridge's sweep ends a
turn that outlasts its limit; nothing else here keeps time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jetforce.app.base import Response
from twisted.internet.defer import Deferred

from jetforce_sesh.bridge.answers import Refusal
from jetforce_sesh.bridge.holds import HoldBudgets, Holder
from jetforce_sesh.session.slab import OpenSlab

#: Seconds a LOOKUP holds the player's turn at most.
HOLD_TIMEOUT = 10.0
#: Seconds a request waits for the turn, and a store operation for its answer.
WAIT_TIMEOUT = 10.0


class BridgeTurn:
    """One connection's turn of one player: waiting (for at most
    :data:`WAIT_TIMEOUT`), then holding (for at most :data:`HOLD_TIMEOUT`, and
    no longer than its holder's budget has left), then given back."""

    def __init__(
        self,
        opened: OpenSlab[Any],
        key: bytes,
        holder: Holder,
        budgets: HoldBudgets,
        expired: Callable[[BridgeTurn], None],
    ) -> None:
        self.opened = opened
        self.key = key
        self.holder = holder
        self.budgets = budgets
        #: Called when the sweep ends the turn while it is held.
        self._expired = expired
        self.held = False
        self.ended = False
        #: Fires when a turn waited for comes (None: it came at once).
        self.granted: Deferred[None] | None = None
        self.since = opened.clock.seconds()
        self.limit = WAIT_TIMEOUT

    def take(self) -> bool:
        """Hold the turn now (True), or wait in line for it (False: see
        :attr:`granted`); Refusal if the holder's budget is spent or the
        player's queue is full."""
        now = self.since
        left = self.budgets.left(self.holder, now)
        if left <= 0:
            raise self._spent(now)
        turns = self.opened.turns
        if turns.hold(self.key):
            self.held = True
            self.limit = HOLD_TIMEOUT if left >= HOLD_TIMEOUT else left
            return True
        self.granted = Deferred()
        if not turns.wait(self.key, self):
            self.ended = True
            raise Refusal(
                f"this player's queue is full ({turns.limit} may wait): try again later"
            )
        return False

    def _spent(self, now: float) -> Refusal:
        uid = self.holder[0]
        who = "programs on the bridge" if uid is None else f"user {uid}'s programs"
        budgets = self.budgets
        return Refusal(
            f"{who} held this player's turn for {budgets.budget:g} s within"
            f" {budgets.window:g} s, as long as --bridge-hold-budget allows: try"
            f" again in {budgets.reopens(self.holder, now):.0f} s"
        )

    def start(self) -> None:
        """The turn has come, from the queue."""
        if self.ended:
            self.opened.turns.release(self.key)  # left meanwhile: pass it on
            return
        assert self.granted is not None
        now = self.opened.clock.seconds()
        # Another connection of the same user may have spent the budget while
        # this one waited.
        left = self.budgets.left(self.holder, now)
        if left <= 0:
            self.ended = True
            self.opened.turns.release(self.key)
            self.granted.errback(self._spent(now))
            return
        self.held = True
        self.since = now
        self.limit = min(HOLD_TIMEOUT, left)
        self.granted.callback(None)

    def refuse(self, response: Response | None) -> None:
        """The slab closes while this waits."""
        self.ended = True
        if self.granted is not None and not self.granted.called:
            meta = response.meta if response is not None else "closing"
            self.granted.errback(Refusal(meta))

    def expire(self) -> None:
        """Held or waited too long."""
        if self.held:
            self.end()
            self._expired(self)
            return
        self.end()
        if self.granted is not None and not self.granted.called:
            self.granted.errback(
                Refusal(
                    f"this player stayed busy for {WAIT_TIMEOUT:g} s: try again later"
                )
            )

    def end(self) -> None:
        """Give the turn back, or leave the queue."""
        if self.ended:
            return
        self.ended = True
        if self.held:
            self.held = False
            self.budgets.charge(self.holder, self.since, self.opened.clock.seconds())
            self.opened.turns.release(self.key)
        else:
            self.opened.turns.leave(self.key, self)
