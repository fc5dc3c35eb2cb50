"""What accounts keep: the records of their slabs, their settings, and the
sizes those records take at their largest."""

from __future__ import annotations

from typing import Any

import attrs

from jetforce_sesh.options import MAX_RECORD_SIZE
from jetforce_sesh.records.msgpack import MsgpackCodec

#: Characters of a certificate's common name kept and shown.
MAX_SHOWN_NAME = 32


@attrs.define
class Member:
    """One certificate of an account: the link from the certificate to it, and
    what the account page shows of it. Made when the certificate joins an
    account (a certificate nobody linked has none)."""

    account: bytes = b""
    name: str = ""
    #: When it joined the account (0: unknown).
    first_seen: float = 0.0
    last_seen: float = 0.0
    not_before: float = 0.0
    not_after: float = 0.0


@attrs.define
class Account:
    """An account with more than its first certificate, or with recovery
    codes: its certificates and its live recovery codes' hashes."""

    certificates: list[bytes] = attrs.Factory(list)
    #: SHA-256 of each live recovery code.
    recovery: list[bytes] = attrs.Factory(list)
    #: True for an account a revoke made: its key names no certificate, so its
    #: records are reached only through its certificates' links.
    fresh: bool = False


@attrs.define
class LinkCode:
    """A live link code (kept under its SHA-256, never as itself)."""

    account: bytes = b""
    made_by: bytes = b""
    #: The common name of the certificate that made it, for the confirmation.
    name: str = ""
    expires: float = 0.0


@attrs.define
class RecoveryCode:
    """A live recovery code (kept under its SHA-256): the account it attaches a
    new certificate to."""

    account: bytes = b""


@attrs.define
class Revoked:
    """The fresh account of a revoked certificate whose fingerprint names an
    account: kept apart, never forgotten for being idle nor evicted, since
    without it the certificate would map back to the account it lost."""

    account: bytes = b""


@attrs.define
class Tally:
    """What one certificate, or one client address, did within a window: wrong
    codes entered, recovery codes printed, link codes an address holds
    (``accounts.limits``)."""

    since: float = 0.0
    wrong: int = 0
    printed_since: float = 0.0
    printed: int = 0
    #: SHA-256 of the link codes an address (or an account) made, oldest
    #: first: one more than ``codes_per_address`` (``codes_per_account``)
    #: ends the oldest.
    codes: list[bytes] = attrs.Factory(list)


@attrs.define
class Pending:
    """A code in flight (``accounts.pending``): the code a certificate entered
    and must confirm before it joins that code's account."""

    code: bytes = b""
    #: "link" or "recovery".
    kind: str = ""
    until: float = 0.0


@attrs.frozen
class AccountOptions:
    """How accounts behave; see ``docs/howto/accounts.md``."""

    #: Seconds a link code works.
    code_ttl: float = 600.0
    #: Certificates one account may have.
    max_certificates: int = 8
    #: Certificates the capsule keeps links for, and accounts it keeps (None:
    #: ``--max-records``); when full, new links are refused, none is dropped.
    max_members: int | None = None
    #: Link codes live at once, over every account.
    max_codes: int = 1000
    #: Revoked certificates that named their account, kept for good.
    max_revoked: int = 10_000
    #: Wrong codes one certificate may enter per ``wrong_window`` seconds.
    wrong_codes: int = 5
    wrong_window: float = 900.0
    #: Wrong codes one client address (an IPv6 /64) may enter per window.
    wrong_per_address: int = 30
    #: Link codes one account holds live at once: one more ends its oldest.
    codes_per_account: int = 3
    #: Link codes one client address holds live at once: one more ends its
    #: oldest, so a flood from one address never holds more of ``max_codes``.
    codes_per_address: int = 10
    #: Recovery codes printed at once; printing again ends the earlier ones.
    recovery_codes: int = 8
    #: Recovery codes kept, over every account.
    max_recovery: int = 16_000
    #: Times one client address may print recovery codes per day.
    prints_per_address: int = 5
    #: Seconds after its expiry a certificate may still open its account page
    #: and make a link code for its successor.
    expired_grace: float = 30 * 86400.0
    #: Certificates, addresses and accounts the counters and codes in flight
    #: are kept for (the least recently used go first).
    guess_table: int = 10_000


# -- sizes ------------------------------------------------------------------------

#: The longest name, in bytes: every character of it 4 bytes of UTF-8.
_WIDEST_NAME = "\U0010ffff" * MAX_SHOWN_NAME
_KEY = b"\xff" * 32
_LATE = 1.0e300


def encoded_size(record: Any) -> int:
    """Bytes ``record`` takes as the default codec writes it."""
    codec: MsgpackCodec[Any] = MsgpackCodec(type(record), MAX_RECORD_SIZE)
    return len(codec.encode(record))


def largest_member() -> Member:
    return Member(_KEY, _WIDEST_NAME, _LATE, _LATE, _LATE, _LATE)


def largest_account(options: AccountOptions) -> Account:
    return Account(
        [_KEY] * options.max_certificates, [_KEY] * options.recovery_codes, True
    )


def largest_link_code() -> LinkCode:
    return LinkCode(_KEY, _KEY, _WIDEST_NAME, _LATE)


def largest_tally(options: AccountOptions) -> Tally:
    big = 2**63 - 1
    most = max(options.codes_per_address, options.codes_per_account)
    return Tally(_LATE, big, _LATE, big, [_KEY] * most)


def largest_pending() -> Pending:
    return Pending(_KEY, "recovery", _LATE)
