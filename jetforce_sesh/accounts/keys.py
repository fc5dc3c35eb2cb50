"""The key step with accounts: a certificate's account, read from its link."""

from __future__ import annotations

import contextlib
import datetime
from typing import cast

from jetforce.app.base import Request
from twisted.internet.defer import Deferred
from zope.interface import implementer

from jetforce_sesh.accounts.records import Member, Revoked
from jetforce_sesh.errors import Conflict, StoreFull
from jetforce_sesh.identity import Certificate
from jetforce_sesh.keys import IFingerprintKeys, IPlayerKeys
from jetforce_sesh.session.route import IExpiredWayOut
from jetforce_sesh.session.slab import OpenSlab, Slab
from jetforce_sesh.stores.contract import IImmediateSessionStore, Stored

#: Seconds between two updates of a certificate's "last seen".
SEEN_EVERY = 60.0
#: Link records whose decoded account the key step keeps at hand.
READ_CACHE = 16384


@implementer(IPlayerKeys, IFingerprintKeys, IExpiredWayOut)
class AccountKeys:
    """The key step with accounts: a certificate's account, or its own
    fingerprint for a certificate nobody linked."""

    def __init__(
        self, members: Slab[Member], revoked: Slab[Revoked], grace: float = 0.0
    ) -> None:
        self.members = members
        self.revoked = revoked
        #: Seconds after its expiry a certificate may still reach its account
        #: page to make a link code for its successor.
        self.grace = grace
        # The account and "last seen" of each certificate's link record, by
        # the record's version: decoding it on every request cost more than
        # the rest of the key step (benchmarks.micro). Bounded: cleared when
        # it reaches the cap.
        self._read: dict[bytes, tuple[int, bytes, float]] = {}
        # Versions are unique within one opening of a store only: the table
        # belongs to the opening it was read from.
        self._read_from: object = None

    def key_for(
        self, request: Request, certificate: Certificate
    ) -> bytes | Deferred[bytes]:
        fingerprint = certificate.fingerprint
        opened = self.members.opened
        if opened.immediate is not None:
            return self.key_for_fingerprint(fingerprint)
        # Links kept in another process (Redis): read, then map, when it answers.
        peeked: Deferred[Stored | None] = opened.store.peek(fingerprint)

        def mapped(stored: Stored | None) -> bytes | Deferred[bytes]:
            if stored is None:
                return self._unlinked(fingerprint)
            return self._account_of(stored, fingerprint, opened, None)

        return peeked.addCallback(mapped)

    def expired_note(self, certificate: Certificate, now: float) -> str | None:
        """What an expired certificate can still do, for its ``62`` answer."""
        until = certificate.valid_until + self.grace
        if not self.grace or now > until:
            return None
        day = datetime.datetime.fromtimestamp(until, datetime.UTC)
        return (
            f"Until {day:%Y-%m-%d} it can still open /account to make a link code"
            f" for your new certificate"
        )

    def key_for_fingerprint(self, fingerprint: bytes) -> bytes:
        """The key of the player with certificate ``fingerprint``, at once (also
        for the CGI bridge, which knows nothing more of the player)."""
        opened = self.members.opened
        immediate = opened.immediate
        if immediate is None:
            raise TypeError(
                "the certificate links live in another process: the bridge cannot"
                " map a fingerprint to its account at once"
            )
        stored = immediate.peek_now(fingerprint)
        if stored is None:
            return cast(bytes, self._unlinked(fingerprint))
        return self._account_of(stored, fingerprint, opened, immediate)

    def _unlinked(self, fingerprint: bytes) -> bytes | Deferred[bytes]:
        """The key of a certificate with no link record: its own fingerprint,
        unless it was revoked from the account that fingerprint names (at once
        from a store in this process)."""
        opened = self.revoked.opened

        def account(stored: Stored | None) -> bytes:
            if stored is None:
                return fingerprint
            revoked: Revoked = opened.codec.decode(stored.data)
            return revoked.account

        if opened.immediate is not None:
            return account(opened.immediate.peek_now(fingerprint))
        peeked: Deferred[Stored | None] = opened.store.peek(fingerprint)
        return peeked.addCallback(account)

    def _account_of(
        self,
        stored: Stored,
        fingerprint: bytes,
        opened: OpenSlab[Member],
        immediate: IImmediateSessionStore | None,
    ) -> bytes:
        """The account ``stored`` (a link record) names; "last seen" is written
        at most every :data:`SEEN_EVERY` seconds."""
        if self._read_from is not opened:
            self._read.clear()
            self._read_from = opened
        known = self._read.get(fingerprint)
        if known is None or known[0] != stored.version:
            member: Member = opened.codec.decode(stored.data)
            if len(self._read) >= READ_CACHE:
                self._read.clear()
            known = self._read[fingerprint] = (
                stored.version,
                member.account or fingerprint,
                member.last_seen,
            )
        now = opened.clock.seconds()
        if now - known[2] >= SEEN_EVERY:
            member = opened.codec.decode(stored.data)
            member.last_seen = now
            data = opened.codec.encode(member)
            # Only "last seen": if it cannot be kept, the next request tries again.
            if immediate is not None:
                with contextlib.suppress(Conflict, StoreFull):
                    immediate.save_now(fingerprint, data, stored.version)
            else:
                saving = opened.store.save(fingerprint, data, stored.version)
                saving.addErrback(lambda _: None)
        return known[1]
