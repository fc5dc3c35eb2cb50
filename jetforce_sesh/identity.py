"""Who is asking: the client certificate's fingerprint, as 32 raw bytes.

Everything else in the package keys records by these bytes. This module turns the
spellings other servers use into them, and tells whether a certificate may be used
right now.
"""

from __future__ import annotations

import base64
import binascii
import datetime
from collections.abc import Mapping
from typing import Any

from jetforce.app.base import Request

FINGERPRINT_SIZE = 32


class BadFingerprint(ValueError):
    """A fingerprint string is in none of the accepted spellings."""


def parse_fingerprint(text: str) -> bytes:
    """Return the 32 raw bytes of a SHA-256 certificate fingerprint.

    Accepts Jetforce's ``SHA256:<UPPERHEX>``, bare hex in either case (gmid's
    lowercase form), with or without colons, and urlsafe base64 (Jetforce's
    ``TLS_CLIENT_HASH_B64``).
    """
    if len(text) == 71 and text.startswith("SHA256:"):
        # Jetforce's own spelling, on every request: skip the general parsing.
        try:
            return bytes.fromhex(text[7:])
        except ValueError:
            pass
    raw = text.strip()
    if raw[:7].upper() == "SHA256:":
        raw = raw[7:]
    hexdigits = raw.replace(":", "")
    if len(hexdigits) == 2 * FINGERPRINT_SIZE:
        try:
            return bytes.fromhex(hexdigits)
        except ValueError:
            pass
    try:
        decoded = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == FINGERPRINT_SIZE:
        return decoded
    raise BadFingerprint(
        f"fingerprint must be SHA256:<64 hex digits>, 64 hex digits or urlsafe"
        f" base64 of 32 bytes (got {text!r})"
    )


def validity_problem(environ: Mapping[str, Any], now: float) -> str | None:
    """Why the request's certificate cannot be used at ``now``, or None if it can.

    Jetforce accepts self-signed certificates whatever their dates. A record
    keyed to an expired certificate would outlive the player's own decision to
    retire it, so expired and not-yet-valid certificates get no record.
    """
    cert = environ.get("client_certificate")
    if cert is not None:
        not_before = cert.not_valid_before_utc
        not_after = cert.not_valid_after_utc
    else:
        # A CGI-style environ (the testing helpers, a bridge) carries the dates
        # as text, in the form Jetforce writes them.
        not_before = _parse_stamp(environ.get("TLS_CLIENT_NOT_BEFORE"))
        not_after = _parse_stamp(environ.get("TLS_CLIENT_NOT_AFTER"))
    if not_before is not None and now < not_before.timestamp():
        return (
            f"Your certificate is not valid until {not_before:%Y-%m-%d %H:%M} UTC:"
            f" use another one"
        )
    if not_after is not None and now > not_after.timestamp():
        return f"Your certificate expired on {not_after:%Y-%m-%d}: make a new one"
    return None


def _parse_stamp(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )


def fingerprint_of_request(request: Request) -> bytes:
    """The 32 bytes that key the requesting player's records.

    For a handler that needs to know who is asking beyond its own record, for
    instance to mark the player's own line in a ranking. Inside a session route
    there always is a certificate; elsewhere a request without one raises
    :class:`BadFingerprint`.
    """
    text = request.environ.get("TLS_CLIENT_HASH")
    if not text:
        raise BadFingerprint(
            "this request has no client certificate: ask for the fingerprint in a"
            " session route, which answers 60 before the handler runs"
        )
    return parse_fingerprint(text)
