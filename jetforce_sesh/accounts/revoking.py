"""Revoking a certificate of an account, and forgetting accounts nobody reaches.

A revoked certificate plays a fresh account nobody else has from then on. That
account gets an account record of its own, marked ``fresh``, so that the hourly
sweep finds it, and forgets it with its records once no certificate reaches it
any more. For the certificate whose fingerprint names the account, the revoke
is also kept in ``accounts.revoked``, never forgotten nor evicted: without it,
that certificate would map back to the account it lost.
"""

from __future__ import annotations

import contextlib
import secrets

from jetforce.app.base import Request, Response
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from jetforce_sesh.accounts.base import AccountsBase
from jetforce_sesh.accounts.records import Account, Member, Revoked
from jetforce_sesh.errors import StoreFull
from jetforce_sesh.identity import fingerprint_of_request
from jetforce_sesh.keys import player_key
from jetforce_sesh.session.confirm import ask_yes, ready

_log = Logger()

#: Seconds between two sweeps for accounts no certificate reaches any more.
SWEEP_EVERY = 3600.0


class Revoking(AccountsBase):
    """Revoking, and the sweep that forgets accounts nobody reaches."""

    _sweeping: LoopingCall | None = None

    async def revoke(
        self, request: Request, record: Account, prefix: str, token: str | None = None
    ) -> Response:
        """Revoke another certificate of this account, after a confirmation."""
        await ready()  # the secret its links are made under
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
        name = member.name if member else "(name unknown)"
        answer = ask_yes(
            request,
            token,
            f"/account/revoke/{prefix}",
            record,
            f"Revoke certificate {name} ({prefix[:8]}…)? It will be a new, unknown"
            f" player from then on, and this account's recovery codes stop working."
            f" Type yes to revoke",
            elsewhere=self._elsewhere(
                f"revoke certificate {name}",
                f"Revoke {name} (you are asked first)",
            ),
        )
        if isinstance(answer, Response):
            return answer
        if not answer:
            return self._page("Not revoked: the answer was not yes.")
        key = player_key(request)
        # Drawn once, outside every edit: an edit may run again on a conflict,
        # and must keep the same fresh account.
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
        try:
            # The fresh account, so that the sweep can forget it in its turn.
            await self.accounts.change(
                fresh, lambda _: Account(certificates=[target], fresh=True)
            )
        except StoreFull:
            _log.warn(
                "accounts: full; the fresh account of a revoked certificate is not"
                " listed, and will not be swept"
            )

        def cut(member: Member | None) -> Member | None:
            if member is not None and member.account not in (key, b""):
                return member  # it moved to another account meanwhile: not ours
            member = member or Member()
            # A fresh account nobody has: the certificate starts again, even if
            # its own fingerprint names this account.
            member.account = fresh
            return member

        with contextlib.suppress(StoreFull):  # the revoked record maps it
            await self.members.change(target, cut)
        gone: list[bytes] = []

        def out(account: Account | None) -> Account | None:
            if account is None:
                return None
            if target in account.certificates:
                account.certificates.remove(target)
            gone[:] = account.recovery
            account.recovery = []
            return account

        await self.accounts.change(key, out)
        # Codes the revoked certificate may have made or seen die with it.
        for hashed in gone:
            await self.recovery.drop(hashed)
        for hashed in await self.limits.forget_codes(key):
            await self.codes.drop(hashed)
        return self._page(
            f"Revoked {name}: from now on it is a new player, and cannot see this"
            f" account's records."
            + (" Its recovery codes stop working: print new ones." if gone else "")
        )

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
            if not await self.reached(key, account):
                gone.append(key)
        removed = 0
        for key in gone:
            # Reached again meanwhile (a new link, a returning certificate)?
            again, _ = await self.accounts.fetch(key)
            if again is not None and await self.reached(key, again):
                continue
            await self.accounts.drop(key)
            for hashed in again.recovery if again else []:
                await self.recovery.drop(hashed)
            for slab in self.capsule_slabs():
                await slab.drop(key)
            removed += 1
        return removed

    async def reached(self, key: bytes, account: Account) -> bool:
        """Whether some certificate still plays account ``key``."""
        for fingerprint in dict.fromkeys([key, *account.certificates]):
            member, _ = await self.members.fetch(fingerprint)
            if member is not None:
                if member.account == key:
                    return True
                continue
            revoked, _ = await self.revoked.fetch(fingerprint)
            if revoked is not None:
                if revoked.account == key:
                    return True  # a revoked first certificate plays it
                continue
            if fingerprint == key and not account.fresh:
                # The certificate that names the account, with no link: it
                # plays its own fingerprint, which is this account.
                return True
        return False
