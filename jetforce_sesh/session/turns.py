"""Turn-taking per key: while one request holds a player's record, the rest wait.

Handing the record to the next waiter starts it at once, and a waiter that finishes
at once hands it on again. Done by recursion, a long queue would overflow the stack;
:meth:`Turns.release` runs such chains in a loop instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from jetforce.app.base import Response


class Waiter(Protocol):
    """A request in the queue: an in-process visit, or a bridge LOOKUP."""

    def start(self) -> None:
        """The turn has come: use it, then release it."""

    def refuse(self, response: Response | None) -> None:
        """The slab closes: answer ``response`` without playing."""


class Running(Protocol):
    """A request that holds its turn and may be waiting on something: what a
    closing slab needs of it."""

    def stop(self, response: Response | None) -> None:
        """End now, keeping nothing, and answer ``response`` (None: nobody
        listens)."""

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the turn is let go of."""


W = TypeVar("W", bound=Waiter)


class Turns(Generic[W]):
    """One holder per key; at most ``limit`` others wait, in arrival order.

    :attr:`in_use` is what the slab's store is told is held
    (``StoreSpec.held``): the keys whose holder has read the record.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Keys whose turn is held and whose holder has read the record: the
        #: store neither expires nor evicts their records. A key joins when
        #: its holder has loaded (so a record already idle when its player
        #: comes back expires on that load, as it would without a turn) and
        #: leaves when the turn is released.
        self.in_use: set[bytes] = set()
        # A held key with nobody waiting maps to None: most turns are taken and
        # given back with no queue, and need no deque made for them.
        self._waiting: dict[bytes, deque[W] | None] = {}
        # Keys whose queue release() is working through right now, and whether
        # the current holder has released again since it was started.
        self._draining: dict[bytes, bool] = {}

    def __contains__(self, key: object) -> bool:
        return key in self._waiting

    def __len__(self) -> int:
        return len(self._waiting)

    def hold(self, key: bytes) -> bool:
        """Take the turn for ``key`` if it is free; False if someone holds it."""
        if key in self._waiting:
            return False
        self._waiting[key] = None
        return True

    def wait(self, key: bytes, waiter: W) -> bool:
        """Queue ``waiter`` for ``key``'s turn; False if ``limit`` already wait."""
        queue = self._waiting[key]
        if queue is None:
            queue = self._waiting[key] = deque()
        if len(queue) >= self.limit:
            return False
        queue.append(waiter)
        return True

    def leave(self, key: bytes, waiter: W) -> None:
        """Take ``waiter`` out of the queue (its client left); its place is free."""
        queue = self._waiting.get(key)
        if queue is not None and waiter in queue:
            queue.remove(waiter)

    def use(self, key: bytes) -> None:
        """The holder of ``key``'s turn has read its record: keep it until the
        turn is released."""
        self.in_use.add(key)

    def release(self, key: bytes) -> None:
        """End the current turn for ``key`` and start the next waiter, if any."""
        self.in_use.discard(key)
        if key in self._draining:
            # Called from a waiter that the loop below started: let it go on.
            self._draining[key] = True
            return
        if key not in self._waiting:
            return  # cleared by close() while the turn was held
        if not self._waiting[key]:
            del self._waiting[key]
            return
        self._draining[key] = True
        try:
            while self._draining[key]:
                self._draining[key] = False
                queue = self._waiting.get(key)
                if not queue:
                    self._waiting.pop(key, None)
                    return
                queue.popleft().start()
        finally:
            del self._draining[key]

    def clear(self) -> list[W]:
        """Forget every turn and queue; return the waiters, none of them started."""
        waiters = [w for queue in self._waiting.values() if queue for w in queue]
        self._waiting.clear()
        return waiters
