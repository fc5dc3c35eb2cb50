"""How many codes a certificate and an address may guess or make, counted in a
slab (``accounts.limits``) by compare-and-set, on a Clock."""

from __future__ import annotations

import pytest
from twisted.internet.defer import ensureDeferred

from jetforce_sesh import SessionApplication, use_accounts
from jetforce_sesh.accounts import AccountOptions, Accounts, address_key
from jetforce_sesh.testing import Page, SessionHarness, make_environ
from tests.accounts.support import app, enter, link_at, make_code


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


def guess(
    harness: SessionHarness, player: str, code: str, address: str = "127.0.0.1"
) -> Page:
    """Enter ``code`` as ``player`` from ``address``, at its own prompt link."""
    page = harness.get("/account", player=player)
    at = link_at(page, "Enter a code from another certificate")
    environ = make_environ(at, player=player, query=code)
    environ["REMOTE_ADDR"] = address
    sent: list[tuple[int, str]] = []
    chunks = list(app(environ, lambda status, meta: sent.append((status, meta))))
    body = "".join(c if isinstance(c, str) else "" for c in chunks)
    return Page(sent[0][0], sent[0][1], body)


def test_wrong_codes_are_limited_per_certificate(harness: SessionHarness) -> None:
    statuses = [guess(harness, "guesser", "ABCD2345").status for _ in range(6)]
    assert [11, 11, 11, 11, 11, 44] == statuses
    assert "900" == guess(harness, "guesser", "ABCD2345").meta
    harness.clock.advance(600)
    assert "300" == guess(harness, "guesser", "ABCD2345").meta
    page = harness.get("/account", player="guesser")
    prompt = harness.get(
        link_at(page, "Enter a code from another certificate"), player="guesser"
    )
    assert (44, "300") == (prompt.status, prompt.meta)
    # Another certificate is not held back.
    assert 11 == guess(harness, "other", "ABCD2345").status
    harness.clock.advance(300)
    assert 11 == guess(harness, "guesser", "ABCD2345").status


def test_a_right_code_is_no_wrong_guess(harness: SessionHarness) -> None:
    for _ in range(4):
        guess(harness, "phone", "ABCD2345")
    assert "Linked." in enter(harness, "phone", make_code(harness, "ann")).body
    assert 11 == guess(harness, "phone", "ABCD2345").status
    assert 44 == guess(harness, "phone", "ABCD2345").status


def test_wrong_codes_are_limited_per_address_however_many_certificates() -> None:
    """Certificates are free: the address's count holds them all (an IPv6
    /64 counts as one address)."""
    small = SessionApplication("small")
    use_accounts(small, Accounts(AccountOptions(wrong_per_address=8)))
    harness = SessionHarness(small)
    global app
    saved, app = app, small
    try:
        statuses = [
            guess(harness, f"fresh{n}", "ABCD2345", f"2001:db8::{n:x}").status
            for n in range(10)
        ]
        other = guess(harness, "elsewhere", "ABCD2345", "2001:db8:1::1").status
    finally:
        app = saved
    assert [11] * 8 + [44, 44] == statuses
    assert 11 == other


def test_a_malformed_code_is_asked_again_without_counting_nor_echoing(
    harness: SessionHarness,
) -> None:
    for text in ["hello", "ABCD-2345.", "ABCD 2345 X"] * 4:
        page = guess(harness, "typo", text)
        assert (
            11,
            "That is not a code: a link code is 8 letters and digits, like"
            " ABCD-2345, and a recovery code 16. Enter the code",
        ) == (page.status, page.meta)
    assert 11 == guess(harness, "typo", "ABCD2345").status


def test_guesses_cannot_go_around_the_limit_through_other_pages(
    harness: SessionHarness,
) -> None:
    code = make_code(harness, "ann").replace("-", "")
    assert (
        51 == harness.get(f"/account/join/x/{code}", player="guess", query="yes").status
    )
    nothing = harness.get("/account/join", player="guess", query="yes")
    assert "Nothing to link: enter a code first." in nothing.body
    for _ in range(5):
        guess(harness, "guess", "22222222")
    assert 44 == guess(harness, "guess", code).status


def test_an_address_is_its_own_key_and_a_v6_address_its_slash_64() -> None:
    assert address_key("192.0.2.1") == address_key("::ffff:192.0.2.1")
    assert address_key("192.0.2.1") != address_key("192.0.2.2")
    assert address_key("2001:db8::1") == address_key("2001:db8::ffff:1")
    assert address_key("2001:db8::1") != address_key("2001:db8:0:1::1")
    assert address_key("not an address") != address_key("192.0.2.1")


def test_an_address_holds_a_few_live_codes_and_one_more_ends_its_oldest() -> None:
    small = SessionApplication("small")
    use_accounts(small, Accounts(AccountOptions(codes_per_address=3)))
    harness = SessionHarness(small)
    global app
    saved, app = app, small
    try:
        codes = [make_code(harness, f"maker{n}") for n in range(5)]
        entered = [guess(harness, "joiner", code).status for code in codes]
    finally:
        app = saved
    # The two oldest ended; the newest three are live (each asks to join).
    assert [11, 11, 30, 30, 30] == entered


def test_two_counts_at_once_count_twice() -> None:
    """Two guesses counted at once on a store that answers later: the
    compare-and-set of one conflicts, and it counts again on the fresh count."""
    from jetforce_sesh.testing import later_stores

    harness = SessionHarness(app, stores=later_stores(0.5))
    harness.clock.pump([0.5] * 4)
    from tests.accounts.support import accounts

    limits = accounts.limits
    now = harness.clock.seconds()
    fingerprint = b"\x01" * 32
    waits: list[int] = []
    for _ in range(6):
        ensureDeferred(limits.guess(fingerprint, "192.0.2.9", now)).addCallback(
            waits.append
        )
    harness.clock.pump([0.5] * 200)
    assert [0, 0, 0, 0, 0, 900] == sorted(waits)
