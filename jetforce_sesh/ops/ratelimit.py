"""``--rate-limit``: Jetforce's rate limiter on an injected clock, hours fixed;
``--rate-limit-cert``: the same, per client certificate, in bounded memory.

Jetforce 1.0.0's ``RateLimiter`` reads ``time.time()`` directly, so it cannot be
tested on a Clock, and parses ``N/2h`` as 3602 seconds (``+=`` where it means
``*=``). This subclass keeps its rate syntax, its per-IP key and its ``44``
answer, and fixes both.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict

from jetforce.app.base import RateLimiter, Request, Response, Status
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

_log = Logger()

_SECONDS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}


class ClockedRateLimiter(RateLimiter):
    """At most N requests per period from one address, timed on ``clock``."""

    #: The flag the rate comes from, for the message when it is wrong.
    flag = "--rate-limit"

    def __init__(self, rate: str, clock: IReactorTime) -> None:
        self.clock = clock
        match = self.RE.fullmatch(rate)
        if not match or int(match["period"] or 1) == 0:
            raise ValueError(
                f"{self.flag} {rate!r} must be N/PERIOD, e.g. 60/5m (60 requests"
                f" per 5 minutes; units s, m, h, d)"
            )
        self.number = int(match["number"])
        self.period = int(match["period"] or 1) * _SECONDS[match["unit"]]
        self.reset()

    def reset(self) -> None:
        self.next_timestamp = self.clock.seconds() + self.period
        self.rate_counter = defaultdict(int)

    def check(self, request: Request) -> Response | None:
        time_left = self.next_timestamp - self.clock.seconds()
        if time_left <= 0:
            self.reset()
            time_left = self.period
        key = self.get_key(request)
        if key is not None:
            self.rate_counter[key] += 1
            if self.rate_counter[key] > self.number:
                return Response(
                    Status.SLOW_DOWN,
                    f"Rate limit exceeded, wait {time_left:.0f} seconds.",
                )
        return None


#: Certificates a per-certificate limiter counts at once, at most.
CAPACITY = 4096


class CertificateRateLimiter(ClockedRateLimiter):
    """At most N requests per period from one client certificate, timed on
    ``clock``; the launcher applies it to session routes only.

    A request without a certificate is not counted here (the per-address
    ``--rate-limit`` is what counts it). The table holds ``capacity``
    certificates at most: a new one beyond that pushes out the one first counted
    this period, so a flood of fresh certificates costs a bounded amount of
    memory (at the price of forgetting an old certificate's count early).
    """

    flag = "--rate-limit-cert"

    def __init__(self, rate: str, clock: IReactorTime, capacity: int = CAPACITY):
        self.capacity = capacity
        super().__init__(rate, clock)

    def reset(self) -> None:
        self.next_timestamp = self.clock.seconds() + self.period
        self.counts: OrderedDict[str, int] = OrderedDict()

    def get_key(self, request: Request) -> str | None:
        return request.environ.get("TLS_CLIENT_HASH") or None

    def check(self, request: Request) -> Response | None:
        key = self.get_key(request)
        if key is None:
            return None
        time_left = self.next_timestamp - self.clock.seconds()
        if time_left <= 0:
            self.reset()
            time_left = self.period
        count = self.counts.get(key)
        if count is None:
            if len(self.counts) >= self.capacity:
                self.counts.popitem(last=False)
            count = 0
        self.counts[key] = count = count + 1
        if count == self.number + 1:
            # Once a window per certificate, not once a refusal: a noisy client
            # must not flood the log as well.
            _log.info(
                "player {player} is over --rate-limit-cert",
                player=key[7:15].lower(),
                event="rate limited",
                status=44,
            )
        if count > self.number:
            # Gemini's 44 carries the seconds to wait, and only them.
            return Response(Status.SLOW_DOWN, str(math.ceil(time_left)))
        return None
