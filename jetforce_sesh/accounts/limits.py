"""How many codes a certificate or a client address may guess or make: counts
kept in a slab, so that every process of a capsule sharing a store (Redis)
shares them too, and changed by compare-and-set, so that two processes
counting at once count twice.

A guess is counted before the code is looked up, and given back if the code
was right: of two guesses at the limit, on two processes at once, one is
refused, as on one.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import math

from jetforce_sesh.accounts.records import AccountOptions, Tally
from jetforce_sesh.errors import Conflict
from jetforce_sesh.session.slab import Slab

#: Seconds in the window of recovery-code prints per address.
PRINT_WINDOW = 86400.0
#: Runs of a count's edit when its saves keep meeting other counts: enough
#: for a dozen guesses of one certificate at once.
ATTEMPTS = 12


def address_key(address: str) -> bytes:
    """The key of a client address's counts: the address itself for IPv4, its
    /64 for IPv6 (one machine's share, however many addresses it takes)."""
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return hashlib.sha256(
            b"address ?" + address.encode("utf-8", "replace")
        ).digest()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network((ip, 64), strict=False)
        packed = network.network_address.packed[:8]
    else:
        packed = ip.packed
    return hashlib.sha256(b"address " + packed).digest()


def _left(since: float, window: float, now: float) -> int:
    """Whole seconds until a window that began at ``since`` ends."""
    return max(1, math.ceil(since + window - now))


class Limits:
    """The counts of ``accounts.limits``, per certificate and per address."""

    def __init__(self, slab: Slab[Tally], options: AccountOptions) -> None:
        self.slab = slab
        self.options = options

    async def _take(
        self,
        key: bytes,
        now: float,
        limit: int,
        window: float,
        field: str,
    ) -> int:
        """Count one more ``field`` for ``key`` if fewer than ``limit`` were
        counted in the window; 0 if counted, else the seconds to wait."""
        waits: list[int] = []
        since_field = "printed_since" if field == "printed" else "since"

        def edit(tally: Tally | None) -> Tally:
            waits.clear()  # the edit runs again on a conflict: count afresh
            tally = tally or Tally()
            since = getattr(tally, since_field)
            if now - since >= window or since > now:
                # A new window (or a clock that went back): count from now.
                setattr(tally, since_field, now)
                if since_field == "since":
                    tally.wrong = 0
                else:
                    tally.printed = 0
                since = now
            if getattr(tally, field) >= limit:
                waits.append(_left(since, window, now))
            else:
                setattr(tally, field, getattr(tally, field) + 1)
            return tally

        try:
            await self.slab.change(key, edit, attempts=ATTEMPTS)
        except Conflict:
            return 1  # counted by so many at once that it could not be: wait
        return waits[0] if waits else 0

    async def _give(self, key: bytes, field: str) -> None:
        def edit(tally: Tally | None) -> Tally | None:
            if tally is not None and getattr(tally, field) > 0:
                setattr(tally, field, getattr(tally, field) - 1)
            return tally

        # A count not given back only makes the player wait a little sooner.
        with contextlib.suppress(Conflict):
            await self.slab.change(key, edit, attempts=ATTEMPTS)

    async def guess(self, fingerprint: bytes, address: str, now: float) -> int:
        """Count a guess of a code by ``fingerprint`` from ``address``: 0 if it
        may be tried, else the seconds the certificate or address must wait."""
        options = self.options
        window = options.wrong_window
        wait = await self._take(fingerprint, now, options.wrong_codes, window, "wrong")
        if wait:
            return wait
        at = address_key(address)
        wait = await self._take(at, now, options.wrong_per_address, window, "wrong")
        if wait:
            await self._give(fingerprint, "wrong")
        return wait

    async def right(self, fingerprint: bytes, address: str) -> None:
        """The guess counted was a live code: it was no wrong one."""
        await self._give(fingerprint, "wrong")
        await self._give(address_key(address), "wrong")

    async def waiting(self, fingerprint: bytes, address: str, now: float) -> int:
        """Seconds before ``fingerprint`` (or its address) may guess again;
        0 if it may now. Reads, counts nothing."""
        options = self.options
        checks: list[tuple[bytes, int]] = [
            (fingerprint, options.wrong_codes),
            (address_key(address), options.wrong_per_address),
        ]
        for key, limit in checks:
            tally, _ = await self.slab.fetch(key)
            if (
                tally is not None
                and 0 <= now - tally.since < options.wrong_window
                and tally.wrong >= limit
            ):
                return _left(tally.since, options.wrong_window, now)
        return 0

    async def made(self, address: str, account: bytes, hashed: bytes) -> list[bytes]:
        """Note the link code ``hashed`` made for ``account`` from ``address``;
        the hashes of the codes that end to make room: an address holds at
        most ``codes_per_address``, an account ``codes_per_account``, and one
        more ends the oldest."""
        options = self.options
        ended: list[bytes] = []
        for key, limit in (
            (address_key(address), options.codes_per_address),
            (account, options.codes_per_account),
        ):
            ended += await self._ring(key, limit, hashed)
        return list(dict.fromkeys(ended))

    async def _ring(self, key: bytes, limit: int, hashed: bytes) -> list[bytes]:
        ended: list[bytes] = []

        def edit(tally: Tally | None) -> Tally:
            tally = tally or Tally()
            codes = [code for code in tally.codes if code != hashed] + [hashed]
            ended[:] = codes[: max(0, len(codes) - limit)]
            tally.codes = codes[len(ended) :]
            return tally

        await self.slab.change(key, edit, attempts=ATTEMPTS)
        return ended

    async def codes_of(self, account: bytes) -> list[bytes]:
        """The hashes of the link codes ``account`` made, oldest first (some
        may have been used or have expired since)."""
        tally, _ = await self.slab.fetch(account)
        return list(tally.codes) if tally is not None else []

    async def forget_codes(self, account: bytes) -> list[bytes]:
        """Forget the link codes ``account`` made; their hashes."""
        gone: list[bytes] = []

        def edit(tally: Tally | None) -> Tally | None:
            if tally is None:
                return None
            gone[:] = tally.codes
            tally.codes = []
            return tally

        await self.slab.change(account, edit, attempts=ATTEMPTS)
        return gone

    async def print(self, address: str, now: float) -> int:
        """Count recovery codes printed from ``address``: 0, or seconds to wait."""
        return await self._take(
            address_key(address),
            now,
            self.options.prints_per_address,
            PRINT_WINDOW,
            "printed",
        )
