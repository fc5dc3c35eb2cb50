"""Who is asking: the client certificate's fingerprint, as 32 raw bytes.

Everything else in the package keys records by these bytes. This module turns the
spellings other servers use into them, and tells whether a certificate may be used
right now.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import enum
from collections.abc import Mapping
from typing import Any

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


class CertificateState(enum.Enum):
    """Whether a request's certificate lets it have a session record."""

    MISSING = "missing"
    NOT_YET_VALID = "not yet valid"
    EXPIRED = "expired"
    VALID = "valid"


def certificate_state(
    environ: Mapping[str, Any], now: datetime.datetime
) -> CertificateState:
    """Judge the request's certificate against its validity dates at ``now``.

    Jetforce accepts self-signed certificates whatever their dates; a session
    keyed to an expired certificate would outlive the player's own choice to
    retire it, so expired and not-yet-valid certificates get no record.
    """
    if not environ.get("TLS_CLIENT_HASH"):
        return CertificateState.MISSING
    cert = environ.get("client_certificate")
    if cert is None:
        # A CGI-style environ (tests, the bridge) carries the dates as text.
        not_before = _parse_stamp(environ.get("TLS_CLIENT_NOT_BEFORE"))
        not_after = _parse_stamp(environ.get("TLS_CLIENT_NOT_AFTER"))
    else:
        not_before = cert.not_valid_before_utc
        not_after = cert.not_valid_after_utc
    if not_before is not None and now < not_before:
        return CertificateState.NOT_YET_VALID
    if not_after is not None and now > not_after:
        return CertificateState.EXPIRED
    return CertificateState.VALID


def _parse_stamp(value: object) -> datetime.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )


def fingerprint_from_environ(environ: Mapping[str, Any]) -> bytes | None:
    """The 32-byte fingerprint of the request's certificate, or None."""
    text = environ.get("TLS_CLIENT_HASH")
    if not text:
        return None
    return parse_fingerprint(text)
