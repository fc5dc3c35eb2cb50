"""Every answer a session route gives of its own, in one place.

The statuses say what happened, so a client (or a person reading its log) can
tell a full game from a slow one; each meta line says what the player can do.
``docs/reference/decorator.md`` lists them as a table; keep the two alike.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from jetforce.app.base import DeferredResponse, Response, Status
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

#: What a route handler may answer.
Outcome = Response | DeferredResponse

_log = Logger()

NEED_CERTIFICATE = Response(
    Status.CLIENT_CERTIFICATE_REQUIRED,
    "This capsule remembers you by your client certificate: attach one and try again",
)
UNREADABLE_CERTIFICATE = Response(
    Status.CERTIFICATE_NOT_VALID, "Unreadable certificate"
)
FULL = Response(
    Status.SERVER_UNAVAILABLE,
    "This game is full and is not taking new players right now; try again later",
)
SHUTTING_DOWN = Response(
    Status.SERVER_UNAVAILABLE,
    "The capsule is restarting; your previous state is kept: try again in a moment",
)
LOST = Response(
    Status.SERVER_UNAVAILABLE,
    "The game's records did not answer in time; nothing changed: try again in a moment",
)
UNSURE = Response(
    Status.SERVER_UNAVAILABLE,
    "The game's records did not answer in time; your move may or may not have been"
    " kept: look again in a moment",
)
UNAVAILABLE = Response(
    Status.SERVER_UNAVAILABLE,
    "The game's records cannot be kept right now; nothing changed: try again in a"
    " moment",
)
BUSY = Response(
    Status.SLOW_DOWN,
    "Your earlier requests to this game are still being answered: wait for them,"
    " then try again",
)
TOO_SLOW = Response(
    Status.TEMPORARY_FAILURE,
    "The game took too long to answer; your previous state is kept",
)
TRY_AGAIN = Response(
    Status.TEMPORARY_FAILURE,
    "Your game changed elsewhere while this request was played; nothing of it was"
    " kept: try again",
)
NOT_SAVED = Response(
    Status.PERMANENT_FAILURE,
    "Your progress no longer fits this game's records; your previous state is kept",
)
FAILED = Response(
    Status.CGI_ERROR, "An unexpected error occurred; your previous state is kept"
)


def reset_path(slab_name: str) -> str:
    """Where a player whose record cannot be read may start that game afresh."""
    return f"/sesh/reset/{slab_name}"


def unreadable_page(title: str, reset: str) -> Response:
    """The page a player gets instead of a game whose saved state cannot be
    read; ``reset`` is where to start afresh (a path made by
    :func:`reset_path`, with the token that confirms it)."""
    lines = [
        "# Your saved game cannot be read",
        "",
        f"Your saved state for {title} is kept as it is, but this version of the"
        " capsule cannot read it. Its owner has been told and can recover it.",
        "",
        "You can wait for the owner, or start this game afresh; that deletes the"
        " saved state and asks you to confirm first.",
        "",
        f"=> {reset} Start {title} afresh",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


def reset_prompt(title: str) -> Response:
    return Response(
        Status.INPUT,
        f"Type yes to delete your unreadable saved state for {title} and start afresh",
    )


def reset_declined(title: str, home: str) -> Response:
    lines = [
        "# Nothing was deleted",
        "",
        f"Your saved state for {title} is kept as it is: the answer was not yes.",
        "",
        f"=> {home} Play {title}",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


def reset_done(title: str, home: str) -> Response:
    lines = [
        "# Started afresh",
        "",
        f"Your saved state for {title} is deleted; your next visit starts anew.",
        "",
        f"=> {home} Play {title}",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


def reset_not_needed(title: str, home: str, why: str) -> Response:
    lines = [
        "# Nothing to reset",
        "",
        why,
        "",
        f"=> {home} Play {title}",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


def deferred_response(answer: Deferred[Outcome]) -> DeferredResponse:
    """The DeferredResponse Jetforce waits on while ``answer`` is still to come.

    Its body is a generator whose first item fires once the answer is known; the
    answer's own body (text, a Deferred, or an iterable that may yield Deferreds)
    follows as it is, so Jetforce treats it exactly as it would have at once.
    Jetforce cancels what it waits on when the client leaves: that cancels the
    visit.
    """
    status: Deferred[tuple[int, str]] = Deferred()
    ready: Deferred[None] = Deferred(lambda _: answer.cancel())
    known: list[Outcome] = []

    def deliver(outcome: Outcome) -> None:
        known.append(outcome)
        if isinstance(outcome, DeferredResponse):
            outcome.send_status.chainDeferred(status)
        else:
            status.callback((outcome.status, outcome.meta))
        if not ready.called:
            ready.callback(None)

    def lost(failure: Failure) -> None:
        if not failure.check(CancelledError):  # type: ignore[no-untyped-call]
            _log.failure("session route failed", failure)

    answer.addCallbacks(deliver, lost)

    def body() -> Generator[Any, None, None]:
        yield ready
        for outcome in known:
            content = outcome.body
            if isinstance(content, (str, bytes, Deferred)):
                yield content
            elif content:
                yield from content

    return DeferredResponse(status, body())
