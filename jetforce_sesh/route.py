"""``@session_route``: hand a handler its player's record, and keep what it changed.

The path of one request:

1. identity: no certificate is ``60``, one outside its dates ``62``;
2. if another request of the same player holds this record, wait behind it, so
   that two requests never read the same record and both write it back;
3. load and decode the record, or make a new one from the class defaults;
4. run the handler; it may return a ``Response``, a Deferred or a coroutine;
5. encode the record and, only if the bytes changed, save them. A handler that
   raises, or a record that no longer fits its slot, saves nothing: the player's
   previous record stays as it was.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

from jetforce.app.base import DeferredResponse, Request, Response, Status
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import RecordTooLarge, StoreFull
from jetforce_sesh.identity import BadFingerprint, parse_fingerprint, validity_problem
from jetforce_sesh.sessions import RecordSlab
from jetforce_sesh.store import IImmediateSessionStore

R = TypeVar("R")

Outcome = Response | DeferredResponse
Handler = Callable[..., "Outcome | Deferred[Response] | Coroutine[Any, Any, Response]"]

_log = Logger()

NEED_CERTIFICATE = (
    "This capsule remembers you by your client certificate: attach one and try again"
)
NOT_SAVED = (
    "Your progress could not be saved (the record grew too large); your previous"
    " state is kept"
)
FAILED = "An unexpected error occurred; your previous state is kept"


class SessionRoute(Generic[R]):
    """A route handler wrapped to receive ``(request, record, **url_groups)``."""

    def __init__(self, slab: RecordSlab[R], handler: Handler) -> None:
        self.slab = slab
        self.handler = handler
        self.__name__ = getattr(handler, "__name__", "session_route")
        self.__doc__ = handler.__doc__
        self.__wrapped__ = handler

    def __call__(self, request: Request, **groups: Any) -> Outcome:
        refusal = self._check_certificate(request.environ)
        if refusal is not None:
            return refusal
        try:
            key = parse_fingerprint(request.environ["TLS_CLIENT_HASH"])
        except BadFingerprint:
            return Response(Status.CERTIFICATE_NOT_VALID, "Unreadable certificate")
        waiting = self.slab.waiting
        queue = waiting.get(key)
        if queue is not None:
            later: Deferred[Outcome] = Deferred()
            queue.append(lambda: self._run_queued(request, groups, key, later))
            return _deferred_response(later)
        waiting[key] = deque()
        outcome = self._visit(request, groups, key)
        if isinstance(outcome, Deferred):
            return _deferred_response(outcome)
        return outcome

    def _check_certificate(self, environ: dict[str, Any]) -> Response | None:
        if not environ.get("TLS_CLIENT_HASH"):
            return Response(Status.CLIENT_CERTIFICATE_REQUIRED, NEED_CERTIFICATE)
        problem = validity_problem(environ, self.slab.opened_clock().seconds())
        if problem is not None:
            return Response(Status.CERTIFICATE_NOT_VALID, problem)
        return None

    def _release(self, key: bytes) -> None:
        queue = self.slab.waiting[key]
        if queue:
            queue.popleft()()
        else:
            del self.slab.waiting[key]

    def _run_queued(
        self,
        request: Request,
        groups: dict[str, Any],
        key: bytes,
        later: Deferred[Outcome],
    ) -> None:
        outcome = self._visit(request, groups, key)
        if isinstance(outcome, Deferred):
            outcome.chainDeferred(later)
        else:
            later.callback(outcome)

    def _visit(
        self, request: Request, groups: dict[str, Any], key: bytes
    ) -> Outcome | Deferred[Outcome]:
        """Steps 3-5 for a player who now holds the record; releases it after."""
        store = self.slab.store
        if not IImmediateSessionStore.providedBy(store):
            remote: Deferred[Outcome] = ensureDeferred(
                self._visit_async(request, groups, key)
            )
            remote.addBoth(self._released, key)
            return remote
        codec = self.slab.codec
        try:
            if not store.admits_now(key):
                self._release(key)
                return _full()
            before = store.load_now(key)
            record = codec.new() if before is None else codec.decode(before)
            if before is None:
                before = codec.encode_unchecked(record)
            result = self.handler(request, record, **groups)
            if not isinstance(result, (Deferred, Coroutine)):
                outcome = self._save_now(key, before, record, result)
                self._release(key)
                return outcome
        except Exception:
            self._release(key)
            return self._failed(Failure())  # type: ignore[no-untyped-call]
        pending: Deferred[Outcome] = ensureDeferred(result)  # type: ignore[arg-type]
        pending.addCallback(
            lambda response: self._save_now(key, before, record, response)
        )
        pending.addErrback(self._failed)
        pending.addBoth(self._released, key)
        return pending

    def _released(self, result: Any, key: bytes) -> Any:
        self._release(key)
        return result

    def _save_now(
        self, key: bytes, before: bytes, record: R, response: object
    ) -> Outcome:
        if not isinstance(response, (Response, DeferredResponse)):
            raise TypeError(
                f"session route {self.__name__} returned {response!r}: return a"
                f" jetforce Response"
            )
        try:
            data = self.slab.codec.encode(record)
            if data != before:
                self.slab.store.save_now(key, data)  # type: ignore[attr-defined]
        except RecordTooLarge as error:
            _log.error("not saved: {error}", error=error)
            return Response(Status.TEMPORARY_FAILURE, NOT_SAVED)
        except StoreFull:
            return _full()
        return response

    def _failed(self, failure: Failure) -> Response:
        _log.failure("session route {name} failed", failure, name=self.__name__)
        return failed()

    async def _visit_async(
        self, request: Request, groups: dict[str, Any], key: bytes
    ) -> Outcome:
        """Steps 3-5 against a store in another process."""
        store = self.slab.store
        codec = self.slab.codec
        if not await store.admits(key):
            return _full()
        before = await store.load(key)
        record = codec.new() if before is None else codec.decode(before)
        if before is None:
            before = codec.encode_unchecked(record)
        try:
            response = await _as_awaitable(self.handler(request, record, **groups))
        except Exception:
            return self._failed(Failure())  # type: ignore[no-untyped-call]
        if not isinstance(response, (Response, DeferredResponse)):
            return self._save_now(key, before, record, response)  # raises TypeError
        try:
            data = codec.encode(record)
            if data != before:
                await store.save(key, data)
        except RecordTooLarge as error:
            _log.error("not saved: {error}", error=error)
            return Response(Status.TEMPORARY_FAILURE, NOT_SAVED)
        except StoreFull:
            return _full()
        return response


async def _as_awaitable(result: Any) -> Any:
    if isinstance(result, (Deferred, Coroutine)):
        return await result
    return result


def failed() -> Response:
    return Response(Status.CGI_ERROR, FAILED)


def _full() -> Response:
    return Response(
        Status.SERVER_UNAVAILABLE,
        "This game is full and is not taking new players right now; try again later",
    )


def _deferred_response(outcome: Deferred[Outcome]) -> DeferredResponse:
    """Split a Deferred outcome into the status and body Jetforce waits on."""
    status: Deferred[tuple[int, str]] = Deferred()
    body: Deferred[Any] = Deferred()

    def deliver(response: Outcome) -> None:
        if isinstance(response, DeferredResponse):
            response.send_status.chainDeferred(status)
            if isinstance(response.body, Deferred):
                response.body.chainDeferred(body)
            else:
                body.callback(_flatten(response.body))
            return
        status.callback((response.status, response.meta))
        # The client may have gone; its cancelled body ignores this.
        body.callback(_flatten(response.body))

    def broken(failure: Failure) -> None:
        _log.failure("session route failed", failure)
        deliver(failed())

    outcome.addCallbacks(deliver, broken)
    return DeferredResponse(status, body)


def _flatten(body: Any) -> str | bytes | None:
    if body is None or isinstance(body, (str, bytes)):
        return body
    parts = [p.encode() if isinstance(p, str) else p for p in body]
    return b"".join(parts)
