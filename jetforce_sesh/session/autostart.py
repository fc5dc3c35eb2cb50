"""Serving a SessionApplication from a plain Jetforce server script.

Jetforce's own examples end with ``GeminiServer(app).run()``, and that server
tells its application nothing: it only hands it requests. So every
SessionApplication enrols here when it is made, and the reactor that
``GeminiServer`` runs (Twisted's global one, as Jetforce's) opens the enrolled
applications when it starts and closes them before it stops.

Only the applications nothing else has opened by then are opened, and of those
only the ones no other includes (a game included in a capsule is opened with
it, not on its own). The launcher opens and closes its applications itself and
turns this off; the testing harness opens its own on a Clock, which the global
reactor never sees. Besides the launcher, this is the one module that touches
the global reactor.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Sequence
from typing import Any, Protocol

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure


class Startable(Protocol):
    """What starting and stopping with the reactor needs of an application
    (a SessionApplication provides it)."""

    #: True once something opened it.
    started: bool
    #: Seconds the requests in flight get when it closes.
    grace: float

    @property
    def included(self) -> Sequence[Startable]: ...

    def open(self, clock: Any) -> Deferred[Any]: ...

    def close(self, grace: float) -> Deferred[None]: ...


_log = Logger()

_enrolled: weakref.WeakSet[Startable] = weakref.WeakSet()
#: The applications opened here, closed here when the reactor stops.
_opened: list[Startable] = []


class _Watch:
    #: True once the reactor has been asked to open and close the enrolled.
    watching = False
    #: True once the caller opens and closes them itself (the launcher).
    off = False


_watch = _Watch()


def enrol(app: Startable) -> None:
    """Open ``app`` when the global reactor starts, unless opened by then."""
    if _watch.off:
        return
    _enrolled.add(app)
    if not _watch.watching:
        # Imported here, not at the top: jetforce installed the global reactor
        # already (jetforce.server imports it), but this module must not be
        # what picks it for a program that installs another first.
        from twisted.internet import reactor

        _watch.watching = True
        reactor.callWhenRunning(_open_all, reactor)
        reactor.addSystemEventTrigger("before", "shutdown", close_opened)


def turn_off() -> None:
    """Leave opening and closing to the caller (the launcher does both)."""
    _watch.off = True
    _enrolled.clear()


def served(apps: list[Startable]) -> list[Startable]:
    """Of ``apps``, those not yet opened that no other application includes."""
    included = {id(other) for app in apps for other in app.included}
    return [app for app in apps if not app.started and id(app) not in included]


def _open_all(reactor: Any) -> Deferred[None] | None:
    if _watch.off:
        return None
    return open_served(list(_enrolled), reactor)


def open_served(apps: list[Startable], reactor: Any) -> Deferred[None]:
    """Open those of ``apps`` a server script serves, each with its own
    settings; a failure is printed in one line and stops ``reactor``."""
    apps = served(apps)
    opening = []
    for app in apps:
        opening.append(maybeDeferred(app.open, reactor))
        _opened.append(app)
    done: Deferred[Any] = gatherResults(opening, consumeErrors=True)

    def cannot_open(failure: Failure) -> None:
        error = failure.value
        error = getattr(getattr(error, "subFailure", None), "value", error)
        print(
            f"jetforce-sesh: error: the stores could not be opened:"
            f" {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        reactor.stop()

    return done.addCallbacks(lambda _: None, cannot_open)


def close_opened() -> Deferred[None]:
    """Close what :func:`open_served` opened, giving each its grace period."""
    apps, _opened[:] = list(_opened), []
    closing = [app.close(app.grace) for app in apps]

    def cannot_close(failure: Failure) -> None:
        _log.failure("the stores could not be closed", failure)

    done: Deferred[Any] = gatherResults(closing, consumeErrors=True)
    return done.addCallbacks(lambda _: None, cannot_close)
