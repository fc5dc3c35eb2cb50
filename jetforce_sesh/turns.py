"""Turn-taking per key: while one request holds a player's record, the rest wait.

Handing the record to the next waiter runs it at once, and a waiter whose handler
answers at once hands it on again. Done by recursion, a long queue would overflow
the stack; :meth:`Turns.release` runs such chains in a loop instead.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable


class Turns:
    """One holder per key; the others wait in arrival order."""

    def __init__(self) -> None:
        # A held key with nobody waiting maps to None: most turns are taken and
        # given back with no queue, and need no deque made for them.
        self._waiting: dict[bytes, deque[Callable[[], None]] | None] = {}
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

    def wait(self, key: bytes, start: Callable[[], None]) -> None:
        """Call ``start()`` when the turn for ``key`` comes; it must release it."""
        queue = self._waiting[key]
        if queue is None:
            queue = self._waiting[key] = deque()
        queue.append(start)

    def release(self, key: bytes) -> None:
        """End the current turn for ``key`` and start the next waiter, if any."""
        if key in self._draining:
            # Called from a waiter that the loop below started: let it go on.
            self._draining[key] = True
            return
        if not self._waiting[key]:
            del self._waiting[key]
            return
        self._draining[key] = True
        try:
            while self._draining[key]:
                self._draining[key] = False
                queue = self._waiting[key]
                if not queue:
                    del self._waiting[key]
                    return
                queue.popleft()()
        finally:
            del self._draining[key]

    def clear(self) -> None:
        """Forget every queue (the slab is closing; nobody will be served)."""
        self._waiting.clear()
