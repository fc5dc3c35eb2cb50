"""Accounts: several certificates, one player, linked with a one-time code.

In Gemini a player is a client certificate, and players have several (a phone and
a laptop) and replace them when they expire. With accounts on, every slab keeps a
player's records under their **account** instead of under one certificate, so all
the account's certificates read and write the same records, and take the same
turns. Nothing changes for handlers: the account is what the key step
(:class:`~jetforce_sesh.keys.IPlayerKeys`) hands the route.

An account is named by the fingerprint of the first certificate that had it. A
certificate nobody linked is its own account, so turning accounts on keeps every
player's records where they are. Seven slabs, opened and kept like any other (in
memory, in ``--state-dir``, in a shared store), hold what accounts need:

- ``accounts.certificates``: per linked certificate, its account, common name,
  when it joined and was last seen, and its validity dates;
- ``accounts``: per account with more than one certificate (or with recovery
  codes), its certificates and its recovery codes' hashes;
- ``accounts.codes``: per live link code (by its SHA-256), the account it
  joins, who made it and until when it works;
- ``accounts.recovery``: per live recovery code (by its SHA-256), its account;
- ``accounts.revoked``: revoked certificates that named their account;
- ``accounts.limits``: wrong codes and codes made, per certificate and address;
- ``accounts.pending``: the code each certificate entered, until it confirms.

Every action is confirmed at a link only the capsule could have shown the
player (:mod:`jetforce_sesh.session.confirm`); codes are asked with ``11`` and
never logged nor written back. See ``docs/explanation/accounts.md``.
"""

from __future__ import annotations

from jetforce.app.base import Request, Response, Status

from jetforce_sesh.accounts.base import (
    common_name,
    date,
    moment,
    prefix,
    seen,
)
from jetforce_sesh.accounts.keys import AccountKeys
from jetforce_sesh.accounts.limits import Limits
from jetforce_sesh.accounts.linking import Linking
from jetforce_sesh.accounts.records import (
    Account,
    AccountOptions,
    LinkCode,
    Member,
    Pending,
    RecoveryCode,
    Revoked,
    Tally,
    encoded_size,
    largest_account,
    largest_link_code,
    largest_member,
    largest_pending,
    largest_tally,
)
from jetforce_sesh.accounts.revoking import Revoking
from jetforce_sesh.identity import fingerprint_of_request, read_certificate
from jetforce_sesh.keys import player_key
from jetforce_sesh.session.application import SessionApplication
from jetforce_sesh.session.confirm import confirm_path, ready, with_token
from jetforce_sesh.session.route import ENVIRON_EXPIRED, SessionRoute
from jetforce_sesh.session.slab import Slab

#: Seconds before a certificate's expiry from which its pages suggest linking a
#: new one.
ROTATION_WARNING = 14 * 86400


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


class Accounts(Linking, Revoking):
    """Accounts for a capsule: its slabs, key step, pages and settings.

    Turn them on with :func:`use_accounts`, which includes :attr:`app` (the
    pages under ``/account``) and sets the application's key step to
    :attr:`keys`.
    """

    def __init__(self, options: AccountOptions | None = None) -> None:
        self.options = options = options or AccountOptions()
        self.app = app = SessionApplication(
            "Your account",
            entry="/account",
            description="play from several certificates, link a new one",
        )
        # Each record sized for its largest legal content: a long name or a
        # full account must never fail to save (and leave a link half made).
        # Links and accounts refuse rather than evict when full: a stranger's
        # visits must never push out a player's link or account list.
        self.members: Slab[Member] = app.slab(
            Member,
            name="accounts.certificates",
            record_size=encoded_size(largest_member()),
            max_records=options.max_members,
            on_full="refuse",
        )
        self.accounts: Slab[Account] = app.slab(
            Account,
            name="accounts",
            record_size=encoded_size(largest_account(options)),
            max_records=options.max_members,
            on_full="refuse",
            idle_timeout=0,
        )
        # A code's slot is free once it expires (idle: it is never used).
        self.codes: Slab[LinkCode] = app.slab(
            LinkCode,
            name="accounts.codes",
            record_size=encoded_size(largest_link_code()),
            max_records=options.max_codes,
            on_full="refuse",
            idle_timeout=options.code_ttl,
        )
        self.recovery: Slab[RecoveryCode] = app.slab(
            RecoveryCode,
            name="accounts.recovery",
            record_size=encoded_size(RecoveryCode(b"\xff" * 32)),
            max_records=options.max_recovery,
            on_full="refuse",
            idle_timeout=0,
        )
        self.revoked: Slab[Revoked] = app.slab(
            Revoked,
            name="accounts.revoked",
            record_size=encoded_size(Revoked(b"\xff" * 32)),
            max_records=options.max_revoked,
            on_full="refuse",
            idle_timeout=0,
        )
        window = max(options.wrong_window, 86400.0)
        self.limits_slab: Slab[Tally] = app.slab(
            Tally,
            name="accounts.limits",
            record_size=encoded_size(largest_tally(options)),
            max_records=options.guess_table,
            on_full="evict",
            idle_timeout=window,
        )
        self.pending: Slab[Pending] = app.slab(
            Pending,
            name="accounts.pending",
            record_size=encoded_size(largest_pending()),
            max_records=options.guess_table,
            on_full="evict",
            idle_timeout=options.code_ttl,
        )
        for slab, title, unit in (
            (self.members, "Accounts: certificate links", "certificates"),
            (self.accounts, "Accounts", "accounts"),
            (self.codes, "Accounts: live link codes", "codes"),
            (self.recovery, "Accounts: recovery codes", "codes"),
            (self.revoked, "Accounts: revoked first certificates", "certificates"),
            (self.limits_slab, "Accounts: counts of codes", "counts"),
            (self.pending, "Accounts: codes being confirmed", "codes"),
        ):
            slab.title, slab.unit = title, unit
        self.keys = AccountKeys(self.members, self.revoked, options.expired_grace)
        self.limits = Limits(self.limits_slab, options)
        self.capsule_slabs = list
        grace = options.expired_grace
        for path, handler, secret, expired in (
            ("/account", self.page, False, grace),
            (with_token("/account/code"), self.make_code, False, grace),
            (with_token("/account/link"), self.link, True, 0.0),
            (with_token("/account/join"), self.join, False, 0.0),
            (with_token("/account/recovery"), self.print_recovery, False, 0.0),
            (
                with_token("/account/revoke/(?P<prefix>[0-9a-f]{16})"),
                self.revoke,
                False,
                0.0,
            ),
        ):
            route = SessionRoute(
                self.accounts, handler, secret=secret, expired_grace=expired
            )
            app.route(path)(route)
        app.route("/account/help")(self.help)
        app.when_opened(self._start_sweep)
        app.when_closed(self._stop_sweep)

    # -- the account page -------------------------------------------------------

    async def page(self, request: Request, record: Account) -> Response:
        """The account page: its certificates, and what can be done with them."""
        await ready()  # the secret its links are made under
        mine = fingerprint_of_request(request)
        key = player_key(request)
        now = self._now()
        if request.environ.get(ENVIRON_EXPIRED):
            return await self._expired_page(request)
        # Only a certificate already linked has a record to refresh: a visit
        # that links nothing makes none.
        await self.members.change(mine, seen(request, now))
        certificates = record.certificates or [mine]
        lines: list[str] = []
        note = rotation_note(request, now)
        code = "/account/code"
        if note:
            lines += [note, f"=> {code} Make a link code for your new certificate", ""]
        count = len(certificates)
        lines.append(
            f"This account has {count} certificate{'s' if count != 1 else ''}; each"
            f" sees and changes the same records in every game."
        )
        lines.append("")
        for fingerprint in certificates:
            lines += await self._certificate_lines(request, record, fingerprint, key)
        live = await self._live_codes(key)
        if live:
            count = len(live)
            lines.append(
                f"{count} link code{'s are' if count > 1 else ' is'} live, the"
                f" newest until {moment(max(live))}; an account holds"
                f" {self.options.codes_per_account} at most, and one more ends"
                f" the oldest."
            )
        lines += [
            "## Link another certificate",
            "From this certificate, make a code; then enter it from the other one.",
            f"=> {code} Make a link code",
            f"=> {await self.link_path(request)} Enter a code from another certificate",
            "",
            "## If you lose every certificate",
            f"Recovery codes attach a new certificate to this account, once each."
            f" {len(record.recovery)} of this account's are live.",
            f"=> {confirm_path(request, '/account/recovery', record)} Print new"
            " recovery codes",
        ]
        return self._page(*lines)

    async def _certificate_lines(
        self, request: Request, record: Account, fingerprint: bytes, key: bytes
    ) -> list[str]:
        mine = fingerprint == fingerprint_of_request(request)
        member, _ = await self.members.fetch(fingerprint)
        if member is not None:
            title = member.name
        elif mine:
            title = common_name(request)
        elif fingerprint == key:
            title = "(name unknown)"
        else:
            title = "(link gone)"
        lines = [
            f"## {title}{' (this certificate)' if mine else ''}",
            f"Fingerprint {prefix(fingerprint)}…",
        ]
        if fingerprint == key:
            lines.append("The account's first certificate")
        elif member is not None:
            lines.append(f"Linked on {moment(member.first_seen)}")
        if member is not None:
            lines.append(f"Last seen {moment(member.last_seen)}")
            lines.append(
                f"Valid from {date(member.not_before)} until {date(member.not_after)}"
            )
        if not mine:
            revoke = confirm_path(
                request, f"/account/revoke/{prefix(fingerprint)}", record
            )
            lines.append(f"=> {revoke} Revoke this certificate")
        lines.append("")
        return lines

    async def _expired_page(self, request: Request) -> Response:
        certificate = read_certificate(request.environ)
        until = certificate.valid_until + self.options.expired_grace
        code = "/account/code"
        return self._page(
            f"This certificate expired on {date(certificate.valid_until)}. Until"
            f" {date(until)} it can still make a link code here, for the new"
            f" certificate you play from next: make one, then open this page from"
            f" the new certificate and enter it.",
            "",
            f"=> {code} Make a link code for your new certificate",
        )

    def help(self, request: Request) -> Response:
        """Certificates, linking and revoking, in plain words."""
        options = self.options
        page = HELP.format(
            minutes=int(options.code_ttl // 60),
            wrong=options.wrong_codes,
            window=int(options.wrong_window // 60),
            recovery=options.recovery_codes,
            grace=int(options.expired_grace // 86400),
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
* The capsule then asks you to confirm. If the new certificate had records of
  its own, linking replaces them with the account's.

## A certificate that expires

Certificates have an end date. A couple of weeks before, the capsule reminds
you: make a new certificate, then link it as above, and your games carry on.

If you missed it, the capsule answers your old certificate "62: expired"
everywhere except on your account page, for {grace} days after the end date:
open "Your account" from the old certificate, make a link code there, and enter
it from the new one.

## Losing every certificate

On your account page, print recovery codes: {recovery} codes, each good once.
Keep them on paper, away from your devices. From a new certificate, choose
"Enter a code" on the account page and type one: the new certificate joins
your account. Printing new codes ends the old ones.

## Revoking

On the account page, every certificate but the one you are using has a revoke
link. A revoked certificate becomes a new, unknown player; the account keeps its
records. Revoke a certificate you lost or gave away. Revoking also ends the
account's recovery codes: print new ones.

## Links from elsewhere

Every action here is asked at a link of this capsule's own, made for you. A
link on another page, even one that looks like ours and ends in "?yes", only
brings you to the question: it cannot link, revoke or give anything up for you.
Codes are never shown in the capsule's log.

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
