"""``--rate-limit-cert``: per certificate, on the reactor clock, in bounded memory."""

from __future__ import annotations

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent

from jetforce_sesh import SessionApplication
from jetforce_sesh.ops.ratelimit import CAPACITY, CertificateRateLimiter
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
