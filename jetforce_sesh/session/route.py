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

import contextlib
from typing import Any, Generic, TypeVar

from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from jetforce_sesh.errors import Abort, Conflict
from jetforce_sesh.identity import (
    BAD_CERTIFICATE,
    BadFingerprint,
    Certificate,
    read_certificate,
)
from jetforce_sesh.session.answers import (
    FAILED,
    NEED_CERTIFICATE,
    UNREADABLE_CERTIFICATE,
    Outcome,
    reset_declined,
    reset_done,
    reset_not_needed,
    reset_path,
    reset_prompt,
    unreadable_page,
)
from jetforce_sesh.session.confirm import ask_yes, confirm_path
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.session.visit import Handler, Visit, fields
from jetforce_sesh.stores.contract import Stored, check_key

R = TypeVar("R")

_log = Logger()
T = TypeVar("T")

#: Where the application marks a request whose query is a secret, for the log.
ENVIRON_SECRET = "jetforce_sesh.secret_query"
#: Where a route that admits expired certificates marks a request that came
#: with one (within the route's grace).
ENVIRON_EXPIRED = "jetforce_sesh.expired_certificate"


class IExpiredWayOut(Interface):
    """A key step that knows a way out for a player whose certificate expired
    (accounts: link a new certificate from the old one); the ``62`` answer
    says it."""

    def expired_note(certificate: Certificate, now: float) -> str | None:
        """A sentence for the ``62`` meta of ``certificate``, expired at
        ``now``; None if it has no way out (any more)."""


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
        expired_grace: float = 0.0,
    ) -> None:
        self.slab = slab
        self.handler = handler
        self.timeout = timeout
        #: True if the query this route is asked with is a secret (a code):
        #: the access log leaves it out, however the URL was spelt.
        self.secret = secret
        #: Seconds after its expiry a certificate may still use this route
        #: (marked in the environ as ENVIRON_EXPIRED); 0: none, it gets 62.
        self.expired_grace = expired_grace
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
        now = opened.clock.seconds()
        problem = certificate.problem(now)
        if problem is not None:
            until = certificate.valid_until
            expired = certificate.not_after is not None and now > until
            if not expired or now - certificate.valid_until > self.expired_grace:
                return Response(
                    Status.CERTIFICATE_NOT_VALID,
                    problem + _way_out(opened.keys, certificate, now, expired),
                )
            environ[ENVIRON_EXPIRED] = True
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
        path = reset_path(self.slab.name)
        with contextlib.suppress(Abort):  # not read yet: the reset route asks
            path = confirm_path(visit.request, path, unreadable_state(stored))
        return unreadable_page(self.slab.title or self.slab.name, path)

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

    def _readable(
        self, request: Request, record: R, token: str | None = None
    ) -> Response:
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
        # Asked at a URL only the capsule could have shown this player, for
        # this very record: "?yes" in a link from elsewhere deletes nothing.
        try:
            answer = ask_yes(
                visit.request,
                visit.groups.get("token"),
                reset_path(self.slab.name),
                unreadable_state(stored),
                reset_prompt(self._title).meta,
            )
        except Abort as abort:
            return abort.response
        if isinstance(answer, Response):
            return answer
        if not answer:
            return reset_declined(self._title, self.slab.home)
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


def unreadable_state(stored: Stored) -> bytes:
    """What a reset confirms: this version of these bytes, so the token goes
    stale once the record changes or goes."""
    return stored.version.to_bytes(8, "big", signed=True) + stored.data


def _way_out(keys: Any, certificate: Certificate, now: float, expired: bool) -> str:
    if not expired or not IExpiredWayOut.providedBy(keys):
        return ""
    note = keys.expired_note(certificate, now)
    return f". {note}" if note else ""
