"""Who is asking: the client certificate's fingerprint, as 32 raw bytes.

Everything else in the package keys records by these bytes. This module turns the
spellings other servers use into them, and tells whether a certificate may be used
right now.
"""

from __future__ import annotations

import base64
import datetime
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    # Only in annotations: the base layer imports nothing of Jetforce.
    from jetforce.app.base import Request


FINGERPRINT_SIZE = 32
#: In a request's environ when it came with a certificate that cannot be read
#: (the server then passes the request on as if it had none).
BAD_CERTIFICATE = "jetforce_sesh.bad_certificate"


class BadFingerprint(ValueError):
    """A fingerprint string is in none of the accepted spellings."""


# Each accepted spelling, whole: nothing before or after it, no spaces inside.
_HEX = re.compile(r"(?:SHA256:)?([0-9A-F]{64})", re.IGNORECASE | re.ASCII)
_COLONS = re.compile(
    r"(?:SHA256:)?((?:[0-9A-F]{2}:){31}[0-9A-F]{2})", re.IGNORECASE | re.ASCII
)
_BASE64 = re.compile(r"[A-Za-z0-9_-]{43}=?", re.ASCII)


def parse_fingerprint(text: str) -> bytes:
    """Return the 32 raw bytes of a SHA-256 certificate fingerprint.

    Accepts exactly these spellings, with nothing around them: Jetforce's
    ``SHA256:<UPPERHEX>``, 64 hex digits in either case (gmid's lowercase form),
    32 colon-separated hex pairs (``openssl x509 -fingerprint``), and urlsafe
    base64 of 32 bytes (Jetforce's ``TLS_CLIENT_HASH_B64``, ``=`` optional).
    Anything else raises :class:`BadFingerprint`: a fingerprint keys a player's
    records, so a near miss must never parse to some other key.
    """
    if len(text) == 71 and text.startswith("SHA256:"):
        # Jetforce's own spelling, on every request: skip the regular expressions.
        # fromhex() skips spaces, so 32 bytes out means 64 hex digits went in.
        try:
            raw = bytes.fromhex(text[7:])
        except ValueError:
            raw = b""
        if len(raw) == FINGERPRINT_SIZE:
            return raw
    found = _HEX.fullmatch(text)
    if found is not None:
        return bytes.fromhex(found[1])
    found = _COLONS.fullmatch(text)
    if found is not None:
        return bytes.fromhex(found[1].replace(":", ""))
    if _BASE64.fullmatch(text):
        raw = base64.urlsafe_b64decode(text[:43] + "=")
        # The last character carries two spare bits: only one spelling is canonical.
        if base64.urlsafe_b64encode(raw)[:43].decode() == text[:43]:
            return raw
    raise BadFingerprint(
        f"fingerprint must be SHA256:<64 hex digits>, 64 hex digits or urlsafe"
        f" base64 of 32 bytes (got {text!r})"
    )


class Certificate(NamedTuple):
    """What a session needs of a request's certificate."""

    fingerprint: bytes
    not_before: datetime.datetime | None
    not_after: datetime.datetime | None
    # The same dates as timestamps, compared on every request.
    valid_from: float
    valid_until: float

    def problem(self, now: float) -> str | None:
        """Why the certificate cannot be used at ``now``, or None if it can."""
        if now < self.valid_from and self.not_before is not None:
            return (
                f"Your certificate is not valid until"
                f" {self.not_before:%Y-%m-%d %H:%M} UTC: use another one"
            )
        if now > self.valid_until and self.not_after is not None:
            return (
                f"Your certificate expired on {self.not_after:%Y-%m-%d}: make a new one"
            )
        return None


# A fingerprint names one certificate, dates included, so what was read of it
# once holds for its next request: reading the dates costs more than the slab.
# Bounded (about 400 bytes an entry): cleared whenever it reaches the cap.
_SEEN: dict[str, Certificate] = {}
_SEEN_MAX = 16384


def read_certificate(environ: Mapping[str, Any]) -> Certificate:
    """The request's certificate; BadFingerprint if it has none or it is garbled."""
    text = environ.get("TLS_CLIENT_HASH")
    if not text:
        raise BadFingerprint(
            "this request has no client certificate: ask for the fingerprint in a"
            " session route, which answers 60 before the handler runs"
        )
    cert = environ.get("client_certificate")
    if cert is None:
        # A CGI-style environ (the testing helpers, a bridge) carries the dates
        # as text, in the form Jetforce writes them; not cached, it is cheap.
        return _certificate(
            parse_fingerprint(text),
            _parse_stamp(environ.get("TLS_CLIENT_NOT_BEFORE")),
            _parse_stamp(environ.get("TLS_CLIENT_NOT_AFTER")),
        )
    known = _SEEN.get(text)
    if known is None:
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        known = _SEEN[text] = _certificate(
            parse_fingerprint(text), cert.not_valid_before_utc, cert.not_valid_after_utc
        )
    return known


def _certificate(
    fingerprint: bytes,
    not_before: datetime.datetime | None,
    not_after: datetime.datetime | None,
) -> Certificate:
    return Certificate(
        fingerprint,
        not_before,
        not_after,
        not_before.timestamp() if not_before is not None else float("-inf"),
        not_after.timestamp() if not_after is not None else float("inf"),
    )


def validity_problem(environ: Mapping[str, Any], now: float) -> str | None:
    """Why the request's certificate cannot be used at ``now``, or None if it can.

    Jetforce accepts self-signed certificates whatever their dates. A record
    keyed to an expired certificate would outlive the player's own decision to
    retire it, so expired and not-yet-valid certificates get no record.
    """
    return read_certificate(environ).problem(now)


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
    return read_certificate(request.environ).fingerprint
