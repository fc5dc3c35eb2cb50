"""What accounts keep: the records of their four slabs, and their settings."""

from __future__ import annotations

import attrs


@attrs.define
class Member:
    """One certificate of an account."""

    account: bytes = b""
    name: str = ""
    first_seen: float = 0.0
    last_seen: float = 0.0
    not_before: float = 0.0
    not_after: float = 0.0


@attrs.define
class Account:
    """An account: its certificates, and its live link code's hash."""

    certificates: list[bytes] = attrs.Factory(list)
    code: bytes = b""
    code_expires: float = 0.0


@attrs.define
class LinkCode:
    """A live link code (kept under its SHA-256, never as itself)."""

    account: bytes = b""
    made_by: bytes = b""
    expires: float = 0.0


@attrs.define
class Revoked:
    """The fresh account of a revoked certificate whose fingerprint names an
    account: kept apart, never forgotten for being idle nor evicted, since
    without it the certificate would map back to the account it lost."""

    account: bytes = b""


@attrs.frozen
class AccountOptions:
    """How accounts behave; see ``docs/reference/accounts.md``."""

    #: Seconds a link code works.
    code_ttl: float = 600.0
    #: Certificates one account may have.
    max_certificates: int = 8
    #: Certificates the capsule keeps links for (None: ``--max-records``).
    max_members: int | None = None
    #: Link codes live at once, over every account.
    max_codes: int = 1000
    #: Revoked certificates that named their account, kept for good.
    max_revoked: int = 10_000
    #: Wrong codes one certificate may enter per ``wrong_window`` seconds.
    wrong_codes: int = 5
    wrong_window: float = 900.0
    #: Certificates the wrong-code counter remembers (the oldest go first).
    guess_table: int = 10_000
