"""One request's way through a session route: its turn, its record, its answer.

A :class:`Visit` takes the player's turn at the slab (or queues for it), loads
and decodes the record, runs the handler (which may wait), and saves what it
changed naming the version it read, running the handler again on a conflict.
It answers at once when the store is immediate and the handler does not wait:
the whole request then makes no Deferred. Otherwise the same coroutine waits,
driven here rather than by ``ensureDeferred`` so that a request that answers
at once pays for no Deferred, and so that cancellation and the time limits act
by what the visit is doing.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

from jetforce.app.base import DeferredResponse, Request, Response
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import (
    Abort,
    Conflict,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
    StoreFull,
    StoreUnavailable,
    StoreUnsure,
)
from jetforce_sesh.keys import ENVIRON_KEY
from jetforce_sesh.session.answers import (
    BUSY,
    FAILED,
    FULL,
    LOST,
    NOT_SAVED,
    SHUTTING_DOWN,
    TOO_SLOW,
    TRY_AGAIN,
    UNAVAILABLE,
    UNSURE,
    Outcome,
    deferred_response,
)
from jetforce_sesh.session.slab import OpenSlab, Slab
from jetforce_sesh.stores.contract import ABSENT, Stored, check_key

R = TypeVar("R")
T = TypeVar("T")

Handler = Callable[..., "Outcome | Deferred[Outcome] | Coroutine[Any, Any, Outcome]"]

#: Runs of the handler for one request when saves keep conflicting.
ATTEMPTS = 3
#: Seconds a store (or the key step) may take to answer before the player is
#: told to try again; the memory store always answers at once.
STORE_TIMEOUT = 10.0
#: Where a visit leaves itself in the request's environ, for after_save().
ENVIRON_VISIT = "jetforce_sesh.visit"

_log = Logger()

# What a visit is doing; cancellation and time limits act by it.
_KEY, _QUEUED, _LOADING, _HANDLER, _SAVING, _DONE = range(6)


class VisitedRoute(Protocol[R]):
    """What a visit needs of the session route it plays."""

    slab: Slab[R]
    handler: Handler
    timeout: float | None
    __name__: str

    def unreadable(
        self, visit: Visit[R], stored: Stored
    ) -> Outcome | Deferred[Outcome]: ...

    def log_failure(self, failure: Failure, key: bytes = b"") -> None: ...


class Visit(Generic[R]):
    """One request's way through a session route, from its turn to its answer."""

    __slots__ = (
        "after",
        "answer",
        "done",
        "groups",
        "key",
        "opened",
        "phase",
        "released",
        "request",
        "route",
        "stop_answer",
        "stopped",
        "timer",
        "waiting_on",
    )

    def __init__(
        self,
        route: VisitedRoute[R],
        opened: OpenSlab[R],
        request: Request,
        groups: dict[str, Any],
    ) -> None:
        self.route = route
        self.opened = opened
        self.request = request
        self.groups = groups
        self.key = b""
        #: What Jetforce waits on, once the visit cannot answer at once.
        self.answer: Deferred[Outcome] | None = None
        #: The Deferred the visit waits on right now, if any.
        self.waiting_on: Deferred[Any] | None = None
        self.timer: IDelayedCall | None = None
        self.phase = _KEY
        #: Set once the visit may keep nothing more: time is up, or nobody listens.
        self.stopped = False
        #: What to answer once stopped (None: nobody is listening).
        self.stop_answer: Response | None = None
        self.released = False
        self.after: list[Callable[[], object]] | None = None
        self.done: list[Callable[[], None]] | None = None

    # -- taking a turn ---------------------------------------------------------

    def begin(self, key: bytes) -> Outcome:
        """Play now if the player's turn is free, else queue; the answer to give."""
        self.key = key
        self.request.environ[ENVIRON_KEY] = key
        turns = self.opened.turns
        if turns.hold(key):
            coro = self._play()
            try:
                waited = coro.send(None)
            except StopIteration as done:
                self._release()
                return done.value  # type: ignore[no-any-return]
            self.answer = Deferred(self._cancelled)
            self.opened.running.add(self)
            self._wait(coro, waited)
            return deferred_response(self.answer)
        self.answer = Deferred(self._cancelled)
        self.phase = _QUEUED
        if not turns.wait(key, self):
            self.route.slab.stats.queue_full += 1
            return BUSY
        return deferred_response(self.answer)

    def begin_later(self, key: Deferred[bytes]) -> DeferredResponse:
        """As :meth:`begin`, once the key step has answered."""
        answer: Deferred[Outcome] = Deferred(self._cancelled)
        self.answer = answer
        self.waiting_on = key
        self.timer = self.opened.clock.callLater(STORE_TIMEOUT, self._store_slow, LOST)
        # Chained, not paired: a key the step got wrong fails in _key_found too.
        key.addCallback(self._key_found).addErrback(self._failed_early)
        return deferred_response(answer)

    def _stop_timer(self, result: T) -> T:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None
        return result

    def _key_found(self, key: bytes) -> None:
        self._stop_timer(None)
        self.waiting_on = None
        if self.stopped:
            return  # the client left while the key step worked
        check_key(key)
        self.key = key
        self.request.environ[ENVIRON_KEY] = key
        turns = self.opened.turns
        if self.opened.closing:
            self.refuse(SHUTTING_DOWN)
        elif turns.hold(key):
            self.start()
        else:
            self.phase = _QUEUED
            if not turns.wait(key, self):
                self.route.slab.stats.queue_full += 1
                self.refuse(BUSY)

    def _failed_early(self, failure: Failure) -> None:
        self._stop_timer(None)
        if self.stopped:
            self.refuse(self.stop_answer)
            return
        if isinstance(failure.value, StoreUnavailable):
            # The key step reads a store too (accounts' links, in Redis): one
            # that cannot answer is the store's trouble, not the handler's.
            _log.warn(
                "key step: {error}",
                error=str(failure.value),
                **fields(self.route.slab, b"", "store unavailable", UNAVAILABLE),
            )
            self.refuse(UNAVAILABLE)
            return
        self.route.log_failure(failure, self.key)
        self.refuse(FAILED)

    def start(self) -> None:
        """The player's turn has come (from the queue): play."""
        assert self.answer is not None
        if self.answer.called:
            self._release()  # refused or left meanwhile
            return
        self.opened.running.add(self)
        self._drive(self._play())

    def refuse(self, response: Response | None) -> None:
        """Answer ``response`` without playing any further (None: answer nothing)."""
        if response is not None and self.answer is not None and not self.answer.called:
            self.answer.callback(response)

    # -- driving the coroutine -------------------------------------------------

    def _drive(
        self, coro: Coroutine[Any, Any, Outcome | None], result: object = None
    ) -> None:
        # As Twisted's own driver does: a value goes in by send() (the awaiting
        # Deferred reads it back itself), a failure is thrown in where it waited.
        try:
            if isinstance(result, Failure):
                waited = result.throwExceptionIntoGenerator(coro)  # type: ignore[no-untyped-call]
            else:
                waited = coro.send(result)
        except StopIteration as done:
            self._finish(done.value)
            return
        self._wait(coro, waited)

    def _wait(self, coro: Coroutine[Any, Any, Outcome | None], waited: object) -> None:
        while not isinstance(waited, Deferred):
            # Only Deferreds can be waited on in Twisted's reactor.
            error = TypeError(
                f"session route {self.route.__name__} waited on {waited!r}: await"
                f" Deferreds (or coroutines that do)"
            )
            try:
                waited = coro.throw(error)
            except StopIteration as done:
                self._finish(done.value)
                return
        self.waiting_on = waited
        waited.addBoth(self._resume, coro)

    def _resume(
        self, result: object, coro: Coroutine[Any, Any, Outcome | None]
    ) -> None:
        # Called while the awaited Deferred still holds ``result``; returning None
        # leaves it holding nothing, so a failure handed on is not reported again.
        self.waiting_on = None
        self._drive(coro, result)

    # -- the visit itself --------------------------------------------------------

    async def _play(self) -> Outcome | None:
        route = self.route
        slab = route.slab
        opened = self.opened
        codec = opened.codec
        immediate = opened.immediate
        key = self.key
        self.request.environ[ENVIRON_VISIT] = self
        read = False  # whether an earlier attempt found a record
        try:
            for _ in range(ATTEMPTS):
                self.phase = _LOADING
                if immediate is not None:
                    stored = immediate.load_now(key)
                else:
                    stored = await self._store_waits(opened.store.load(key), LOST)
                if self.stopped:
                    return self.stop_answer
                # Read: the store keeps the record for us until we let go.
                opened.turns.use(key)
                if stored is None and read:
                    # The record this request read went away meanwhile (deleted
                    # elsewhere, or dropped by a store that cannot keep held
                    # records): running the handler on a new one would answer
                    # 20 with the player's progress silently gone.
                    slab.stats.vanished += 1
                    _log.warn(
                        "slab {slab}: the record of player {player} went away while"
                        " a request used it; nothing was kept",
                        **fields(slab, key, "vanished", TRY_AGAIN),
                    )
                    return TRY_AGAIN
                read = stored is not None
                if stored is None:
                    record = codec.new()
                    # Encoded afresh: a default may be drawn at random (a secret
                    # number), and a look that changes nothing must keep nothing.
                    before = codec.encode(record)
                    version = ABSENT
                else:
                    before, version = stored
                    try:
                        record = codec.decode(before)
                    except RecordUnreadable as error:
                        slab.unreadable(key, stored, error)
                        answer: Outcome | Deferred[Outcome] = route.unreadable(
                            self, stored
                        )
                        if isinstance(answer, Deferred):
                            answer = await answer
                        return answer
                self.after = None
                self.phase = _HANDLER
                try:
                    result: object = route.handler(self.request, record, **self.groups)
                    # type() first: isinstance against the Coroutine ABC is slow.
                    if type(result) is not Response and isinstance(
                        result, (Deferred, Coroutine)
                    ):
                        result = await self._handler_waits(result)
                except Abort as abort:
                    return self.stop_answer if self.stopped else abort.response
                if self.stopped:
                    return self.stop_answer
                response = _checked(result, route.__name__)
                data = codec.encode(record)
                if data == before:
                    break
                self.phase = _SAVING
                try:
                    if immediate is not None:
                        immediate.save_now(key, data, version)
                    else:
                        await self._store_waits(
                            opened.store.save(key, data, version), UNSURE
                        )
                except Conflict:
                    continue
                break
            else:
                slab.stats.conflicts_given_up += 1
                return TRY_AGAIN
        except StoreFull:
            return FULL
        except StoreUnsure as error:
            # The save's answer was lost: saying "nothing changed" could be false.
            _log.error("perhaps not saved: {error}", error=str(error))
            return UNSURE
        except StoreUnavailable as error:
            _log.error(
                "not saved: {error}",
                error=str(error),
                **fields(slab, key, "not saved", UNAVAILABLE),
            )
            return UNAVAILABLE
        except RecordTooLarge as error:
            slab.stats.too_large += 1
            _log.error(
                "not saved: {error}",
                error=str(error),
                **fields(slab, key, "too large", NOT_SAVED),
            )
            return NOT_SAVED
        except RecordInvalid:
            if self.stopped:
                return self.stop_answer
            slab.stats.invalid += 1
            _log.failure(
                "session route {name} failed",
                name=route.__name__,
                **fields(slab, key, "record invalid", FAILED),
            )
            return FAILED
        except Exception:
            if self.stopped:
                return self.stop_answer
            route.log_failure(Failure(), key)  # type: ignore[no-untyped-call]
            return FAILED
        self._saved()
        return response

    async def _store_waits(self, pending: Deferred[Any], late: Response) -> Any:
        """What the store (or the key step) answers, within STORE_TIMEOUT.

        A store that does not answer in time gets the player ``late`` at once, and
        the turn is free; what the store does afterwards keeps nothing more of
        this request (a save it finishes late stands, and is not taken back).
        """
        self.timer = self.opened.clock.callLater(STORE_TIMEOUT, self._store_slow, late)
        try:
            return await pending
        finally:
            self._stop_timer(None)

    def _store_slow(self, late: Response) -> None:
        self.timer = None
        _log.warn(
            "slab {slab}: the store did not answer within {timeout} s",
            timeout=STORE_TIMEOUT,
            **fields(self.route.slab, self.key, "store late", late),
        )
        self.stopped = True
        self.stop_answer = late
        self.refuse(late)
        self.waiting_on = None
        self._release()

    async def _handler_waits(self, pending: Any) -> object:
        timeout = self.route.timeout
        if timeout is not None:
            self.timer = self.opened.clock.callLater(timeout, self._time_up)
        try:
            return await pending
        finally:
            self._stop_timer(None)

    def _saved(self) -> None:
        callbacks, self.after = self.after, None
        for callback in callbacks or ():
            try:
                callback()
            except Exception:
                _log.failure(
                    "after_save callback {callback!r} of session route {name} failed",
                    callback=callback,
                    name=self.route.__name__,
                )

    # -- ending ----------------------------------------------------------------

    def _finish(self, outcome: Outcome | None) -> None:
        self.phase = _DONE
        if outcome is not None and self.answer is not None and not self.answer.called:
            self.answer.callback(outcome)
        self._release()

    def _release(self) -> None:
        if self.released:
            return
        self.released = True
        # The environ refers to the visit for after_save(): break the cycle.
        self.request.environ.pop(ENVIRON_VISIT, None)
        self.opened.running.discard(self)
        self.opened.turns.release(self.key)
        for callback in self.done or ():
            callback()

    def when_done(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` once the visit has let go of the player's turn."""
        if self.released:
            callback()
        else:
            self.done = [*(self.done or ()), callback]

    def _time_up(self) -> None:
        self.timer = None
        self.route.slab.stats.timeouts += 1
        _log.warn(
            "session route {name} took longer than {timeout} s; cancelled",
            name=self.route.__name__,
            timeout=self.route.timeout,
            **fields(self.route.slab, self.key, "timed out", TOO_SLOW),
        )
        self.stop(TOO_SLOW)

    def stop(self, response: Response | None) -> None:
        """End the visit now, keeping nothing, and answer ``response`` (None: the
        client left).

        A handler still waiting is cancelled, and the player's turn is free at
        once, whatever the handler does next. A load under way is let finish, and
        the handler never runs. A save under way is let finish too, and its
        outcome is the answer: it can no longer be taken back.
        """
        if self.phase == _QUEUED:
            self.opened.turns.leave(self.key, self)
            if response is not None:
                self.refuse(response)
            return
        if self.phase in (_SAVING, _DONE):
            return
        self.stopped = True
        self.stop_answer = response
        if self.phase == _HANDLER:
            if response is not None:
                self.refuse(response)
            waiting, self.waiting_on = self.waiting_on, None
            self._release()
            if waiting is not None:
                waiting.cancel()
        elif self.phase == _KEY and self.waiting_on is not None:
            waiting, self.waiting_on = self.waiting_on, None
            waiting.cancel()

    def _cancelled(self, answer: Deferred[Outcome]) -> None:
        # Jetforce cancels what it waits on when the client leaves.
        self.stop(None)


def fields(slab: Slab[Any], key: bytes, event: str, answer: Response) -> dict[str, Any]:
    """A log event's fields: the slab, the player (the first 4 bytes of their
    key, in hex: never the whole fingerprint), what happened, and the status
    the player got."""
    return {
        "slab": slab.name,
        "player": key[:4].hex(),
        "event": event,
        "status": int(answer.status),
    }


def after_save(request: Request, callback: Callable[[], object]) -> None:
    """Call ``callback()`` once, after this request's record change is kept.

    For what a handler must do exactly once, outside the record (send a message,
    write a log line): a handler may run more than once for one request when its
    save conflicts, and not at all to completion when it fails, but the callbacks
    of only the run whose change was kept are called, after it was. Only inside a
    session route; LookupError elsewhere.
    """
    visit = request.environ.get(ENVIRON_VISIT)
    if not isinstance(visit, Visit):
        raise LookupError(
            "after_save() is for handlers of session routes: this request did not"
            " go through one"
        )
    if visit.after is None:
        visit.after = []
    visit.after.append(callback)


def _checked(response: object, name: str) -> Outcome:
    if not isinstance(response, (Response, DeferredResponse)):
        raise TypeError(
            f"session route {name} returned {response!r}: return a jetforce Response"
        )
    return response
