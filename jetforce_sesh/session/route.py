"""``@session_route``: hand a handler its player's record, and keep what it changed.

The path of one request (one :class:`Visit`):

1. identity: no certificate is ``60``, one outside its dates ``62``; the key step
   maps the certificate to the key the player's records are kept under;
2. if another request of the same player holds this slab's record, wait behind it
   (at most ``max_queued`` may wait; more get ``44``), so that two requests of one
   process never read the same record and both write it back;
3. load and decode the record with its version, or make a new one from the class
   defaults;
4. run the handler; it may return a ``Response``, a Deferred or a coroutine;
5. encode the record and, only if the bytes changed, save them naming the version
   read. If the record moved meanwhile (another process, a CGI program, a hook),
   the save conflicts and the handler runs again on the fresh record, up to
   :data:`ATTEMPTS` times. A handler that raises or takes too long, or a record
   that cannot be stored, saves nothing: the player's previous record stays.

Everything answers at once when the store does (the memory store) and the handler
does: the whole request then makes no Deferred. Otherwise the same code waits.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import (
    Conflict,
)
from jetforce_sesh.identity import BAD_CERTIFICATE, BadFingerprint, read_certificate
from jetforce_sesh.session.answers import (
    FAILED,
    NEED_CERTIFICATE,
    UNREADABLE_CERTIFICATE,
    Outcome,
    reset_done,
    reset_not_needed,
    reset_prompt,
    unreadable_page,
)
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.session.visit import Handler, Visit, fields
from jetforce_sesh.stores.contract import Stored, check_key

R = TypeVar("R")

_log = Logger()
T = TypeVar("T")

#: Where the application marks a request whose query is a secret, for the log.
ENVIRON_SECRET = "jetforce_sesh.secret_query"
#: Seconds a handler that waits may hold its player's record before it is
#: cancelled; the player's later requests queue behind it meanwhile.
DEFAULT_TIMEOUT = 30.0


class SessionRoute(Generic[R]):
    """A route handler wrapped to receive ``(request, record, **url_groups)``."""

    def __init__(
        self,
        slab: Slab[R],
        handler: Handler,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        secret: bool = False,
    ) -> None:
        self.slab = slab
        self.handler = handler
        self.timeout = timeout
        #: True if the query this route is asked with is a secret (a code):
        #: the access log leaves it out, however the URL was spelt.
        self.secret = secret
        self.__name__ = getattr(handler, "__name__", "session_route")
        self.__doc__ = handler.__doc__
        self.__wrapped__ = handler

    def __call__(self, request: Request, **groups: Any) -> Outcome:
        environ = request.environ
        if not environ.get("TLS_CLIENT_HASH"):
            if BAD_CERTIFICATE in environ:
                return UNREADABLE_CERTIFICATE
            return NEED_CERTIFICATE
        opened = self.slab.admit()
        if isinstance(opened, Response):
            return opened
        try:
            certificate = read_certificate(environ)
        except BadFingerprint:
            return UNREADABLE_CERTIFICATE
        problem = certificate.problem(opened.clock.seconds())
        if problem is not None:
            return Response(Status.CERTIFICATE_NOT_VALID, problem)
        try:
            key = opened.keys.key_for(request, certificate)
            if not isinstance(key, Deferred):
                check_key(key)  # a key step's mistake stops here, not in the store
        except Exception:
            self.log_failure(Failure())  # type: ignore[no-untyped-call]
            return FAILED
        visit = Visit(self, opened, request, groups)
        if isinstance(key, Deferred):
            return visit.begin_later(key)
        return visit.begin(key)

    def unreadable(
        self, visit: Visit[R], stored: Stored
    ) -> Outcome | Deferred[Outcome]:
        """The answer to a player whose record cannot be read: a page that says
        so, with a way to start afresh. Nothing is changed."""
        return unreadable_page(self.slab.title or self.slab.name, self.slab.name)

    def log_failure(self, failure: Failure, key: bytes = b"") -> None:
        self.slab.stats.failures += 1
        _log.failure(
            "session route {name} failed",
            failure,
            name=self.__name__,
            **fields(self.slab, key, "handler failed", FAILED),
        )


class ResetRoute(SessionRoute[R]):
    """``/sesh/reset/<slab>``: delete a record that cannot be read, once asked."""

    def __init__(self, slab: Slab[R]) -> None:
        super().__init__(slab, self._readable)

    def _readable(self, request: Request, record: R) -> Response:
        return reset_not_needed(
            self._title,
            self.slab.home,
            f"Your saved state for {self._title} can be read (or there is none):"
            " nothing needs starting afresh here.",
        )

    @property
    def _title(self) -> str:
        return self.slab.title or self.slab.name

    def unreadable(
        self, visit: Visit[R], stored: Stored
    ) -> Outcome | Deferred[Outcome]:
        if visit.request.query.strip().lower() != "yes":
            return reset_prompt(self._title)
        done = reset_done(self._title, self.slab.home)
        changed = reset_not_needed(
            self._title,
            self.slab.home,
            f"Your saved state for {self._title} changed meanwhile: open the game"
            " again to see it.",
        )

        def moved(failure: Failure) -> Outcome:
            failure.trap(Conflict)  # type: ignore[no-untyped-call]
            return changed

        deleted = visit.opened.store.delete(visit.key, stored.version)
        return deleted.addCallbacks(lambda _: done, moved)
