"""Accounts: linking certificates with a code, revoking, limits, on a Clock."""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from jetforce.app.base import Request, Response, Status
from twisted.internet.task import deferLater

from jetforce_sesh import SessionApplication, use_accounts
from jetforce_sesh.accounts.codes import ALPHABET, Guesses, normal_code
from jetforce_sesh.accounts.pages import SWEEP_EVERY, Accounts
from jetforce_sesh.accounts.records import AccountOptions
from jetforce_sesh.server.protocol import query_hidden
from jetforce_sesh.session.route import ENVIRON_SECRET
from jetforce_sesh.testing import (
    Page,
    SessionHarness,
    fingerprint_of,
    later_stores,
    make_environ,
)
from tests.strategies import player_input

app = SessionApplication("accounts test")


@attrs.define
class Visits:
    count: int = 0


visits = app.slab(Visits, name="visits", record_size=32)


@app.session_route("/visit", record=Visits)
def visit(request: Request, record: Visits) -> Response:
    record.count += 1
    return Response(Status.SUCCESS, "text/plain", str(record.count))


@app.session_route("/slow", record=Visits)
async def slow(request: Request, record: Visits) -> Response:
    seen = record.count
    await deferLater(visits.clock, 1, lambda: None)
    record.count = seen + 1
    return Response(Status.SUCCESS, "text/plain", str(record.count))


accounts = use_accounts(app, Accounts(AccountOptions(code_ttl=600.0)))


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


def code_from(page: Page) -> str:
    found = re.search(r"^> ([0-9A-Z]{4}-[0-9A-Z]{4})$", page.body, re.M)
    assert found is not None, page.body
    return found.group(1)


def link(harness: SessionHarness, maker: str, joiner: str) -> Page:
    code = code_from(harness.get("/account/code", player=maker))
    return harness.get("/account/link", player=joiner, query=code)


def revoke(harness: SessionHarness, player: str, *, by: str) -> Page:
    prefix = fingerprint_of(player).hex()[:16]
    return harness.get(f"/account/revoke/{prefix}", player=by, query="yes")


def evict_link(player: str) -> None:
    """Drop ``player``'s link record, as an eviction or idle expiry would."""
    store = accounts.members.opened.immediate
    assert store is not None
    assert store.delete_now(fingerprint_of(player))


def test_players_nobody_linked_keep_their_own_records(harness: SessionHarness) -> None:
    assert ["1", "2"] == [harness.get("/visit", player="ann").body for _ in "ab"]
    assert Visits(2) == visits.peek_now(fingerprint_of("ann"))


def test_a_linked_certificate_shares_the_accounts_records(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    page = link(harness, "ann", "phone")
    assert page.body.startswith("# Your account\n\nLinked. This certificate now")
    counts = [harness.get("/visit", player=p).body for p in ("phone", "ann", "phone")]
    assert ["2", "3", "4"] == counts
    # One record, under the account (named by ann's first certificate).
    assert Visits(4) == visits.peek_now(fingerprint_of("ann"))
    assert visits.peek_now(fingerprint_of("phone")) is None


def test_the_account_page_lists_every_certificate(harness: SessionHarness) -> None:
    link(harness, "ann", "phone")
    page = harness.get("/account", player="phone")
    ann, phone = fingerprint_of("ann").hex()[:16], fingerprint_of("phone").hex()[:16]
    assert "This account has 2 certificates; each" in page.body
    assert f"## ann\nFingerprint {ann}…\nFirst seen 2026-01-01 00:00 UTC" in page.body
    assert f"## phone (this certificate)\nFingerprint {phone}…\n" in page.body
    assert f"=> /account/revoke/{ann} Revoke this certificate" in page.body
    assert f"/account/revoke/{phone}" not in page.body


def test_a_certificate_with_records_of_its_own_confirms_first(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    for _ in range(5):
        harness.get("/visit", player="laptop")
    code = code_from(harness.get("/account/code", player="ann"))
    asked = harness.get("/account/link", player="laptop", query=code.lower())
    # The code stays on the server: the next URL (in the access log) is bare.
    assert (30, "/account/join") == (asked.status, asked.meta)
    confirm = harness.get(asked.meta, player="laptop")
    assert (
        10,
        "This certificate has records of its own: linking replaces them with the"
        " account's, in every game. Type yes to link",
    ) == (confirm.status, confirm.meta)
    no = harness.get(asked.meta, player="laptop", query="no")
    assert "Not linked: the answer was not yes. Nothing changed." in no.body
    assert "6" == harness.get("/visit", player="laptop").body
    # A "no" lets the code go: it must be entered again.
    gone = harness.get(asked.meta, player="laptop", query="yes")
    assert "Nothing to link: enter a link code first." in gone.body
    harness.get("/account/link", player="laptop", query=code)
    harness.get(asked.meta, player="laptop", query="yes")
    # The account's records win; the certificate's own are gone.
    assert visits.peek_now(fingerprint_of("laptop")) is None
    assert "2" == harness.get("/visit", player="laptop").body


def test_a_code_expires(harness: SessionHarness) -> None:
    code = code_from(harness.get("/account/code", player="ann"))
    harness.clock.advance(600)
    page = harness.get("/account/link", player="phone", query=code)
    assert (
        10,
        f"No live code {code}: it is mistyped, has expired or was used already;"
        f" make a new one from your other certificate. Enter a live code",
    ) == (page.status, page.meta)


def test_a_code_works_once(harness: SessionHarness) -> None:
    code = code_from(harness.get("/account/code", player="ann"))
    harness.get("/account/link", player="phone", query=code)
    again = harness.get("/account/link", player="thief", query=code)
    assert 10 == again.status
    assert again.meta.startswith(f"No live code {code}")
    assert "1" == harness.get("/visit", player="thief").body


def test_a_new_code_replaces_the_live_one(harness: SessionHarness) -> None:
    first = code_from(harness.get("/account/code", player="ann"))
    second = code_from(harness.get("/account/code", player="ann"))
    assert first != second
    assert 10 == harness.get("/account/link", player="phone", query=first).status
    linked = harness.get("/account/link", player="phone", query=second)
    assert "Linked." in linked.body


def test_a_code_entered_from_its_own_account_links_nothing(
    harness: SessionHarness,
) -> None:
    code = code_from(harness.get("/account/code", player="ann"))
    page = harness.get("/account/link", player="ann", query=code)
    assert "That code was made from this account: enter it from the" in page.body


def test_wrong_codes_are_limited_per_certificate(harness: SessionHarness) -> None:
    statuses = [
        harness.get("/account/link", player="guesser", query="ABCD2345").status
        for _ in range(6)
    ]
    assert [10, 10, 10, 10, 10, 44] == statuses
    assert "900" == harness.get("/account/link", player="guesser", query="x").meta
    harness.clock.advance(600)
    assert "300" == harness.get("/account/link", player="guesser").meta
    # Another certificate is not held back.
    assert 10 == harness.get("/account/link", player="other", query="ABCD2345").status
    harness.clock.advance(300)
    assert 10 == harness.get("/account/link", player="guesser", query="ABCD2345").status


def test_a_malformed_code_is_asked_again_without_counting(
    harness: SessionHarness,
) -> None:
    for _ in range(10):
        page = harness.get("/account/link", player="typo", query="hello")
        assert (
            10,
            "'hello' is not a link code: codes are 8 letters and digits, like"
            " ABCD-2345. Enter the code",
        ) == (page.status, page.meta)


def test_revoking_a_certificate_makes_it_a_new_player(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    harness.get("/visit", player="phone")
    prefix = fingerprint_of("phone").hex()[:16]
    asked = harness.get(f"/account/revoke/{prefix}", player="ann")
    assert (
        10,
        f"Revoke certificate phone ({prefix[:8]}…)? It will be a new, unknown"
        f" player from then on. Type yes to revoke",
    ) == (asked.status, asked.meta)
    harness.get(f"/account/revoke/{prefix}", player="ann", query="yes")
    assert "1" == harness.get("/visit", player="phone").body
    assert "3" == harness.get("/visit", player="ann").body
    page = harness.get("/account", player="ann")
    assert "This account has 1 certificate;" in page.body


def test_the_first_certificate_revoked_is_a_new_player_too(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    revoke(harness, "ann", by="phone")
    # ann's fingerprint names the account, yet ann starts afresh.
    assert "1" == harness.get("/visit", player="ann").body
    assert "2" == harness.get("/visit", player="phone").body


def test_the_certificate_in_use_cannot_be_revoked(harness: SessionHarness) -> None:
    prefix = fingerprint_of("ann").hex()[:16]
    harness.get("/account", player="ann")
    page = harness.get(f"/account/revoke/{prefix}", player="ann", query="yes")
    assert "That is the certificate you are using" in page.body
    assert "1" == harness.get("/visit", player="ann").body


def test_linked_certificates_take_turns(harness: SessionHarness) -> None:
    link(harness, "ann", "phone")
    pages: list[Any] = []
    for player in ("ann", "phone"):
        harness.request("/slow", player=player).addCallback(pages.append)
    harness.clock.advance(1)
    harness.clock.advance(1)
    assert ["1", "2"] == [page.body for page in pages]


def test_a_certificate_near_its_end_is_told_to_link_a_new_one(
    harness: SessionHarness,
) -> None:
    page = harness.get("/account", player="old", not_after="2026-01-10T00:00:00Z")
    assert page.body.startswith(
        "# Your account\n\nYour certificate expires in 9 days. Make a new one, then"
        " link it to your account from here, to keep your records.\n"
    )
    fresh = harness.get("/account", player="new")
    assert "expires" not in fresh.body


def test_the_guess_table_stays_bounded() -> None:
    guesses = Guesses(limit=5, window=900.0, capacity=100)
    for n in range(10_000):
        guesses.wrong(n.to_bytes(32, "big"), 0.0)
    assert 100 == len(guesses)


def test_codes_use_an_alphabet_without_look_alikes() -> None:
    assert not set("01ILOUV") & set(ALPHABET)
    assert "ABCD2345" == normal_code(" abcd-2345 ")
    assert normal_code("ABCD234") is None
    assert normal_code("ABCD2340") is None


@settings(max_examples=60)
@given(text=player_input)
def test_no_prompt_answers_an_undocumented_failure(text: str) -> None:
    harness = SessionHarness(app)
    code = code_from(harness.get("/account/code", player="ann"))
    harness.get("/visit", player="phone")
    # phone has records of its own: its code waits for the confirmation.
    assert 30 == harness.get("/account/link", player="phone", query=code).status
    prefix = fingerprint_of("ann").hex()[:16]
    for path in (
        "/account/join",
        "/account/link",
        f"/account/revoke/{prefix}",
        "/account",
        "/account/code",
    ):
        page = harness.get(path, player="phone", query=text)
        assert page.status in (10, 20, 30, 44), (path, page)


def test_guesses_cannot_go_around_the_limit_through_the_join_page(
    harness: SessionHarness,
) -> None:
    code = code_from(harness.get("/account/code", player="ann")).replace("-", "")
    assert (
        51 == harness.get(f"/account/join/{code}", player="guess", query="yes").status
    )
    nothing = harness.get("/account/join", player="guess", query="yes")
    assert "Nothing to link: enter a link code first." in nothing.body
    for _ in range(5):
        harness.get("/account/link", player="guess", query="22222222")
    assert 44 == harness.get("/account/link", player="guess", query=code).status


def test_a_revoked_certificate_cannot_come_back_with_a_code_it_made(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "thief")
    kept = code_from(harness.get("/account/code", player="thief"))
    revoke(harness, "thief", by="ann")
    again = harness.get("/account/link", player="thief", query=kept)
    assert (10, f"No live code {kept}: it is mistyped, has expired or was used") == (
        again.status,
        again.meta[:63],
    )
    assert "1" == harness.get("/visit", player="thief").body
    assert "2" == harness.get("/visit", player="ann").body


def test_a_code_made_by_a_certificate_that_left_the_account_is_dead(
    harness: SessionHarness,
) -> None:
    link(harness, "ann", "phone")
    code = code_from(harness.get("/account/code", player="phone"))
    revoke(harness, "phone", by="ann")
    # Even entered before the revoke's own clean-up could matter, by another:
    assert 10 == harness.get("/account/link", player="other", query=code).status


def test_one_code_links_one_certificate_even_when_the_store_answers_later() -> None:
    harness = SessionHarness(app, stores=later_stores(0.5))
    harness.clock.pump([0.5] * 4)
    made: list[Page] = []
    harness.request("/account/code", player="ann").addCallback(made.append)
    harness.clock.pump([0.5] * 40)
    code = code_from(made[0])
    pages: list[Page] = []
    for player in ("phone", "tablet"):
        harness.request("/account/link", player=player, query=code).addCallback(
            pages.append
        )
    harness.clock.pump([0.5] * 60)
    linked = ["Linked." in page.body for page in pages]
    assert [True, False] == sorted(linked, reverse=True)
    (refused,) = [page for page in pages if "Linked." not in page.body]
    assert refused.body.startswith(
        f"# Your account\n\nNo live code {code}: it was used already; make a new"
        " one from your other certificate.\n"
    )


def test_the_link_route_marks_its_query_secret_for_the_access_log() -> None:
    """The route that answers decides, not the spelling of its path: every
    spelling that reaches /account/link is marked, another route is not."""
    SessionHarness(app)
    marked = {}
    for path in ("/account/link", "/account/link/", "/%61ccount/link", "/guess"):
        environ = make_environ(path, query="abcd-2345")
        list(app(environ, lambda status, meta: None))
        marked[path] = environ.get(ENVIRON_SECRET, False)
    assert {
        "/account/link": True,
        "/account/link/": True,
        "/%61ccount/link": True,
        "/guess": False,
    } == marked
    assert "gemini://h:1965/account/link?(hidden)" == query_hidden(
        "gemini://h:1965/account/link?abcd-2345"
    )
    assert "gemini://h/account/link" == query_hidden("gemini://h/account/link")


def test_a_revoked_first_certificate_stays_out_when_its_link_record_goes(
    harness: SessionHarness,
) -> None:
    """ann's fingerprint names the account: with no record of the revoke, an
    evicted or expired link record would map ann back to it."""
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    harness.get("/visit", player="phone")
    revoke(harness, "ann", by="phone")
    evict_link("ann")
    assert "1" == harness.get("/visit", player="ann").body
    assert "3" == harness.get("/visit", player="phone").body


def test_an_account_nobody_reaches_any_more_goes_with_its_records(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    harness.get("/visit", player="phone")
    revoke(harness, "ann", by="phone")
    evict_link("phone")
    account = fingerprint_of("ann")
    harness.clock.advance(SWEEP_EVERY - 1)
    assert Visits(2) == visits.peek_now(account)
    harness.clock.advance(1)
    assert (None, None) == (
        visits.peek_now(account),
        accounts.accounts.peek_now(account),
    )
    assert "1" == harness.get("/visit", player="phone").body


def test_the_sweep_keeps_every_account_a_certificate_reaches(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    harness.get("/account", player="solo")
    harness.get("/visit", player="solo")
    harness.get("/visit", player="nobody-linked")
    revoke(harness, "phone", by="ann")
    harness.clock.advance(SWEEP_EVERY)
    assert [Visits(1), Visits(1), Visits(1)] == [
        visits.peek_now(fingerprint_of(name))
        for name in ("ann", "solo", "nobody-linked")
    ]
