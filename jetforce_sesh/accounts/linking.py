"""Linking a certificate: make a code on one, enter it on the other, confirm.

Every step is asked at a link only the capsule could have shown this player
(:mod:`jetforce_sesh.session.confirm`), so no link from elsewhere makes a code,
enters one or joins an account. A code is asked with ``11`` on a route whose
query the access log leaves out, is never written back in a prompt, and waits
for the confirmation in ``accounts.pending`` (a slab, so the confirmation may
reach another process), never in a URL.
"""

from __future__ import annotations

import contextlib

from jetforce.app.base import Request, Response, Status
from twisted.logger import Logger

from jetforce_sesh.accounts.base import (
    AccountsBase,
    Target,
    common_name,
    prefix,
    seen,
)
from jetforce_sesh.accounts.codes import (
    Kind,
    code_hash,
    new_code,
    new_recovery_code,
    read_code,
    shown_code,
)
from jetforce_sesh.accounts.records import (
    Account,
    LinkCode,
    Member,
    Pending,
    RecoveryCode,
)
from jetforce_sesh.errors import Conflict, StoreFull
from jetforce_sesh.identity import fingerprint_of_request
from jetforce_sesh.keys import player_key
from jetforce_sesh.session.confirm import ask_yes, confirm_path, is_confirmed, ready
from jetforce_sesh.session.route import ENVIRON_EXPIRED

_log = Logger()

ENTER = (
    "Enter the link code shown on your other certificate's account page, or one"
    " of your recovery codes"
)
NOT_A_CODE = (
    "That is not a code: a link code is 8 letters and digits, like ABCD-2345, and"
    " a recovery code 16. Enter the code"
)
NO_LIVE_CODE = (
    "No live code like that: it is mistyped, has expired or was used already;"
    " make a new one from your other certificate. Enter a live code"
)
FULL = (
    "The capsule keeps as many accounts and certificate links as it may right now:"
    " nothing changed, and the code still works. Try again later, or tell the"
    " capsule's operator."
)


def _address(request: Request) -> str:
    return str(request.environ.get("REMOTE_ADDR") or "")


def _plural(count: int, one: str) -> str:
    return f"{count} {one}{'' if count == 1 else 's'}"


class Linking(AccountsBase):
    """The pages that make a code, take one, and join its account."""

    # -- making a link code --------------------------------------------------------

    async def make_code(
        self, request: Request, record: Account, token: str | None = None
    ) -> Response:
        """A new link code for this account. It takes nothing: it is shown to
        this player only, links nothing until entered and confirmed from
        another certificate, and ends only the account's oldest code beyond
        ``codes_per_account`` (so a link from elsewhere that makes one cannot
        end the code a phone is entering)."""
        await ready()  # the secret its links are made under
        key = player_key(request)
        now = self._now()
        code = new_code()
        hashed = code_hash(code)
        entry = LinkCode(
            account=key,
            made_by=fingerprint_of_request(request),
            name=common_name(request),
            expires=now + self.options.code_ttl,
        )
        try:
            await self.codes.change(hashed, lambda _: entry)
        except StoreFull:
            # Every slot holds a live code; the oldest ends within code_ttl.
            return Response(Status.SLOW_DOWN, str(int(self.options.code_ttl)))
        # An address and an account hold a few codes at once: one more ends
        # the oldest, so a flood from one address ends only its own.
        for ended in await self.limits.made(_address(request), key, hashed):
            await self.codes.drop(ended)
        minutes = int(self.options.code_ttl // 60)
        return self._page(
            "Your link code:",
            "",
            f"> {shown_code(code)}",
            "",
            f"From your other certificate, open this capsule's account page and"
            f' choose "Enter a code" within {minutes} minutes. The code works once.',
        )

    # -- entering a code -------------------------------------------------------------

    async def _link_state(self, request: Request) -> bytes:
        live = await self._live_pending(fingerprint_of_request(request))
        return live.code if live is not None else b""

    async def link_path(self, request: Request) -> str:
        """Where this certificate is asked for a code: a link of its own."""
        return confirm_path(request, "/account/link", await self._link_state(request))

    async def link(
        self, request: Request, record: Account, token: str | None = None
    ) -> Response:
        """Enter a code made from another certificate, or a recovery code."""
        await ready()  # the secret its links are made under
        fingerprint = fingerprint_of_request(request)
        state = await self._link_state(request)
        if not is_confirmed(request, token, "/account/link", state):
            # Whatever came with it is dropped: a code in a link from elsewhere
            # is never taken, and the prompt is asked at the player's own link.
            return self._elsewhere(
                "enter a link code",
                "Enter a code from another certificate",
            )(confirm_path(request, "/account/link", state))
        address, now = _address(request), self._now()
        if not request.query:
            wait = await self.limits.waiting(fingerprint, address, now)
            if wait:
                return Response(Status.SLOW_DOWN, str(wait))
            return Response(Status.SENSITIVE_INPUT, ENTER)
        found = read_code(request.query)
        if found is None:
            # It matches nothing, so it is not counted; and it is never written
            # back: a code typed with one stray character is still a code.
            return Response(Status.SENSITIVE_INPUT, NOT_A_CODE)
        wait = await self.limits.guess(fingerprint, address, now)
        if wait:
            return Response(Status.SLOW_DOWN, str(wait))
        kind, code = found
        target = await self._target(kind, code_hash(code))
        if target is None:
            return Response(Status.SENSITIVE_INPUT, NO_LIVE_CODE)
        await self.limits.right(fingerprint, address)
        if target.account == player_key(request):
            return self._page(
                "That code was made from this account: enter it from the certificate"
                " you want to link."
            )
        until = min(target.expires, now + self.options.code_ttl)
        pending = Pending(target.hash, kind, until)
        await self.pending.change(fingerprint, lambda _: pending)
        return Response(
            Status.REDIRECT_TEMPORARY, confirm_path(request, "/account/join", pending)
        )

    # -- confirming -----------------------------------------------------------

    async def join(
        self, request: Request, record: Account, token: str | None = None
    ) -> Response:
        """Confirm joining the account of the code entered."""
        await ready()  # the secret its links are made under
        fingerprint = fingerprint_of_request(request)
        pending = await self._live_pending(fingerprint)
        target = None
        if pending is not None:
            kind: Kind = "recovery" if pending.kind == "recovery" else "link"
            target = await self._target(kind, pending.code)
        if pending is None or target is None:
            if pending is not None:
                await self.pending.drop(fingerprint)
            return self._page(
                "Nothing to link: enter a code first.",
                f"=> {await self.link_path(request)} Enter a code from another"
                " certificate",
            )
        key = player_key(request)
        answer = ask_yes(
            request,
            token,
            "/account/join",
            pending,
            await self._join_question(target, key, fingerprint),
            elsewhere=self._elsewhere(
                "link this certificate to an account",
                "Link this certificate (you are asked first)",
            ),
        )
        if isinstance(answer, Response):
            return answer
        if not answer:
            await self.pending.drop(fingerprint)
            return self._page(
                "Not linked: the answer was not yes. Nothing changed; the code"
                " still works until it expires."
            )
        return await self._join(request, target)

    async def _join_question(self, target: Target, key: bytes, mine: bytes) -> str:
        whose = f"{target.name} ({prefix(target.account)[:8]}…)"
        if target.name in ("", "(no name)"):
            whose = f"{prefix(target.account)[:8]}…"
        size = _plural(target.certificates, "certificate")
        how = "with a recovery code " if target.kind == "recovery" else ""
        lose = ""
        if await self._has_records(key, mine):
            account, _ = await self.accounts.fetch(key)
            others = [f for f in (account.certificates if account else []) if f != mine]
            lose = (
                f" This certificate leaves the account it shares with"
                f" {_plural(len(others), 'other certificate')}."
                if others
                else " This certificate's own records in every game are replaced by"
                " the account's."
            )
        return (
            f"Link this certificate {how}to the account of {whose}, which has"
            f" {size}?{lose} Type yes to link"
        )

    async def _join(self, request: Request, target: Target) -> Response:
        """Join ``target``'s account: the code is used up first, then the
        account and the link are written; a write that cannot be done undoes
        the ones before it, and leaves the code live."""
        fingerprint = fingerprint_of_request(request)
        old = player_key(request)
        now = self._now()
        options = self.options
        if target.certificates >= options.max_certificates:
            return self._page(
                f"That account has {options.max_certificates} certificates"
                f" already: revoke one of them first."
            )
        # Use the code up first, at the version read: of two certificates
        # entering it at once, even on two processes, one gets it.
        used_in = self.codes if target.kind == "link" else self.recovery
        try:
            used = await used_in.store.delete(target.hash, target.version)
        except Conflict:
            used = False
        if not used:
            await self.pending.drop(fingerprint)
            return self._page(
                "No live code like that any more: it was used meanwhile; make a new"
                " one from your other certificate."
            )
        account = target.account
        made_by = target.code.made_by if isinstance(target.code, LinkCode) else b""

        made: list[bool] = []

        def add(record: Account | None) -> Account:
            made[:] = [record is None]
            record = record or Account(certificates=[account])
            if fingerprint not in record.certificates:
                record.certificates.append(fingerprint)
            if target.hash in record.recovery:
                record.recovery.remove(target.hash)
            return record

        try:
            await self.accounts.change(account, add)
        except StoreFull:
            await self._give_back(target)
            return self._page(FULL)
        try:
            await self.members.change(fingerprint, seen(request, now, account=account))
        except StoreFull:
            if made and made[0]:
                await self.accounts.drop(account)  # as it was: no record
            else:
                await self._leave(account, fingerprint)
            await self._give_back(target)
            return self._page(FULL)
        if made_by == account:
            # The account's first certificate, listed by name from now on.
            def first(member: Member | None) -> Member:
                return member or Member(account, target.name, now, now)

            with contextlib.suppress(StoreFull):
                await self.members.change(made_by, first)
        await self.pending.drop(fingerprint)
        if old != account:
            await self._left_behind(old, fingerprint)
        return self._page(
            "Linked. This certificate now shares the account's records in every"
            " game, and takes turns with its other certificates.",
        )

    async def _give_back(self, target: Target) -> None:
        """Make a used code live again, as it was (a join that could not be
        made must not cost the code)."""
        used_in = self.codes if target.kind == "link" else self.recovery
        code = target.code
        try:
            if isinstance(code, LinkCode):
                await self.codes.change(target.hash, lambda _: code)
            else:
                recovered = RecoveryCode(code.account)
                await self.recovery.change(target.hash, lambda _: recovered)

                def put_back(record: Account | None) -> Account | None:
                    if record is not None and target.hash not in record.recovery:
                        record.recovery.append(target.hash)
                    return record

                await self.accounts.change(target.account, put_back)
        except Exception:
            _log.failure(
                "a code could not be made live again in {slab}", slab=used_in.name
            )

    async def _leave(self, account: bytes, fingerprint: bytes) -> None:
        def out(record: Account | None) -> Account | None:
            if record is not None and fingerprint in record.certificates:
                record.certificates.remove(fingerprint)
            return record

        await self.accounts.change(account, out)

    async def _left_behind(self, old: bytes, fingerprint: bytes) -> None:
        """``fingerprint`` left account ``old``: if no certificate plays it any
        more, its records go, in every game."""
        before, _ = await self.accounts.fetch(old)
        await self._leave(old, fingerprint)
        others = [
            f for f in (before.certificates if before else []) if f != fingerprint
        ]
        if others:
            return
        for slab in self.capsule_slabs():
            await slab.drop(old)
        gone = await self.accounts.fetch(old)
        if gone[0] is not None:
            for hashed in gone[0].recovery:
                await self.recovery.drop(hashed)
            await self.accounts.drop(old)
        for hashed in await self.limits.forget_codes(old):
            await self.codes.drop(hashed)

    # -- recovery codes ---------------------------------------------------------------

    async def print_recovery(
        self, request: Request, record: Account, token: str | None = None
    ) -> Response:
        """Print one-time recovery codes (the ones printed before stop working)."""
        await ready()  # the secret its links are made under
        count = self.options.recovery_codes
        answer = ask_yes(
            request,
            token,
            "/account/recovery",
            record,
            f"Print {count} new recovery codes? Any printed before stop working."
            f" Type yes to print",
            elsewhere=self._elsewhere(
                "print new recovery codes, which ends the ones printed before",
                "Print new recovery codes (you are asked first)",
            ),
        )
        if isinstance(answer, Response):
            return answer
        if not answer:
            return self._page("No codes printed: the answer was not yes.")
        if request.environ.get(ENVIRON_EXPIRED):
            return self._page("An expired certificate cannot print recovery codes.")
        key = player_key(request)
        fingerprint = fingerprint_of_request(request)
        now = self._now()
        wait = await self.limits.print(_address(request), now)
        if wait:
            return Response(Status.SLOW_DOWN, str(wait))
        codes = [new_recovery_code() for _ in range(count)]
        hashes = [code_hash(code) for code in codes]
        kept: list[bytes] = []
        try:
            for hashed in hashes:
                await self.recovery.change(hashed, lambda _: RecoveryCode(key))
                kept.append(hashed)
        except StoreFull:
            for hashed in kept:
                await self.recovery.drop(hashed)
            return self._page(
                "The capsule keeps as many recovery codes as it may right now: none"
                " were printed. Tell the capsule's operator."
            )
        before: list[bytes] = []

        def keep(record: Account | None) -> Account:
            record = record or Account(certificates=[fingerprint])
            before[:] = record.recovery
            record.recovery = list(hashes)
            return record

        try:
            await self.accounts.change(key, keep)
        except StoreFull:
            for hashed in hashes:
                await self.recovery.drop(hashed)
            return self._page(FULL)
        for hashed in before:
            if hashed not in hashes:
                await self.recovery.drop(hashed)
        return self._page(
            "Your recovery codes: each attaches one new certificate to this account,"
            " once, if you lose every certificate you have. Write them down or"
            " print them, and keep them away from your devices; this page shows"
            " them only now.",
            "",
            "```Recovery codes",
            *(shown_code(code) for code in codes),
            "```",
            "",
            "To use one, open this capsule's account page from the new certificate,"
            ' choose "Enter a code" and type it.',
        )
