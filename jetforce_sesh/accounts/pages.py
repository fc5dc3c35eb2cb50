"""Accounts: several certificates, one player, linked with a one-time code.

In Gemini a player is a client certificate, and players have several (a phone and
a laptop) and replace them when they expire. With accounts on, every slab keeps a
player's records under their **account** instead of under one certificate, so all
the account's certificates read and write the same records, and take the same
turns. Nothing changes for handlers: the account is what the key step
(:class:`~jetforce_sesh.keys.IPlayerKeys`) hands the route.

An account is named by the fingerprint of the first certificate that had it. A
certificate nobody linked is its own account, so turning accounts on keeps every
player's records where they are. Three slabs, opened and kept like any other (in
memory, in ``--state-dir``, in a shared store), hold what accounts need:

- ``accounts.certificates``: per certificate, its account, its common name, when it
  was first and last seen, and its validity dates;
- ``accounts``: per account, its certificates and its live link code (the route
  record of the account pages);
- ``accounts.codes``: per live code (by its SHA-256), the account it joins, who
  made it and until when it works.

A player links a new certificate by asking for a code on the account page of one
that already plays, and entering it from the new one. Codes are 8 characters from
an alphabet with no look-alikes, made with :mod:`secrets`, single use, valid for
a few minutes, at most one live per account; wrong codes are limited per
certificate. See ``docs/explanation/accounts.md``.
"""

from __future__ import annotations

import datetime
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from jetforce_sesh.accounts.codes import (
    Guesses,
    code_hash,
    new_code,
    normal_code,
    shown_code,
)
from jetforce_sesh.accounts.keys import AccountKeys
from jetforce_sesh.accounts.records import (
    Account,
    AccountOptions,
    LinkCode,
    Member,
    Revoked,
)
from jetforce_sesh.errors import Conflict, StoreFull
from jetforce_sesh.identity import fingerprint_of_request, read_certificate
from jetforce_sesh.keys import player_key
from jetforce_sesh.names import clean_name, quoted
from jetforce_sesh.session.application import SessionApplication
from jetforce_sesh.session.slab import Slab

R = TypeVar("R")

_log = Logger()

#: Seconds before a certificate's expiry from which its pages suggest linking a
#: new one.
ROTATION_WARNING = 14 * 86400
#: Seconds between two sweeps for accounts no certificate reaches any more.
SWEEP_EVERY = 3600.0
#: Names shown on the account page, in characters.
MAX_SHOWN_NAME = 32


def _prefix(fingerprint: bytes) -> str:
    return fingerprint.hex()[:16]


def _date(stamp: float) -> str:
    if stamp <= 0:
        return "unknown"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime("%Y-%m-%d")


def _moment(stamp: float) -> str:
    if stamp <= 0:
        return "never"
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def _stamp(value: float) -> float:
    """A validity date for a record: 0 when the certificate gave none."""
    return value if value not in (float("inf"), float("-inf")) else 0.0


def _common_name(request: Request) -> str:
    name = clean_name(str(request.environ.get("REMOTE_USER") or ""))
    if len(name) > MAX_SHOWN_NAME:
        name = name[: MAX_SHOWN_NAME - 1] + "…"
    return name or "(no name)"


def _seen(
    request: Request, now: float, *, account: bytes | None, new_account: bytes
) -> Callable[[Member | None], Member]:
    """An edit of the request's certificate's member record: seen now, with
    its name and dates, in ``account`` (None: the one it has), or in
    ``new_account`` if it has no record yet."""
    certificate = read_certificate(request.environ)
    name = _common_name(request)

    def edit(member: Member | None) -> Member:
        if member is None:
            member = Member(account=new_account, first_seen=now)
        if account is not None:
            member.account = account
        member.name = name
        member.last_seen = now
        member.not_before = _stamp(certificate.valid_from)
        member.not_after = _stamp(certificate.valid_until)
        return member

    return edit


def rotation_note(request: Request, now: float) -> str | None:
    """A line for a page when the request's certificate expires within
    :data:`ROTATION_WARNING`, pointing to the link flow; else None."""
    try:
        certificate = read_certificate(request.environ)
    except ValueError:
        return None
    left = certificate.valid_until - now
    if not 0 <= left <= ROTATION_WARNING:
        return None
    days = int(left // 86400)
    when = "today" if days == 0 else f"in {days} day{'s' if days != 1 else ''}"
    return (
        f"Your certificate expires {when}. Make a new one, then link it to your"
        f" account from here, to keep your records."
    )


class Accounts:
    """Accounts for a capsule: its slabs, key step, pages and settings.

    Turn them on with :meth:`SessionApplication.use_accounts`, which includes
    :attr:`app` (the pages under ``/account``) and sets :attr:`keys`.
    """

    def __init__(self, options: AccountOptions | None = None) -> None:
        self.options = options = options or AccountOptions()
        self.app = SessionApplication(
            "Your account",
            entry="/account",
            description="play from several certificates, link a new one",
        )
        self.members: Slab[Member] = self.app.slab(
            Member,
            name="accounts.certificates",
            record_size=160,
            max_records=options.max_members,
        )
        self.accounts: Slab[Account] = self.app.slab(
            Account,
            name="accounts",
            record_size=48 + 35 * options.max_certificates,
            max_records=options.max_members,
        )
        self.codes: Slab[LinkCode] = self.app.slab(
            LinkCode,
            name="accounts.codes",
            record_size=112,
            max_records=options.max_codes,
            on_full="refuse",
        )
        self.revoked: Slab[Revoked] = self.app.slab(
            Revoked,
            name="accounts.revoked",
            record_size=48,
            max_records=options.max_revoked,
            on_full="refuse",
            idle_timeout=0,
        )
        for slab, title, unit in (
            (self.members, "Accounts: certificate links", "certificates"),
            (self.accounts, "Accounts", "accounts"),
            (self.codes, "Accounts: live link codes", "codes"),
            (self.revoked, "Accounts: revoked first certificates", "certificates"),
        ):
            slab.title, slab.unit = title, unit
        self.keys = AccountKeys(self.members, self.revoked)
        self.guesses = Guesses(
            options.wrong_codes, options.wrong_window, options.guess_table
        )
        #: Codes entered by certificates that must confirm before they join,
        #: by fingerprint (at most ``guess_table``; the oldest go first).
        self.pending: OrderedDict[bytes, str] = OrderedDict()
        #: Every slab of the capsule whose records are kept under the account:
        #: set by use_accounts().
        self.capsule_slabs: Callable[[], list[Slab[Any]]] = list
        route = self.app.session_route
        route("/account", record=Account)(self.page)
        route("/account/code", record=Account)(self.make_code)
        route("/account/link", record=Account, secret=True)(self.link)
        route("/account/join", record=Account)(self.join)
        route("/account/revoke/(?P<prefix>[0-9a-f]{16})", record=Account)(self.revoke)
        self.app.route("/account/help")(self.help)
        self._sweeping: LoopingCall | None = None
        self.app.when_opened(self._start_sweep)
        self.app.when_closed(self._stop_sweep)

    # -- the sweep ---------------------------------------------------------------

    def _start_sweep(self, clock: IReactorTime) -> None:
        self._stop_sweep()  # opened again without a close: keep a single loop
        self._sweeping = LoopingCall(self._sweep_tick)
        self._sweeping.clock = clock
        self._sweeping.start(SWEEP_EVERY, now=False)

    def _stop_sweep(self) -> None:
        if self._sweeping is not None and self._sweeping.running:
            self._sweeping.stop()
        self._sweeping = None

    def _sweep_tick(self) -> Deferred[int]:
        sweeping = Deferred.fromCoroutine(self.sweep())
        # A sweep that fails is logged; the next one tries again.
        sweeping.addErrback(
            lambda failure: _log.failure("account sweep failed", failure)
        )
        return sweeping

    async def sweep(self) -> int:
        """Forget every account that no certificate maps to any more (its
        certificates' links evicted, expired or revoked), and its records in
        every slab; how many went. Runs every :data:`SWEEP_EVERY` seconds."""
        gone: list[bytes] = []
        async for key, account in self.accounts.records():
            if not await self._reached(key, account):
                gone.append(key)
        removed = 0
        for key in gone:
            # Reached again meanwhile (a new link, a returning certificate)?
            again, _ = await self.accounts.fetch(key)
            if again is not None and await self._reached(key, again):
                continue
            await self.accounts.drop(key)
            for slab in self.capsule_slabs():
                await slab.drop(key)
            removed += 1
        return removed

    async def _reached(self, key: bytes, account: Account) -> bool:
        """Whether some certificate still maps to account ``key``."""
        for fingerprint in {key, *account.certificates}:
            member, _ = await self.members.fetch(fingerprint)
            if member is not None:
                if member.account == key:
                    return True
            elif fingerprint == key:
                revoked, _ = await self.revoked.fetch(fingerprint)
                if revoked is None:
                    return True  # the account's own certificate, unlinked
        return False

    # -- shared steps ------------------------------------------------------------

    def _now(self) -> float:
        return self.members.now()

    async def _remember(self, request: Request, account: Account) -> bytes:
        """The request's certificate, noted in its member record and in the
        account's list; its fingerprint."""
        fingerprint = fingerprint_of_request(request)
        key = player_key(request)
        member = await self.members.change(
            fingerprint, _seen(request, self._now(), account=None, new_account=key)
        )
        # A request keyed before its certificate moved to another account must
        # not list it here again.
        listed = fingerprint in account.certificates
        if member is not None and member.account == key and not listed:
            account.certificates.append(fingerprint)
        return fingerprint

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

    # -- pages -------------------------------------------------------------------

    async def page(self, request: Request, record: Account) -> Response:
        """The account page: its certificates, and what can be done with them."""
        mine = await self._remember(request, record)
        now = self._now()
        lines: list[str] = []
        note = rotation_note(request, now)
        if note:
            lines += [
                note,
                "=> /account/code Make a link code for your new certificate",
                "",
            ]
        count = len(record.certificates)
        lines.append(
            f"This account has {count} certificate{'s' if count != 1 else ''}; each"
            f" sees and changes the same records in every game."
        )
        lines.append("")
        for fingerprint in record.certificates:
            member, _ = await self.members.fetch(fingerprint)
            this = fingerprint == mine
            title = member.name if member else "(gone)"
            lines.append(f"## {title}{' (this certificate)' if this else ''}")
            lines.append(f"Fingerprint {_prefix(fingerprint)}…")
            if member is not None:
                lines.append(
                    f"First seen {_moment(member.first_seen)}, last seen"
                    f" {_moment(member.last_seen)}"
                )
                lines.append(
                    f"Valid from {_date(member.not_before)} until"
                    f" {_date(member.not_after)}"
                )
            if not this:
                lines.append(
                    f"=> /account/revoke/{_prefix(fingerprint)} Revoke this certificate"
                )
            lines.append("")
        if record.code and record.code_expires > now:
            lines.append(
                f"A link code is live until {_moment(record.code_expires)};"
                f" making a new one replaces it."
            )
        lines += [
            "## Link another certificate",
            "From this certificate, make a code; then enter it from the other one.",
            "=> /account/code Make a link code",
            "=> /account/link Enter a code from another certificate",
        ]
        return self._page(*lines)

    async def make_code(self, request: Request, record: Account) -> Response:
        """A new link code for this account (the previous one stops working)."""
        mine = await self._remember(request, record)
        key = player_key(request)
        now = self._now()
        if record.code:
            await self.codes.drop(record.code)
        code = new_code()
        expires = now + self.options.code_ttl
        try:
            await self.codes.change(
                code_hash(code),
                lambda _: LinkCode(account=key, made_by=mine, expires=expires),
            )
        except StoreFull:
            record.code = b""
            return Response(
                Status.SLOW_DOWN,
                str(int(self.options.code_ttl)),
            )
        record.code = code_hash(code)
        record.code_expires = expires
        minutes = int(self.options.code_ttl // 60)
        return self._page(
            "Your link code:",
            "",
            f"> {shown_code(code)}",
            "",
            f"From your other certificate, open this capsule's account page and"
            f' choose "Enter a code" within {minutes} minutes. The code works once;'
            f" making another one replaces it.",
            "=> /account/link Enter a code (from the other certificate)",
        )

    async def link(self, request: Request, record: Account) -> Response:
        """Enter a code made from another certificate."""
        fingerprint = fingerprint_of_request(request)
        wait = self.guesses.wait(fingerprint, self._now())
        if wait:
            return Response(Status.SLOW_DOWN, str(wait))
        if not request.query:
            return Response(
                Status.INPUT,
                "Enter the link code shown on your other certificate's account page",
            )
        code = normal_code(request.query)
        if code is None:
            return Response(
                Status.INPUT,
                f"{quoted(request.query)} is not a link code: codes are 8 letters and"
                f" digits, like ABCD-2345. Enter the code",
            )
        found = await self._live(code, fingerprint)
        if isinstance(found, str):
            return Response(Status.INPUT, f"{found} Enter a live code")
        if found[0].account == player_key(request):
            return self._page(
                "That code was made from this account: enter it from the certificate"
                " you want to link."
            )
        if await self._has_records(player_key(request), record, fingerprint):
            # The code waits here, not in the next URL: Jetforce's access log
            # shows every path.
            self.pending[fingerprint] = code
            while len(self.pending) > self.options.guess_table:
                self.pending.popitem(last=False)
            return Response(Status.REDIRECT_TEMPORARY, "/account/join")
        return await self._join(request, record, code)

    async def join(self, request: Request, record: Account) -> Response:
        """Confirm joining an account, giving up this certificate's records."""
        fingerprint = fingerprint_of_request(request)
        code = self.pending.get(fingerprint)
        if code is None:
            return self._page(
                "Nothing to link: enter a link code first.",
                "=> /account/link Enter a code from another certificate",
            )
        if not request.query:
            return Response(
                Status.INPUT,
                "This certificate has records of its own: linking replaces them with"
                " the account's, in every game. Type yes to link",
            )
        del self.pending[fingerprint]
        if request.query.strip().lower() != "yes":
            return self._page("Not linked: the answer was not yes. Nothing changed.")
        return await self._join(request, record, code)

    async def _live(self, code: str, fingerprint: bytes) -> tuple[LinkCode, int] | str:
        """The live code ``code`` and its record's version, or why there is none
        (which counts as a wrong guess of ``fingerprint``)."""
        now = self._now()
        entry, version = await self.codes.fetch(code_hash(code))
        if entry is not None and entry.expires > now:
            maker, _ = await self.members.fetch(entry.made_by)
            # A code outlives nothing it was made from: a certificate revoked
            # or moved since cannot hand out its old account.
            if maker is None or maker.account == entry.account:
                return entry, version
        self.guesses.wrong(fingerprint, now)
        return (
            f"No live code {shown_code(code)}: it is mistyped, has expired or was"
            f" used already; make a new one from your other certificate."
        )

    async def _has_records(
        self, key: bytes, record: Account, fingerprint: bytes
    ) -> bool:
        if any(other != fingerprint for other in record.certificates):
            return True
        for slab in self.capsule_slabs():
            if await slab.peek(key) is not None:
                return True
        return False

    async def _join(self, request: Request, record: Account, code: str) -> Response:
        fingerprint = fingerprint_of_request(request)
        old = player_key(request)
        wait = self.guesses.wait(fingerprint, self._now())
        if wait:
            return Response(Status.SLOW_DOWN, str(wait))
        found = await self._live(code, fingerprint)
        if isinstance(found, str):
            return self._page(found)
        entry, version = found
        if entry.account == old:
            return self._page("That code was made from this account: nothing to do.")
        target = entry.account
        account, _ = await self.accounts.fetch(target)
        if account and len(account.certificates) >= self.options.max_certificates:
            return self._page(
                f"That account has {self.options.max_certificates} certificates"
                f" already: revoke one of them first."
            )
        # Use the code up first, at the version read: of two certificates
        # entering it at once, one gets it, the other is told it was used.
        try:
            used = await self.codes.opened.store.delete(code_hash(code), version)
        except Conflict:
            used = False
        if not used:
            return self._page(
                f"No live code {shown_code(code)}: it was used already; make a new"
                f" one from your other certificate."
            )

        def add(account: Account | None) -> Account:
            account = account or Account(certificates=[entry.made_by])
            if fingerprint not in account.certificates:
                account.certificates.append(fingerprint)
            account.code = b""
            account.code_expires = 0.0
            return account

        await self.accounts.change(target, add)
        now = self._now()
        await self.members.change(
            fingerprint, _seen(request, now, account=target, new_account=target)
        )
        if fingerprint in record.certificates:
            record.certificates.remove(fingerprint)
        if not record.certificates:
            # Nobody plays the old account any more: the account's records win,
            # and this certificate's own ones go.
            for slab in self.capsule_slabs():
                await slab.drop(old)
        return self._page(
            "Linked. This certificate now shares the account's records in every"
            " game, and takes turns with its other certificates.",
        )

    async def revoke(self, request: Request, record: Account, prefix: str) -> Response:
        """Revoke another certificate of this account, after a confirmation."""
        mine = fingerprint_of_request(request)
        targets = [f for f in record.certificates if f.hex().startswith(prefix)]
        if not targets:
            return self._page("No certificate of this account starts with that.")
        target = targets[0]
        if target == mine:
            return self._page(
                "That is the certificate you are using: revoke it from another one"
                " of this account."
            )
        member, _ = await self.members.fetch(target)
        name = member.name if member else "(gone)"
        if not request.query:
            return Response(
                Status.INPUT,
                f"Revoke certificate {name} ({prefix[:8]}…)? It will be a new, unknown"
                f" player from then on. Type yes to revoke",
            )
        if request.query.strip().lower() != "yes":
            return self._page("Not revoked: the answer was not yes.")

        key = player_key(request)
        fresh = secrets.token_bytes(32)
        if target == key:
            # The certificate names this account: without a record that says
            # otherwise it would map back to it, so that record is kept for good.
            try:
                await self.revoked.change(target, lambda _: Revoked(fresh))
            except StoreFull:
                return self._page(
                    "This certificate cannot be revoked right now: the capsule keeps"
                    " as many revoked ones as it may. Tell the capsule's operator."
                )

        def cut(member: Member | None) -> Member | None:
            if member is not None and member.account not in (key, b""):
                return member  # it moved to another account meanwhile: not ours
            member = member or Member()
            # A fresh account nobody has: the certificate starts again, even if
            # its own fingerprint names this account.
            member.account = fresh
            return member

        await self.members.change(target, cut)
        record.certificates.remove(target)
        # A code the revoked certificate may have made (or seen) dies with it.
        if record.code:
            await self.codes.drop(record.code)
            record.code = b""
            record.code_expires = 0.0
        return self._page(
            f"Revoked {name}: from now on it is a new player, and cannot see this"
            f" account's records."
        )

    def help(self, request: Request) -> Response:
        """Certificates, linking and revoking, in plain words."""
        options = self.options
        page = HELP.format(
            minutes=int(options.code_ttl // 60),
            wrong=options.wrong_codes,
            window=int(options.wrong_window // 60),
        )
        return Response(Status.SUCCESS, "text/gemini", page)


HELP = """\
# Certificates and your account

This capsule knows you by your client certificate: a small file your Gemini
client shows the capsule instead of a password. Each certificate is one player.

## Playing from two devices

Your phone and your laptop have different certificates, so the capsule would
see two players. Link them into one account and both see the same games:

* On the device that already plays, open "Your account" and make a link code.
* On the other device, open "Your account", choose "Enter a code" and type it.
* The code works once, for {minutes} minutes. Capitals or small letters, with
  or without the dash, are all fine.

If the new certificate had records of its own, the page asks first: linking
replaces them with the account's.

## A certificate that expires

Certificates have an end date. A couple of weeks before, the capsule reminds
you: make a new certificate, then link it as above, and your games carry on.

## Revoking

On the account page, every certificate but the one you are using has a revoke
link. A revoked certificate becomes a new, unknown player; the account keeps its
records. Revoke a certificate you lost or gave away.

## Codes and guessing

After {wrong} wrong codes in {window} minutes, a certificate must wait before
trying again.

=> /account Your account
=> / Back to the capsule
"""


def use_accounts(app: SessionApplication, accounts: Accounts | None = None) -> Accounts:
    """Keep every slab's records of ``app`` under the player's account, so that
    all the certificates linked to it share them, and serve the account pages
    under ``/account``. Players nobody linked keep their records as they are.
    Returns the accounts (made with the default options when not given)."""
    accounts = accounts or Accounts()
    app.keys = accounts.keys
    app.include(accounts.app)
    own = set(map(id, accounts.app.slabs.values()))
    accounts.capsule_slabs = lambda: [
        slab for slab in app.slabs.values() if id(slab) not in own
    ]
    return accounts
