"""``@session_route``: hand a handler its player's record, and keep what it changed.

The path of one request:

1. identity: no certificate is ``60``, one outside its dates ``62``;
2. if another request of the same player holds this record, wait behind it, so
   that two requests never read the same record and both write it back;
3. load and decode the record, or make a new one from the class defaults;
4. run the handler; it may return a ``Response``, a Deferred or a coroutine;
5. encode the record and, only if the bytes changed, save them. A handler that
   raises or takes too long, or a record that no longer fits its slot, saves
   nothing: the player's previous record stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from jetforce.app.base import DeferredResponse, Request, Response, Status
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    ensureDeferred,
)
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import RecordTooLarge, StoreFull
from jetforce_sesh.identity import BadFingerprint, read_certificate
from jetforce_sesh.sessions import RecordSlab

R = TypeVar("R")

Outcome = Response | DeferredResponse
Handler = Callable[..., "Outcome | Deferred[Outcome] | Coroutine[Any, Any, Outcome]"]

#: Seconds a handler that waits may hold its player's record before it is
#: cancelled; the player's later requests queue behind it meanwhile.
DEFAULT_TIMEOUT = 30.0

_log = Logger()

NEED_CERTIFICATE = (
    "This capsule remembers you by your client certificate: attach one and try again"
)
NOT_SAVED = "Your progress could not be saved; your previous state is kept"
TOO_SLOW = "The game took too long to answer; your previous state is kept"
FAILED = "An unexpected error occurred; your previous state is kept"
FULL = "This game is full and is not taking new players right now; try again later"


class SessionRoute(Generic[R]):
    """A route handler wrapped to receive ``(request, record, **url_groups)``."""

    def __init__(
        self,
        slab: RecordSlab[R],
        handler: Handler,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.slab = slab
        self.handler = handler
        self.timeout = timeout
        self.__name__ = getattr(handler, "__name__", "session_route")
        self.__doc__ = handler.__doc__
        self.__wrapped__ = handler

    def __call__(self, request: Request, **groups: Any) -> Outcome:
        environ = request.environ
        if not environ.get("TLS_CLIENT_HASH"):
            return Response(Status.CLIENT_CERTIFICATE_REQUIRED, NEED_CERTIFICATE)
        try:
            certificate = read_certificate(environ)
        except BadFingerprint:
            return Response(Status.CERTIFICATE_NOT_VALID, "Unreadable certificate")
        problem = certificate.problem(self.slab.now())
        if problem is not None:
            return Response(Status.CERTIFICATE_NOT_VALID, problem)
        key = certificate.fingerprint
        turns = self.slab.turns
        if not turns.hold(key):
            later: Deferred[Outcome] = Deferred()
            turns.wait(key, lambda: self._take_turn(request, groups, key, later))
            return _deferred_response(later)
        outcome = self._visit(request, groups, key)
        if isinstance(outcome, Deferred):
            return _deferred_response(outcome)
        return outcome

    def _take_turn(
        self,
        request: Request,
        groups: dict[str, Any],
        key: bytes,
        later: Deferred[Outcome],
    ) -> None:
        if later.called:
            # The client left while waiting (Jetforce cancelled its answer):
            # do not play a move nobody will see.
            self.slab.turns.release(key)
            return
        outcome = self._visit(request, groups, key)
        if isinstance(outcome, Deferred):
            outcome.chainDeferred(later)
        else:
            later.callback(outcome)

    def _visit(
        self, request: Request, groups: dict[str, Any], key: bytes
    ) -> Outcome | Deferred[Outcome]:
        """Steps 3-5 for a player who holds the turn; releases it exactly once."""
        store = self.slab.immediate
        if store is None:
            remote: Deferred[Outcome] = ensureDeferred(
                self._visit_async(request, groups, key)
            )
            return self._finish_later(remote, key)
        codec = self.slab.open_codec
        assert codec is not None  # open, since the store is
        try:
            if store.on_full == "refuse" and not store.admits_now(key):
                outcome: Outcome = Response(Status.SERVER_UNAVAILABLE, FULL)
            else:
                before = store.load_now(key)
                record = codec.new() if before is None else codec.decode(before)
                if before is None:
                    before = codec.encode_unchecked(record)
                result = self.handler(request, record, **groups)
                # type() first: isinstance against the Coroutine ABC is slow.
                if type(result) is not Response and isinstance(
                    result, (Deferred, Coroutine)
                ):
                    pending: Deferred[Outcome] = ensureDeferred(result)
                    pending.addCallback(self._save_now, key, before, record)
                    return self._finish_later(pending, key)
                outcome = self._save_now(result, key, before, record)
        except Exception:
            outcome = self._failed(Failure())  # type: ignore[no-untyped-call]
        self.slab.turns.release(key)
        return outcome

    def _finish_later(
        self, pending: Deferred[Outcome], key: bytes
    ) -> Deferred[Outcome]:
        if self.timeout is not None:
            pending.addTimeout(
                self.timeout, self.slab.opened_clock(), onTimeoutCancel=self._too_slow
            )
        pending.addErrback(self._failed)
        pending.addBoth(self._released, key)
        return pending

    def _released(self, result: Outcome, key: bytes) -> Outcome:
        self.slab.turns.release(key)
        return result

    def _save_now(
        self, response: object, key: bytes, before: bytes, record: R
    ) -> Outcome:
        if type(response) is not Response:
            response = _checked(response, self.__name__)
        slab = self.slab
        try:
            data = slab.open_codec.encode(record)  # type: ignore[union-attr]
            if data != before:
                slab.immediate.save_now(key, data)  # type: ignore[union-attr]
        except RecordTooLarge as error:
            _log.error("not saved: {error}", error=error)
            return Response(Status.TEMPORARY_FAILURE, NOT_SAVED)
        except StoreFull:
            return Response(Status.SERVER_UNAVAILABLE, FULL)
        return response

    def _too_slow(self, result: object, timeout: float) -> Outcome:
        # Called only when this route's own time limit cancelled the handler;
        # a TimeoutError of the handler's own is a failure like any other.
        _log.warn(
            "session route {name} took longer than {timeout} s; cancelled",
            name=self.__name__,
            timeout=timeout,
        )
        return Response(Status.TEMPORARY_FAILURE, TOO_SLOW)

    def _failed(self, failure: Failure) -> Response:
        if failure.check(CancelledError):  # type: ignore[no-untyped-call]
            # The client left and Jetforce cancelled the answer: nobody will
            # read this, and the handler's unfinished change is not kept.
            return Response(Status.TEMPORARY_FAILURE, FAILED)
        _log.failure("session route {name} failed", failure, name=self.__name__)
        return Response(Status.CGI_ERROR, FAILED)

    async def _visit_async(
        self, request: Request, groups: dict[str, Any], key: bytes
    ) -> Outcome:
        """Steps 3-5 against a store in another process."""
        store = self.slab.store
        codec = self.slab.codec
        if not await store.admits(key):
            return Response(Status.SERVER_UNAVAILABLE, FULL)
        before = await store.load(key)
        record = codec.new() if before is None else codec.decode(before)
        if before is None:
            before = codec.encode_unchecked(record)
        result = self.handler(request, record, **groups)
        if isinstance(result, (Deferred, Coroutine)):
            result = await result
        response = _checked(result, self.__name__)
        try:
            data = codec.encode(record)
            if data != before:
                await store.save(key, data)
        except RecordTooLarge as error:
            _log.error("not saved: {error}", error=error)
            return Response(Status.TEMPORARY_FAILURE, NOT_SAVED)
        except StoreFull:
            return Response(Status.SERVER_UNAVAILABLE, FULL)
        return response


def _checked(response: object, name: str) -> Outcome:
    if not isinstance(response, (Response, DeferredResponse)):
        raise TypeError(
            f"session route {name} returned {response!r}: return a jetforce Response"
        )
    return response


def _deferred_response(outcome: Deferred[Outcome]) -> DeferredResponse:
    """Split a Deferred outcome into the status and body Jetforce waits on."""
    status: Deferred[tuple[int, str]] = Deferred()
    # Jetforce cancels the body when the client leaves: pass that on, so a
    # request still waiting for its turn is not played for nobody.
    body: Deferred[Any] = Deferred(lambda _: outcome.cancel())

    def deliver(response: Outcome) -> None:
        if isinstance(response, DeferredResponse):
            response.send_status.chainDeferred(status)
            response_body: Any = response.body
        else:
            status.callback((response.status, response.meta))
            response_body = response.body
        # The client may have gone; its cancelled body ignores what follows.
        if isinstance(response_body, Deferred):
            response_body.chainDeferred(body)
        else:
            body.callback(_flatten(response_body))

    def lost(failure: Failure) -> None:
        if not failure.check(CancelledError):  # type: ignore[no-untyped-call]
            _log.failure("session route failed", failure)

    outcome.addCallbacks(deliver, lost)
    return DeferredResponse(status, body)


def _flatten(body: Any) -> str | bytes | None:
    if body is None or isinstance(body, (str, bytes)):
        return body
    parts = [p.encode() if isinstance(p, str) else p for p in body]
    return b"".join(parts)
