"""What every account page shares: the slabs, the settings, and the steps that
read them (the live code a hash names, a certificate's name and dates, pages).

The account pages never change the record their route hands them: every write
goes through ``Slab.change()``, whose edits only compute the record to keep.
So a page that meets a conflict is never run again half-done: nothing of it is
saved by the route, and each edit is tried again on its own.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.logger import Logger

from jetforce_sesh.accounts.codes import Kind
from jetforce_sesh.accounts.keys import AccountKeys
from jetforce_sesh.accounts.limits import Limits
from jetforce_sesh.accounts.records import (
    MAX_SHOWN_NAME,
    Account,
    AccountOptions,
    LinkCode,
    Member,
    Pending,
    RecoveryCode,
    Revoked,
    Tally,
)
from jetforce_sesh.identity import read_certificate
from jetforce_sesh.names import clean_name
from jetforce_sesh.session.application import SessionApplication
from jetforce_sesh.session.slab import Slab

_log = Logger()


def prefix(fingerprint: bytes) -> str:
    """The start of a fingerprint the pages show: 16 hex digits."""
    return fingerprint.hex()[:16]


def date(stamp: float) -> str:
    if stamp <= 0:
        return "unknown"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d")


def moment(stamp: float) -> str:
    if stamp <= 0:
        return "never"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def _stamp(value: float) -> float:
    """A validity date for a record: 0 when the certificate gave none."""
    return value if value not in (float("inf"), float("-inf")) else 0.0


def common_name(request: Request) -> str:
    """The request's certificate's common name, cleaned and cut to
    :data:`MAX_SHOWN_NAME` characters."""
    name = clean_name(str(request.environ.get("REMOTE_USER") or ""))
    if len(name) > MAX_SHOWN_NAME:
        name = name[: MAX_SHOWN_NAME - 1] + "…"
    return name or "(no name)"


def seen(
    request: Request, now: float, *, account: bytes | None = None
) -> Callable[[Member | None], Member | None]:
    """An edit of the request's certificate's link: its name and dates as the
    request shows them, seen now; in ``account`` (a new link, joined now), or
    left as it is when None (no link: none is made)."""
    certificate = read_certificate(request.environ)
    name = common_name(request)

    def edit(member: Member | None) -> Member | None:
        if member is None:
            if account is None:
                return None
            member = Member(first_seen=now)
        if account is not None and member.account != account:
            member.account = account
            member.first_seen = now
        member.name = name
        member.last_seen = now
        member.not_before = _stamp(certificate.valid_from)
        member.not_after = _stamp(certificate.valid_until)
        return member

    return edit


@attrs.frozen
class Target:
    """What a live code would join: the account, its size, who made the code."""

    kind: Kind
    hash: bytes
    version: int
    account: bytes
    name: str
    certificates: int
    expires: float
    code: LinkCode | RecoveryCode


class AccountsBase:
    """The slabs and settings of accounts, and the steps every page shares."""

    options: AccountOptions
    app: SessionApplication
    members: Slab[Member]
    accounts: Slab[Account]
    codes: Slab[LinkCode]
    revoked: Slab[Revoked]
    recovery: Slab[RecoveryCode]
    limits_slab: Slab[Tally]
    pending: Slab[Pending]
    limits: Limits
    keys: AccountKeys
    #: Every slab of the capsule whose records are kept under the account:
    #: set by use_accounts().
    capsule_slabs: Callable[[], list[Slab[Any]]]

    def _now(self) -> float:
        return self.members.now()

    def _page(self, *lines: str) -> Response:
        body = "\n".join(
            [
                "# Your account",
                "",
                *lines,
                "",
                "=> /account Your account",
                "=> /account/help How accounts work",
                "=> / Back to the capsule",
                "",
            ]
        )
        return Response(Status.SUCCESS, "text/gemini", body)

    def _elsewhere(self, what: str, label: str) -> Callable[[str], Response]:
        """The page a link from elsewhere (or an old one) gets: it asked to
        ``what``; nothing was done; ``label`` links the player's own."""

        def page(link: str) -> Response:
            return self._page(
                f"A link asked to {what}. Only links this page makes for you here"
                f" can do that, and that one was not (or it is out of date):"
                f" nothing was done.",
                "",
                f"=> {link} {label}",
            )

        return page

    async def _live_codes(self, account: bytes) -> list[float]:
        """When each live link code of ``account`` expires."""
        now = self._now()
        live = []
        for hashed in await self.limits.codes_of(account):
            entry, _ = await self.codes.fetch(hashed)
            if entry is not None and entry.account == account and entry.expires > now:
                live.append(entry.expires)
        return live

    async def _live_pending(self, key: bytes) -> Pending | None:
        """The code in flight under ``key`` (a certificate or an account), if
        it has not run out."""
        pending, _ = await self.pending.fetch(key)
        if pending is None or pending.until <= self._now() or not pending.code:
            return None
        return pending

    async def _target(self, kind: Kind, hashed: bytes) -> Target | None:
        """What the live code of ``kind`` hashing to ``hashed`` joins; None if
        there is no such live code."""
        now = self._now()
        if kind == "link":
            entry, version = await self.codes.fetch(hashed)
            if entry is None or entry.expires <= now:
                return None
            # A code outlives nothing it was made from: a certificate revoked
            # or moved since cannot hand out its old account.
            if not await self._still_in(entry.made_by, entry.account):
                return None
            account, _ = await self.accounts.fetch(entry.account)
            count = len(account.certificates) if account else 1
            return Target(
                kind,
                hashed,
                version,
                entry.account,
                entry.name,
                count,
                entry.expires,
                entry,
            )
        code, version = await self.recovery.fetch(hashed)
        if code is None:
            return None
        account, _ = await self.accounts.fetch(code.account)
        if account is None or hashed not in account.recovery:
            return None  # printed again since, or the account was forgotten
        names = [await self.members.fetch(f) for f in account.certificates[:1]]
        name = names[0][0].name if names and names[0][0] is not None else ""
        return Target(
            kind,
            hashed,
            version,
            code.account,
            name,
            len(account.certificates),
            float("inf"),
            code,
        )

    async def _still_in(self, fingerprint: bytes, account: bytes) -> bool:
        """Whether certificate ``fingerprint`` still plays ``account``."""
        member, _ = await self.members.fetch(fingerprint)
        if member is not None:
            return member.account == account
        revoked, _ = await self.revoked.fetch(fingerprint)
        return revoked is None and fingerprint == account

    async def _has_records(self, key: bytes, fingerprint: bytes) -> bool:
        """Whether the player under ``key`` has records of its own to lose."""
        account, _ = await self.accounts.fetch(key)
        if account is not None and any(
            other != fingerprint for other in account.certificates
        ):
            return True
        for slab in self.capsule_slabs():
            if await slab.peek(key) is not None:
                return True
        return False
