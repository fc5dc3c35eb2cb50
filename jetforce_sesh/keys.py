"""The key step: which 32 bytes a request's records and turn are kept under.

Between identity (the certificate) and the stores sits one component, asked once
per request. By default the key is the certificate's fingerprint: one certificate,
one player. Accounts replace it with one that maps several certificates to one key,
and nothing else changes: the route, ``Turns``, the stores and the games all use
the key they are given.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from zope.interface import Interface, implementer

from jetforce_sesh.identity import Certificate

if TYPE_CHECKING:
    # Only in annotations: the base layer imports nothing of Jetforce.
    from jetforce.app.base import Request

#: Where the route leaves the key of the request it is serving.
ENVIRON_KEY = "jetforce_sesh.player_key"


class IPlayerKeys(Interface):
    """Maps a request's certificate to the key its records are kept under."""

    def key_for(request: Request, certificate: Certificate) -> bytes | Deferred[bytes]:
        """The 32-byte key of the player making ``request``.

        Answers at once, or with a Deferred when the mapping lives elsewhere.
        """


class IFingerprintKeys(Interface):
    """A key step that can answer from a fingerprint alone, at once: what the
    CGI bridge needs, knowing nothing more of a player than that."""

    def key_for_fingerprint(fingerprint: bytes) -> bytes:
        """The 32-byte key of the player whose certificate has ``fingerprint``."""


@implementer(IPlayerKeys, IFingerprintKeys)
class FingerprintKeys:
    """One certificate, one player: the key is the certificate's fingerprint."""

    def key_for(self, request: Request, certificate: Certificate) -> bytes:
        return certificate.fingerprint

    def key_for_fingerprint(self, fingerprint: bytes) -> bytes:
        return fingerprint


def player_key(request: Request) -> bytes:
    """The key of the player making ``request``, as the session route found it.

    For a handler that needs to know who is asking beyond its own record, for
    instance to mark the player's own line in a ranking built from other records'
    keys. Only inside a session route: elsewhere it raises ``LookupError``.
    """
    environ: dict[str, Any] = request.environ
    try:
        key: bytes = environ[ENVIRON_KEY]
    except KeyError:
        raise LookupError(
            "player_key() is for handlers of session routes: this request did"
            " not go through one"
        ) from None
    return key
