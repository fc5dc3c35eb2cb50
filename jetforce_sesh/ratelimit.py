"""``--rate-limit``: Jetforce's rate limiter on an injected clock, hours fixed.

Jetforce 1.0.0's ``RateLimiter`` reads ``time.time()`` directly, so it cannot be
tested on a Clock, and parses ``N/2h`` as 3602 seconds (``+=`` where it means
``*=``). This subclass keeps its rate syntax, its per-IP key and its ``44``
answer, and fixes both.
"""

from __future__ import annotations

from collections import defaultdict

from jetforce.app.base import RateLimiter, Request, Response, Status
from twisted.internet.interfaces import IReactorTime

_SECONDS = {"s": 1, "m": 60, "h": 60 * 60, "d": 24 * 60 * 60}


class ClockedRateLimiter(RateLimiter):
    """At most N requests per period from one address, timed on ``clock``."""

    def __init__(self, rate: str, clock: IReactorTime) -> None:
        self.clock = clock
        match = self.RE.fullmatch(rate)
        if not match or int(match["period"] or 1) == 0:
            raise ValueError(
                f"--rate-limit {rate!r} must be N/PERIOD, e.g. 60/5m (60 requests"
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
