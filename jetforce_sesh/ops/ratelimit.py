"""``--rate-limit``: Jetforce's rate limiter on an injected clock, hours fixed;
``--rate-limit-cert``: the same, per client certificate. Both in bounded memory.

Jetforce 1.0.0's ``RateLimiter`` reads ``time.time()`` directly, so it cannot be
tested on a Clock, parses ``N/2h`` as 3602 seconds (``+=`` where it means
``*=``), keeps a count for every address seen in a period however many there
are, and answers ``44 Rate limit exceeded, wait N seconds.``, which a client
reading the meta as the seconds to wait (as Gemini first specified it) cannot
read. These subclasses keep its rate syntax and its per-IP key, and fix all of
that: a ``44`` here carries the seconds to wait, and only them.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict

from jetforce.app.base import RateLimiter, Request, Response, Status
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

_log = Logger()

_SECONDS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}

#: Addresses or certificates a limiter counts at once, at most.
CAPACITY = 4096


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
