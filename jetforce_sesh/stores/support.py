"""What store writers share beyond the contract: the Deferred methods of an
immediate store, hook registration and calling, and the idle sweep.

Knows bytes and 32-byte keys, like the contract; no attrs classes, no Jetforce.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from jetforce_sesh.stores.contract import ANY_VERSION, Hook, RecordPage, Stored

_log = Logger()


class _Immediate(Protocol):
    def load_now(self, key: bytes) -> Stored | None: ...
    def peek_now(self, key: bytes) -> Stored | None: ...
    def save_now(self, key: bytes, data: bytes, expected: int) -> int: ...
    def delete_now(self, key: bytes, expected: int = ...) -> bool: ...
    def records_now(self, cursor: str | None = ..., limit: int = ...) -> RecordPage: ...


class DeferredMethods:
    """The Deferred half of an :class:`IImmediateSessionStore`, made from the
    immediate half: each method calls its ``_now`` twin and fires before it
    returns, with its answer or with what it raised."""

    def load(self: _Immediate, key: bytes) -> Deferred[Stored | None]:
        return maybeDeferred(self.load_now, key)

    def peek(self: _Immediate, key: bytes) -> Deferred[Stored | None]:
        return maybeDeferred(self.peek_now, key)

    def save(self: _Immediate, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        return maybeDeferred(self.save_now, key, data, expected)

    def delete(
        self: _Immediate, key: bytes, expected: int = ANY_VERSION
    ) -> Deferred[bool]:
        return maybeDeferred(self.delete_now, key, expected)

    def records(
        self: _Immediate, cursor: str | None = None, limit: int = 256
    ) -> Deferred[RecordPage]:
        return maybeDeferred(self.records_now, cursor, limit)


class HookMethods:
    """``on_created``, ``on_evicted`` and ``on_expired`` of a store whose
    hooks are in ``self.hooks``."""

    hooks: Hooks

    def on_created(self, hook: Hook) -> None:
        self.hooks.created.append(hook)

    def on_evicted(self, hook: Hook) -> None:
        self.hooks.evicted.append(hook)

    def on_expired(self, hook: Hook) -> None:
        self.hooks.expired.append(hook)


class IdleSweep:
    """A store's periodic sweep of idle records, on the store's clock.

    One sweep for all records (not a timer per record), every half idle
    timeout, from 1 to 60 s; a sweep that had more to drop than one pass may
    asks for another pass at once with :meth:`more`, after other work had its
    turn.
    """

    def __init__(
        self, clock: IReactorTime, idle_timeout: float, sweep: Callable[[], object]
    ) -> None:
        self.clock = clock
        self.idle_timeout = idle_timeout
        self._sweep = sweep
        self._loop: LoopingCall | None = None
        self._more: IDelayedCall | None = None

    def start(self) -> None:
        """Sweep from now on (never without an idle timeout)."""
        if self.idle_timeout > 0 and self._loop is None:
            self._loop = LoopingCall(self._sweep)
            self._loop.clock = self.clock
            self._loop.start(max(1.0, min(60.0, self.idle_timeout / 2)), now=False)

    def more(self) -> None:
        """Sweep again at once, if sweeping, and not asked already."""
        if self._loop is not None and self._more is None:
            self._more = self.clock.callLater(0, self._again)

    def _again(self) -> None:
        self._more = None
        self._sweep()

    def stop(self) -> None:
        """Leave nothing scheduled on the clock."""
        if self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None
        if self._more is not None and self._more.active():
            self._more.cancel()
        self._more = None


class Hooks:
    """A store's hooks, called only once the store is consistent again.

    A store queues a call with :meth:`queue` in the middle of an operation and
    calls :meth:`run` when the operation ends. Calls queued by a hook that writes to
    the store (its own operation nested in ours) run after it, in order, from the
    outermost :meth:`run`: no hook ever sees, or changes, a store halfway through
    an operation.
    """

    def __init__(self) -> None:
        self.created: list[Hook] = []
        self.evicted: list[Hook] = []
        self.expired: list[Hook] = []
        #: Calls queued and not yet made; a store checks it (cheaply) before
        #: calling :meth:`run`.
        self.pending: deque[tuple[list[Hook], bytes]] = deque()
        self._running = False

    def queue(self, hooks: list[Hook], key: bytes) -> None:
        if hooks:
            self.pending.append((hooks, key))

    def run(self) -> None:
        if self._running:
            return
        self._running = True
        try:
            while self.pending:
                hooks, key = self.pending.popleft()
                for hook in hooks:
                    try:
                        hook(key)
                    except Exception:
                        # A hook's failure does not undo the change it was told
                        # about, nor stop the other hooks or the operation.
                        _log.failure("store hook {hook!r} failed", hook=hook)
        finally:
            self._running = False
