"""``--rate-limit``: Jetforce's rate limiter on an injected clock, hours fixed;
``--rate-limit-cert``: the same, per client certificate. Both in bounded memory,
or, on a store every process of the capsule shares (``--workers N``, several
machines on one Redis), counted in that store, so that N processes let through
N requests per period, not N times as many.

Jetforce 1.0.0's ``RateLimiter`` reads ``time.time()`` directly, so it cannot be
tested on a Clock, parses ``N/2h`` as 3602 seconds (``+=`` where it means
``*=``), keeps a count for every address seen in a period however many there
are, and answers ``44 Rate limit exceeded, wait N seconds.``, which a client
reading the meta as the seconds to wait (as Gemini first specified it) cannot
read. These subclasses keep its rate syntax and its per-IP key, and fix all of
that: a ``44`` here carries the seconds to wait, and only them.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections import OrderedDict

import attrs
from jetforce.app.base import RateLimiter, Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from jetforce_sesh.errors import Conflict, StoreFull
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.contract import ABSENT, StoreFactory

_log = Logger()

_SECONDS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}

#: Addresses or certificates a limiter counts at once, at most.
CAPACITY = 4096
#: The same, for counts kept in a shared store (a record each, in Redis).
SHARED_CAPACITY = 65536
#: Saves of one count that may meet another process's save of it before the
#: request is answered 44 all the same (its count could not be kept).
SHARED_ATTEMPTS = 64


def address_key(address: str) -> str:
    """What ``--rate-limit`` counts a client address as.

    An IPv6 client usually has a whole /64 to pick addresses from, so it is
    counted as its /64; an IPv4 address as itself (also when a dual-stack socket
    shows it as ``::ffff:a.b.c.d``).
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class ClockedRateLimiter(RateLimiter):
    """At most N requests per period from one address, timed on ``clock``.

    The counts start again at the end of each period. The table holds
    ``capacity`` keys at most: a new one beyond that pushes out the one counted
    longest ago, so a flood of fresh addresses costs a bounded amount of memory
    (at the price of forgetting an idle address's count early; one that keeps
    asking stays counted).
    """

    #: The flag the rate comes from, for the message when it is wrong.
    flag = "--rate-limit"

    def __init__(
        self, rate: str, clock: IReactorTime, capacity: int = CAPACITY
    ) -> None:
        self.clock = clock
        self.capacity = capacity
        match = self.RE.fullmatch(rate)
        if not match or int(match["period"] or 1) == 0:
            raise ValueError(
                f"{self.flag} {rate!r} must be N/PERIOD, e.g. 60/5m (60 requests"
                f" per 5 minutes; units s, m, h, d)"
            )
        if int(match["number"]) == 0:
            raise ValueError(
                f"{self.flag} {rate!r} lets no request through, and every one would"
                f" get 44: give 1 or more requests per period, e.g. 60/5m, or leave"
                f" {self.flag} out"
            )
        self.number = int(match["number"])
        self.period = int(match["period"] or 1) * _SECONDS[match["unit"]]
        self.reset()

    def reset(self) -> None:
        self.next_timestamp = self.clock.seconds() + self.period
        self.counts: OrderedDict[str, int] = OrderedDict()

    def get_key(self, request: Request) -> str | None:
        address = request.environ.get("REMOTE_ADDR")
        return None if address is None else address_key(str(address))

    def check(self, request: Request) -> Response | None:
        key = self.get_key(request)
        if key is None:
            return None
        time_left = self.next_timestamp - self.clock.seconds()
        if time_left <= 0:
            self.reset()
            time_left = self.period
        counts = self.counts
        count = counts.get(key)
        if count is None:
            if len(counts) >= self.capacity:
                counts.popitem(last=False)
            count = 0
        else:
            counts.move_to_end(key)
        counts[key] = count = count + 1
        if count <= self.number:
            return None
        if count == self.number + 1:
            self.over(key)
        # Gemini's 44 carries the seconds to wait, and only them: whole, never 0.
        return Response(Status.SLOW_DOWN, str(max(1, math.ceil(time_left))))

    def over(self, key: str) -> None:
        """``key`` went over its rate (called once a window per key)."""


class CertificateRateLimiter(ClockedRateLimiter):
    """At most N requests per period from one client certificate, timed on
    ``clock``; the launcher applies it to session routes only.

    A request without a certificate is not counted here (the per-address
    ``--rate-limit`` is what counts it).
    """

    flag = "--rate-limit-cert"

    def get_key(self, request: Request) -> str | None:
        return request.environ.get("TLS_CLIENT_HASH") or None

    def over(self, key: str) -> None:
        # Once a window per certificate, not once a refusal: a noisy client
        # must not flood the log as well.
        _log.info(
            "player {player} is over --rate-limit-cert",
            player=key[7:15].lower(),
            event="rate limited",
            status=44,
        )


@attrs.define
class Window:
    """One address's or certificate's count in a shared store: the requests
    counted since the window began."""

    since: float = 0.0
    count: int = 0


def _over(seconds: float) -> Response:
    # Gemini's 44 carries the seconds to wait, and only them: whole, never 0.
    return Response(Status.SLOW_DOWN, str(max(1, math.ceil(seconds))))


class SharedCounts:
    """The counts of a limiter in a store several processes share: one record
    per key, counted by compare-and-set (the store contract's versions), so
    two processes counting at once count twice and the N+1th request of a
    window is refused whichever process it reaches.

    A window begins with a key's first request and lasts ``period`` seconds.
    A key found over its rate is remembered here until its window ends, so a
    client that keeps asking costs no store round trip after that.

    Two things keep the round trips few without counting less exactly:

    - **Save first.** This process keeps the last count and version it saw of
      each key, and counts on from them with a save naming that version: if
      no other process counted meanwhile, that one round trip is the whole
      count; if one did, the save fails with Conflict, changing nothing, and
      the count is read and saved again. Whether saving first pays is
      measured as it goes (how often the version seen was still current):
      where other processes count the same keys more often than not, as
      several workers sharing clients at random do, it reads first instead.
    - **One count for the requests waiting on a key.** Within this process,
      one key is counted by one save at a time; the requests that arrive
      meanwhile wait, and the next save counts them all at once (letting
      through as many as the window still has room for, in the order they
      came, and refusing the rest): a key busy on every worker costs a round
      trip per batch, not per request.
    """

    def __init__(self, limiter: ClockedRateLimiter, name: str, capacity: int) -> None:
        self.limiter = limiter
        self.slab: Slab[Window] = Slab(
            Window,
            name=name,
            record_size=32,
            max_records=capacity,
            # A count unused for a period is over: its window ended.
            idle_timeout=float(limiter.period),
            on_full="evict",
        )
        self.slab.unit = "counts"
        self.capacity = capacity
        #: Keys over their rate, and when their window ends.
        self.over_until: OrderedDict[str, float] = OrderedDict()
        #: The requests waiting for a key's next count, for the keys being
        #: counted now.
        self.waiting: dict[str, list[Deferred[Response | None]]] = {}
        #: The last count and version this process saw of each key.
        self.seen: OrderedDict[str, tuple[Window, int]] = OrderedDict()
        #: How often the version seen was still current when counted again,
        #: a moving average from 0 to 1: save first while it is over half.
        self.current = 1.0
        #: True once a count could not be kept: said once, not per request.
        self.failing = False

    def open(self, stores: StoreFactory) -> Deferred[None]:
        return self.slab.open(self.limiter.clock, None, stores)

    def close(self) -> Deferred[None]:
        return self.slab.close()

    def check(self, key: str) -> Response | Deferred[Response | None]:
        now = self.limiter.clock.seconds()
        until = self.over_until.get(key)
        if until is not None:
            if until > now:
                return _over(until - now)
            del self.over_until[key]
        answer: Deferred[Response | None] = Deferred()
        waiting = self.waiting.get(key)
        if waiting is not None:
            waiting.append(answer)  # counted with the next batch
            return answer
        self.waiting[key] = [answer]
        Deferred.fromCoroutine(self._counting(key))
        return answer

    async def _counting(self, key: str) -> None:
        """Count the requests waiting on ``key``, batch by batch, until none
        is left waiting."""
        waiting = self.waiting[key]
        while waiting:
            batch = waiting[:]
            del waiting[:]
            try:
                answers = await self._count(key, len(batch))
            except Exception:
                answers = [None] * len(batch)  # never leave a request waiting
                _log.failure("{flag}: counting failed", flag=self.limiter.flag)
            for request, answered in zip(batch, answers, strict=True):
                request.callback(answered)
        del self.waiting[key]

    def _saw(self, key: str, window: Window, version: int) -> None:
        seen = self.seen
        seen[key] = (window, version)
        seen.move_to_end(key)
        if len(seen) > self.capacity:
            seen.popitem(last=False)

    def _current(self, was: bool) -> None:
        self.current = 0.9 * self.current + (0.1 if was else 0.0)

    async def _count(self, key: str, asking: int) -> list[Response | None]:
        """Count ``asking`` requests of ``key``: an answer for each, in order
        (None: let through)."""
        limiter = self.limiter
        digest = hashlib.sha256(f"{limiter.flag} {key}".encode()).digest()
        slab = self.slab
        try:
            seen = self.seen.pop(key, None)
            for _ in range(SHARED_ATTEMPTS):
                found: Window | None
                if seen is not None and self.current >= 0.5:
                    found, version = seen  # save first, on what was seen
                    saved_first = True
                else:
                    found, version = await slab.fetch(digest)
                    if seen is not None:
                        self._current(version == seen[1])
                    saved_first = False
                seen = None
                # Read now, once the count is in hand: the request may have
                # waited, and so may the read.
                now = limiter.clock.seconds()
                # Another process began the window by its own clock, which may
                # be a little ahead of this one's: a window that starts in the
                # future is the current one, not an old one to begin afresh
                # over (that would drop the counts in it). Only one a whole
                # period ahead (a clock set back) is begun again.
                if found is None or not -limiter.period < now - found.since < (
                    limiter.period
                ):
                    found, version = Window(now, 0), version or ABSENT
                room = limiter.number - found.count
                if room <= 0:
                    refused = self._refuse(key, found.since + limiter.period, now)
                    return [refused] * asking
                let = min(room, asking)
                counted = Window(found.since, found.count + let)
                try:
                    version = await slab.store.save(
                        digest, slab.codec.encode(counted), version
                    )
                except Conflict:
                    if saved_first:
                        self._current(False)
                    continue  # another process counted meanwhile: count again
                if saved_first:
                    self._current(True)
                self._saw(key, counted, version)
                self.failing = False
                answers: list[Response | None] = [None] * let
                if let < asking:
                    until = counted.since + limiter.period
                    answers += [self._refuse(key, until, now)] * (asking - let)
                return answers
        except (StoreFull, Conflict):
            pass
        except Exception as error:
            # The store is away: serve rather than refuse everyone (the
            # session routes answer 41 on their own while it is).
            if not self.failing:
                self.failing = True
                _log.warn(
                    "{flag}: cannot count requests in the store ({error});"
                    " serving them uncounted until it answers",
                    flag=limiter.flag,
                    error=error,
                )
            return [None] * asking
        # Counted by so many at once that it could not be: wait a second.
        return [_over(1)] * asking

    def _refuse(self, key: str, until: float, now: float) -> Response:
        if key not in self.over_until:
            if len(self.over_until) >= self.capacity:
                self.over_until.popitem(last=False)
            self.limiter.over(key)
        self.over_until[key] = until
        return _over(until - now)


class SharedRateLimiter(ClockedRateLimiter):
    """``--rate-limit`` on a shared store: at most N requests per period from
    one address, over every process of the capsule. ``check`` answers with a
    Deferred while it counts (the application waits for it)."""

    def __init__(
        self, rate: str, clock: IReactorTime, capacity: int = SHARED_CAPACITY
    ) -> None:
        super().__init__(rate, clock, capacity)
        self.counts_kept = SharedCounts(
            self, f"jetforce-sesh.{self.flag[2:]}", capacity
        )

    def check(  # type: ignore[override]
        self, request: Request
    ) -> Response | Deferred[Response | None] | None:
        key = self.get_key(request)
        if key is None:
            return None
        # A Deferred while it counts, which the application waits for.
        return self.counts_kept.check(key)


class SharedCertificateRateLimiter(SharedRateLimiter, CertificateRateLimiter):
    """``--rate-limit-cert`` on a shared store."""

    flag = "--rate-limit-cert"
