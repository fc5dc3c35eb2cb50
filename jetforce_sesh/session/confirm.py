"""Confirmations a link cannot carry: a token only the capsule could have shown.

The threat: in Gemini the answer to an input prompt comes back as the query of
the same URL, so any page anywhere can carry the answer. A player who follows
``=> gemini://capsule/counter/reset?yes`` on some other capsule has typed "yes"
without knowing it. Nothing in the request tells that link from the player's
own answer, so a confirmation must carry something a stranger cannot write:
here, a **token** in the path of the confirming URL.

A token is a short MAC (80 bits, HMAC-SHA256) under the capsule's secret over
the player (the certificate's fingerprint and, in a session route, the key the
records are kept under), the action (the path it confirms, targets included)
and the state it acts on (the record as it is), and the current quarter hour.
So it is good only

- for this player: another certificate's request computes another MAC;
- for this action on this target: the path is part of it;
- for the record as it was when the capsule showed it: once the action (or
  anything else) has changed the record, it is stale, so a token is used once
  (it covers the record's value, not its history: should the record come back
  to that value within the window, the token is good again);
- for 15 to 30 minutes (:data:`WINDOW`), whatever the record does.

A forged, reused or stale token changes nothing: :func:`ask_yes` answers it
with a redirect to the same action with a fresh token, which asks the question
again. The capsule's secret is a record of a slab of its own
(:data:`SECRETS`), opened when first needed with the clock, settings and
stores the capsule's applications opened theirs with: it follows the capsule's
store (memory, ``--state-dir``, Redis), so it survives restarts and every
process of one capsule shares it, with nothing to configure. See
``docs/howto/confirm-an-action.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from typing import Any

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred, ensureDeferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import Abort, RecordUnreadable, StoreNotOpen
from jetforce_sesh.identity import fingerprint_of_request
from jetforce_sesh.keys import ENVIRON_KEY
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.session.slab import OpenSlab, Slab
from jetforce_sesh.session.visit import ENVIRON_VISIT
from jetforce_sesh.stores.contract import StoreFactory
from jetforce_sesh.stores.memory import memory_stores

__all__ = [
    "SECRETS",
    "WINDOW",
    "CapsuleSecret",
    "ask_for",
    "ask_yes",
    "confirm_path",
    "is_confirmed",
    "ready",
    "said_yes",
    "with_token",
]

_log = Logger()

#: Seconds in one window of a token: a token made in one window is good in that
#: one and the next, so between 15 and 30 minutes.
WINDOW = 900.0
#: Bytes of the MAC a token carries: 80 bits, 16 characters of base32.
TOKEN_BYTES = 10
#: What a route pattern adds for the token: an optional last path segment.
TOKEN_SEGMENT = r"(?:/(?P<token>[^/]*))?"

STARTING = Response(
    Status.SERVER_UNAVAILABLE,
    "The capsule is starting; nothing changed: try again in a moment",
)


@attrs.define
class CapsuleSecret:
    """The capsule's secret, under which every confirmation token is made."""

    secret: bytes = b""


#: The key of the one record of :data:`SECRETS`.
SECRET_KEY = hashlib.sha256(b"jetforce-sesh: the capsule's secret").digest()

#: The slab that keeps the capsule's secret: one record, never forgotten for
#: being idle. It is the capsule's, not a game's, so it is in no application's
#: slabs: it opens when a confirmation is first needed, with the clock, settings
#: and stores the capsule's applications opened theirs with, and closes with them.
SECRETS: Slab[CapsuleSecret] = Slab(
    CapsuleSecret,
    name="sesh.secret",
    title="Confirmations",
    record_size=64,
    max_records=1,
    idle_timeout=0,
    on_full="refuse",
)
SECRETS.unit = "secrets"


class _Secret:
    """The secret, the opening of :data:`SECRETS` it was read from, and what
    the last application opened its slabs with (to open this one alike)."""

    secret: bytes = b""
    opened: OpenSlab[CapsuleSecret] | None = None
    opens_with: tuple[IReactorTime, SlabOptions | None, StoreFactory] | None = None
    loading: Deferred[None] | None = None

    def __init__(self) -> None:
        self.waiters: list[Deferred[None]] = []


_state = _Secret()


def remember_stores(
    clock: IReactorTime,
    defaults: SlabOptions | None = None,
    stores: StoreFactory = memory_stores,
) -> None:
    """What :data:`SECRETS` opens with when first needed: the clock, settings
    and stores an application opens its own slabs with."""
    _state.opens_with = (clock, defaults, stores)


def close_secret(grace: float = 5.0) -> Deferred[None]:
    """Close :data:`SECRETS` (nothing if it is not open); the next
    confirmation opens it again."""
    _state.opened = None
    return SECRETS.close(grace)


def abandon_secret() -> None:
    """Let go of :data:`SECRETS` without waiting (the testing harness)."""
    _state.opened, _state.loading, _state.waiters = None, None, []
    SECRETS.abandon()


def _loaded() -> bool:
    return SECRETS.is_open and _state.opened is SECRETS.opened


def ready() -> Deferred[None]:
    """Fires once the secret can be used: at once if it is; else once
    :data:`SECRETS` is opened (as the last application opened its slabs) and
    the secret read, or made the first time. On a store in this process (memory,
    SQLite) that is at once too."""
    if _loaded():
        return succeed(None)
    if _state.opens_with is None:
        return fail(
            StoreNotOpen(
                "no application's slabs were opened: confirmations keep their"
                " secret in the capsule's store, which opens with the capsule"
            )
        )
    waiter: Deferred[None] = Deferred()
    _state.waiters.append(waiter)
    if _state.loading is None:
        clock, defaults, stores = _state.opens_with
        loading = SECRETS.open(clock, defaults, stores)
        _state.loading = loading
        loading.addCallback(lambda _: ensureDeferred(_load()))
        loading.addBoth(_settle, loading)
    return waiter


def _settle(result: object, loading: Deferred[None]) -> None:
    if _state.loading is loading:
        _state.loading = None  # a failure is tried again the next time
    if isinstance(result, Failure):
        _log.failure("the capsule's confirmation secret", result)
    waiters, _state.waiters = _state.waiters, []
    for waiter in waiters:
        if isinstance(result, Failure):
            waiter.errback(result)
        else:
            waiter.callback(None)


async def _load() -> None:
    opened = SECRETS.opened
    try:
        found, _ = await SECRETS.fetch(SECRET_KEY)
    except RecordUnreadable:
        # Nothing can be confirmed with a secret nobody can read: a new one
        # only makes the tokens shown before it stale.
        _log.warn("the capsule's confirmation secret cannot be read: made anew")
        await SECRETS.drop(SECRET_KEY)
        found = None
    if found is None or len(found.secret) != 32:
        fresh = CapsuleSecret(secrets.token_bytes(32))

        def keep(old: CapsuleSecret | None) -> CapsuleSecret:
            # Another process may have made it meanwhile: theirs wins.
            return old if old is not None and len(old.secret) == 32 else fresh

        found = await SECRETS.change(SECRET_KEY, keep)
        assert found is not None
    _state.secret, _state.opened = found.secret, opened


def _secret() -> bytes:
    if not _loaded():
        # Opened when first needed: at once on a store in this process; on
        # Redis the player is asked to try again while it answers.
        ready().addErrback(lambda _: None)
        if not _loaded():
            raise Abort(STARTING)
    return _state.secret


# -- tokens ----------------------------------------------------------------------


def _state_bytes(request: Request, state: object) -> bytes:
    """What ``state`` is, as bytes: bytes and text as they are, a record as its
    slab's codec writes it (so a token made from the record in hand holds for
    the record read back), any other attrs instance by its values."""
    if state is None:
        return b""
    if isinstance(state, bytes):
        return state
    if isinstance(state, str):
        return state.encode("utf-8")
    visit: Any = request.environ.get(ENVIRON_VISIT)
    if visit is not None and type(state) is visit.route.slab.record_type:
        data: bytes = visit.opened.codec.encode(state)
        return data
    if attrs.has(type(state)):
        values: Any = state
        return repr(attrs.astuple(values)).encode("utf-8")
    raise TypeError(
        f"a confirmation's state must be a record, bytes or str (got"
        f" {type(state).__name__}): pass what the action acts on"
    )


def _mac(
    secret: bytes, request: Request, path: str, state: bytes, window: int
) -> bytes:
    fingerprint = fingerprint_of_request(request)
    key = request.environ.get(ENVIRON_KEY, b"")
    message = b"".join(
        [
            b"jetforce-sesh confirmation 1\x00",
            fingerprint,
            bytes([len(key)]),
            key,
            window.to_bytes(8, "big"),
            hashlib.sha256(path.encode("utf-8")).digest(),
            hashlib.sha256(state).digest(),
        ]
    )
    return hmac.new(secret, message, hashlib.sha256).digest()[:TOKEN_BYTES]


def _window() -> int:
    return int(SECRETS.now() // WINDOW)


def _spelt(mac: bytes) -> str:
    return base64.b32encode(mac).decode("ascii").lower()


def token_for(request: Request, path: str, state: object = None) -> str:
    """The token that confirms ``path`` on ``state`` for the player of
    ``request``, now."""
    secret = _secret()
    return _spelt(_mac(secret, request, path, _state_bytes(request, state), _window()))


def confirm_path(request: Request, path: str, state: object = None) -> str:
    """``path`` with a fresh token: the link a page shows, or the URL a prompt
    is asked at, to confirm ``path`` on ``state`` for this player.

    ``state`` is what the action acts on, usually the record in hand as the
    handler leaves it (the token then goes stale once the record changes);
    bytes or text for anything else; None for an action that changes nothing
    the token could follow (it is then good for its window).
    """
    return f"{path}/{token_for(request, path, state)}"


def is_confirmed(
    request: Request, token: str | None, path: str, state: object = None
) -> bool:
    """True if ``token`` is one :func:`confirm_path` made for this player,
    ``path`` and ``state``, within the last :data:`WINDOW` to two."""
    secret = _secret()
    if not token:
        return False
    data = _state_bytes(request, state)
    now = _window()
    given = token.strip().lower().encode("ascii", "replace")
    return any(
        hmac.compare_digest(
            given, _spelt(_mac(secret, request, path, data, w)).encode()
        )
        for w in (now, now - 1)
    )


def said_yes(request: Request) -> bool:
    """True if the request's answer, trimmed and in any case, is ``yes``."""
    return request.query.strip().lower() == "yes"


def ask_yes(
    request: Request,
    token: str | None,
    path: str,
    state: object,
    prompt: str,
    *,
    elsewhere: Callable[[str], Response] | None = None,
) -> Response | bool:
    """Ask the player to type ``yes`` before ``path`` acts on ``state``, at a
    URL only the capsule could have shown them.

    Returns a response to send as it is, or the player's answer: True for
    ``yes``, False for anything else. Without a good token (a link from
    elsewhere, an old or forged one, any query it came with) nothing is done
    and the question is offered again at a fresh link of the player's own:
    ``elsewhere(link)``, a page that says so and links it, or without one a
    ``30`` redirect to it. With a good token, no query is the ``10`` prompt
    ``prompt``, and a query is the answer.
    """
    if not is_confirmed(request, token, path, state):
        fresh = confirm_path(request, path, state)
        if elsewhere is not None:
            return elsewhere(fresh)
        return Response(Status.REDIRECT_TEMPORARY, fresh)
    if not request.query:
        return Response(Status.INPUT, prompt)
    return said_yes(request)


def with_token(pattern: str) -> str:
    """A route pattern that also matches ``pattern`` followed by a token, which
    the handler receives as ``token`` (None when the URL has none)."""
    return pattern + TOKEN_SEGMENT


def ask_for(
    request: Request,
    token: str | None,
    path: str,
    state: object,
    prompt: str,
    *,
    sensitive: bool = False,
    elsewhere: Callable[[str], Response] | None = None,
) -> Response | str:
    """Ask the player for input (a guess, a move, a name) that acts on ``state``,
    at a URL only the capsule could have shown them.

    Returns a response to send as it is, or the player's answer (the query, as
    they typed it). Without a good token (a link from elsewhere, an old page, a
    forged token, whatever query it came with) nothing is read and the prompt is
    offered again at a fresh link of the player's own: ``elsewhere(link)``, or
    without one a ``30`` redirect to it, where the prompt is asked. With a good
    token, no query is the prompt (``10``, or ``11`` if ``sensitive``), and a
    query is the answer: the handler checks it and acts, or asks again with a
    ``10`` that says what was wrong (the token stays good while ``state`` does).
    """
    if not is_confirmed(request, token, path, state):
        fresh = confirm_path(request, path, state)
        if elsewhere is not None:
            return elsewhere(fresh)
        return Response(Status.REDIRECT_TEMPORARY, fresh)
    if not request.query:
        status = Status.SENSITIVE_INPUT if sensitive else Status.INPUT
        return Response(status, prompt)
    return request.query
