"""``--rate-limit-cert`` and ``--rate-limit``: per certificate and per address, on
the reactor clock, in bounded memory, answering the seconds to wait."""

from __future__ import annotations

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from jetforce_sesh import SessionApplication
from jetforce_sesh.ops.ratelimit import (
    CAPACITY,
    CertificateRateLimiter,
    ClockedRateLimiter,
)
from jetforce_sesh.testing import SessionHarness, fingerprint_of, make_environ


def request(player: str | None) -> Request:
    return Request(make_environ("/tally", player=player))


def test_a_certificate_over_its_rate_is_told_the_seconds_to_wait() -> None:
    clock = Clock()
    limiter = CertificateRateLimiter("2/1m", clock)
    assert [None, None] == [limiter.check(request("ann")) for _ in range(2)]
    clock.advance(20)
    refused = limiter.check(request("ann"))
    assert refused is not None
    assert (44, "40") == (refused.status, refused.meta)
    assert limiter.check(request("bob")) is None  # each certificate its own count
    clock.advance(39.5)
    refused = limiter.check(request("ann"))
    assert refused is not None and "1" == refused.meta  # rounded up, never 0
    clock.advance(0.5)
    assert limiter.check(request("ann")) is None


def test_the_first_refusal_of_a_window_is_logged_without_the_fingerprint() -> None:
    clock = Clock()
    limiter = CertificateRateLimiter("1/1m", clock)
    with capturedLogs() as events:
        for _ in range(4):
            limiter.check(request("ann"))
        clock.advance(60)
        for _ in range(3):
            limiter.check(request("ann"))
    player = fingerprint_of("ann").hex()[:8]
    assert 2 * [("rate limited", player, 44)] == [
        (e["event"], e["player"], e["status"]) for e in events
    ]
    assert f"player {player} is over --rate-limit-cert" == formatEvent(events[0])


def test_a_request_without_a_certificate_is_left_to_the_address_limit() -> None:
    limiter = CertificateRateLimiter("1/1s", Clock())
    assert [None, None, None] == [limiter.check(request(None)) for _ in range(3)]
    assert {} == dict(limiter.counts)


def test_a_flood_of_fresh_certificates_leaves_the_table_bounded() -> None:
    clock = Clock()
    limiter = CertificateRateLimiter("5/1h", clock)
    limiter.check(request("noisy"))
    for n in range(10_000):
        assert limiter.check(request(f"fresh-{n}")) is None
    assert CAPACITY == len(limiter.counts) == 4096
    # The oldest went first: the flood's last certificates are still counted.
    assert request("noisy").environ["TLS_CLIENT_HASH"] not in limiter.counts
    assert 1 == limiter.counts[request("fresh-9999").environ["TLS_CLIENT_HASH"]]


def test_a_bad_rate_names_the_flag_and_the_fix() -> None:
    with pytest.raises(ValueError) as caught:
        CertificateRateLimiter("lots", Clock())
    assert str(caught.value) == (
        "--rate-limit-cert 'lots' must be N/PERIOD, e.g. 60/5m (60 requests per 5"
        " minutes; units s, m, h, d)"
    )


app = SessionApplication("Limited")


@attrs.define
class Seen:
    n: int = 0


@app.session_route("/seen", record=Seen)
def seen(request: Request, record: Seen) -> Response:
    record.n += 1
    return Response(Status.SUCCESS, "text/plain", str(record.n))


@app.route("/plain")
def plain(request: Request) -> Response:
    return Response(Status.SUCCESS, "text/plain", "plain")


def test_the_application_limits_session_routes_only() -> None:
    harness = SessionHarness(app)
    app.certificate_limiter = CertificateRateLimiter("1/1m", harness.clock)
    pages = [harness.get(path, player="ann") for path in ("/seen", "/seen", "/plain")]
    assert [(20, "1"), (44, ""), (20, "plain")] == [(p.status, p.body) for p in pages]
    assert "60" == pages[1].meta
    app.close(grace=0)


# -- --rate-limit, by address --------------------------------------------------


def from_address(address: str) -> Request:
    environ = make_environ("/", player=None)
    environ["REMOTE_ADDR"] = address
    return Request(environ)


def test_every_44_of_the_address_limit_is_the_whole_seconds_to_wait() -> None:
    clock = Clock()
    limiter = ClockedRateLimiter("1/1m", clock)
    assert limiter.check(from_address("192.0.2.1")) is None
    metas = []
    for step in (0.2, 29.5, 30.0):
        clock.advance(step)
        refused = limiter.check(from_address("192.0.2.1"))
        assert refused is not None and 44 == refused.status
        metas.append(refused.meta)
    # 59.8, 30.3 and 0.3 seconds left: rounded up, so never 0.
    assert ["60", "31", "1"] == metas


def test_a_flood_of_fresh_addresses_leaves_the_address_table_bounded() -> None:
    limiter = ClockedRateLimiter("5/1h", Clock())
    for n in range(10_000):
        assert (
            limiter.check(from_address(f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"))
            is None
        )
    assert CAPACITY == len(limiter.counts)
    assert 1 == limiter.counts["10.0.39.15"]  # the last one, 9999
    assert "10.0.0.0" not in limiter.counts


def test_an_address_that_keeps_asking_stays_counted_through_a_flood() -> None:
    limiter = ClockedRateLimiter("3/1h", Clock())
    refusals = []
    for n in range(3 * CAPACITY):
        limiter.check(from_address(f"2001:db8:{n:x}::1"))
        if n % 100 == 0:
            refusals.append(limiter.check(from_address("192.0.2.9")))
    # Counted the whole time: over its 3 from the fourth request on.
    assert [None] * 3 == refusals[:3]
    assert all(r is not None and r.status == 44 for r in refusals[3:])


def test_an_ipv6_client_counts_as_its_64_and_a_mapped_ipv4_as_itself() -> None:
    limiter = ClockedRateLimiter("2/1m", Clock())
    answers = [
        limiter.check(from_address(address))
        for address in (
            "2001:db8:1:2::1",
            "2001:db8:1:2:ffff::9",  # the same /64: its second request
            "2001:db8:1:3::1",  # another /64
            "::ffff:192.0.2.1",
            "192.0.2.1",  # the same client as the line above
        )
    ]
    assert [None] * 5 == answers
    assert limiter.check(from_address("2001:db8:1:2:abcd::1")) is not None
    assert limiter.check(from_address("192.0.2.1")) is not None
    assert {"2001:db8:1:2::/64": 3, "2001:db8:1:3::/64": 1, "192.0.2.1": 3} == dict(
        limiter.counts
    )
