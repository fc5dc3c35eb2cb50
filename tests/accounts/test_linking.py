"""Linking certificates with a code, on a Clock: the whole way a player goes,
following the links the pages show."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from jetforce_sesh.accounts import ALPHABET, normal_code, read_code
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of, later_stores
from tests.accounts.support import (
    Visits,
    accounts,
    app,
    code_from,
    enter,
    link,
    link_at,
    make_code,
    visits,
)
from tests.strategies import player_input


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


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
    harness.clock.advance(3600)
    page = harness.get("/account", player="phone")
    ann, phone = fingerprint_of("ann").hex()[:16], fingerprint_of("phone").hex()[:16]
    assert "This account has 2 certificates; each" in page.body
    assert (
        f"## ann\nFingerprint {ann}…\nThe account's first certificate\n"
        "Last seen 2026-01-01 00:00 UTC\n"
    ) in page.body
    assert (
        f"## phone (this certificate)\nFingerprint {phone}…\n"
        "Linked on 2026-01-01 00:00 UTC\nLast seen 2026-01-01 01:00 UTC\n"
        "Valid from 2020-01-01 until 2999-12-31\n"
    ) in page.body
    assert f"=> /account/revoke/{ann}/" in page.body
    assert f"/account/revoke/{phone}" not in page.body


def test_a_visit_that_links_nothing_keeps_no_record(harness: SessionHarness) -> None:
    """Any certificate may open /account; only a link makes a record."""
    for n in range(20):
        harness.get("/account", player=f"stranger{n}")
        harness.get("/account/help", player=f"stranger{n}")
    assert [0, 0, 0] == [
        slab.in_use()
        for slab in (accounts.members, accounts.accounts, accounts.pending)
    ]


def test_every_link_asks_first_saying_whose_account_it_joins(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    code = make_code(harness, "ann")
    asked = enter(harness, "phone", code.lower(), confirm=None)
    # The code waits on the server: the next URL (in the access log) holds none.
    assert 30 == asked.status
    assert code.replace("-", "") not in asked.meta.upper()
    question = harness.get(asked.meta, player="phone")
    assert (
        10,
        f"Link this certificate to the account of ann"
        f" ({fingerprint_of('ann').hex()[:8]}…), which has 1 certificate?"
        " Type yes to link",
    ) == (question.status, question.meta)
    assert accounts.members.peek_now(fingerprint_of("phone")) is None


def test_a_certificate_with_records_of_its_own_is_told_what_it_loses(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    for _ in range(5):
        harness.get("/visit", player="laptop")
    code = make_code(harness, "ann")
    asked = enter(harness, "laptop", code, confirm=None)
    question = harness.get(asked.meta, player="laptop")
    assert question.meta.endswith(
        "which has 1 certificate? This certificate's own records in every game are"
        " replaced by the account's. Type yes to link"
    )
    no = harness.get(asked.meta, player="laptop", query="no")
    assert "Not linked: the answer was not yes. Nothing changed;" in no.body
    assert "6" == harness.get("/visit", player="laptop").body
    # A "no" lets the entry go, not the code: it can be entered again.
    gone = harness.get("/account/join", player="laptop", query="yes")
    assert "Nothing to link: enter a code first." in gone.body
    assert "Linked." in enter(harness, "laptop", code).body
    # The account's records win; the certificate's own are gone.
    assert visits.peek_now(fingerprint_of("laptop")) is None
    assert "2" == harness.get("/visit", player="laptop").body


def test_a_code_expires(harness: SessionHarness) -> None:
    code = make_code(harness, "ann")
    harness.clock.advance(600)
    page = enter(harness, "phone", code)
    assert (
        11,
        "No live code like that: it is mistyped, has expired or was used already;"
        " make a new one from your other certificate. Enter a live code",
    ) == (page.status, page.meta)


def test_an_expired_code_frees_its_room() -> None:
    """``max_codes`` live at once, not made in all: an expired code's slot
    goes to the next one."""
    from jetforce_sesh import SessionApplication, use_accounts
    from jetforce_sesh.accounts import AccountOptions, Accounts

    small = SessionApplication("small")
    use_accounts(small, Accounts(AccountOptions(max_codes=3, codes_per_address=100)))
    harness = SessionHarness(small)
    for n in range(3):
        make_code(harness, f"maker{n}")
    page = harness.get("/account", player="late")
    assert "44" == str(
        harness.get(link_at(page, "Make a link code"), player="late").status
    )
    harness.clock.advance(600)
    assert code_from(harness.get(link_at(page, "Make a link code"), player="late"))


def test_a_code_works_once(harness: SessionHarness) -> None:
    code = make_code(harness, "ann")
    enter(harness, "phone", code)
    again = enter(harness, "thief", code)
    assert 11 == again.status
    assert again.meta.startswith("No live code like that")
    assert "1" == harness.get("/visit", player="thief").body


def test_an_account_holds_three_live_codes_and_a_fourth_ends_the_oldest(
    harness: SessionHarness,
) -> None:
    codes = [make_code(harness, "ann") for _ in range(4)]
    assert 4 == len(set(codes))
    page = harness.get("/account", player="ann")
    assert (
        "3 link codes are live, the newest until 2026-01-01 00:10 UTC; an account"
        " holds 3 at most, and one more ends the oldest."
    ) in page.lines
    assert 11 == enter(harness, "phone", codes[0]).status
    assert "Linked." in enter(harness, "phone", codes[1]).body


def test_a_code_made_by_a_link_from_elsewhere_ends_no_code_in_use(
    harness: SessionHarness,
) -> None:
    """A stranger's link to /account/code makes the player a code only they
    see; the code their phone is entering still works."""
    code = make_code(harness, "ann")
    made = harness.get("/account/code", player="ann", query="yes")
    assert "Your link code:" in made.body
    assert "Linked." in enter(harness, "phone", code).body


def test_a_code_entered_from_its_own_account_links_nothing(
    harness: SessionHarness,
) -> None:
    code = make_code(harness, "ann")
    page = enter(harness, "ann", code)
    assert "That code was made from this account: enter it from the" in page.body


def test_codes_use_an_alphabet_without_look_alikes() -> None:
    assert not set("01ILOUV") & set(ALPHABET)
    assert "ABCD2345" == normal_code(" abcd-2345 ")
    assert normal_code("ABCD234") is None
    assert normal_code("ABCD2340") is None
    assert ("recovery", "ABCD2345ABCD2345") == read_code("abcd-2345-abcd-2345")


@settings(max_examples=60, deadline=None)
@given(text=player_input)
def test_no_answer_meets_an_undocumented_failure(text: str) -> None:
    harness = SessionHarness(app)
    harness.get("/visit", player="phone")
    code = make_code(harness, "ann")
    asked = enter(harness, "phone", code, confirm=None)
    prefix = fingerprint_of("ann").hex()[:16]
    page = harness.get("/account", player="phone")
    for path in (
        asked.meta,
        link_at(page, "Enter a code from another certificate"),
        "/account/join",
        "/account/link",
        f"/account/revoke/{prefix}",
        "/account",
        "/account/code",
        "/account/recovery",
    ):
        page = harness.get(path, player="phone", query=text)
        assert page.status in (10, 11, 20, 30, 44), (path, page)


def test_one_code_links_one_certificate_even_when_the_store_answers_later() -> None:
    harness = SessionHarness(app, stores=later_stores(0.5))
    harness.clock.pump([0.5] * 4)

    def get(path: str, player: str, query: str | None = None) -> Page:
        got: list[Page] = []
        harness.request(path, player=player, query=query).addCallback(got.append)
        harness.clock.pump([0.5] * 40)
        return got[0]

    code = code_from(get(link_at(get("/account", "ann"), "Make a link code"), "ann"))
    asks = {}
    for player in ("phone", "tablet"):
        at = link_at(get("/account", player), "Enter a code from another certificate")
        asked = get(at, player, code)
        assert 30 == asked.status, asked
        asks[player] = asked.meta
    pages: list[Any] = []
    for player, at in asks.items():
        harness.request(at, player=player, query="yes").addCallback(pages.append)
    harness.clock.pump([0.5] * 80)
    linked = ["Linked." in page.body for page in pages]
    assert [True, False] == sorted(linked, reverse=True)
    (refused,) = [page for page in pages if "Linked." not in page.body]
    assert refused.body.startswith(
        "# Your account\n\nNo live code like that any more: it was used meanwhile;"
    )


def test_a_join_whose_account_changes_meanwhile_runs_once_and_links() -> None:
    """Issue 23: a handler that wrote its route record was run again when that
    save met another write, and the join ran a second time with its code used
    up. The account pages write only through Slab.change(): another write to
    the joiner's account record in the middle (another process, say) reruns
    nothing, and the join completes, the code used once."""
    harness = SessionHarness(app, stores=later_stores(0.5))
    harness.clock.pump([0.5] * 4)

    def get(path: str, player: str, query: str | None = None) -> Page:
        got: list[Page] = []
        harness.request(path, player=player, query=query).addCallback(got.append)
        harness.clock.pump([0.5] * 60)
        return got[0]

    get("/visit", "phone")
    get("/visit", "ann")
    page = get("/account", "phone")
    at = link_at(page, "Print new recovery codes")
    assert "Your recovery codes" in get(at, "phone", "yes").body
    code = code_from(get("/account/code", "ann"))
    at = link_at(get("/account", "phone"), "Enter a code from another certificate")
    asked = get(at, "phone", code)
    pages: list[Page] = []
    harness.request(asked.meta, player="phone", query="yes").addCallback(pages.append)
    harness.clock.pump([0.5] * 6)
    # Meanwhile, the phone's account record is written elsewhere.
    accounts.accounts.change(fingerprint_of("phone"), lambda record: record)
    harness.clock.pump([0.5] * 80)
    assert "Linked." in pages[0].body
    assert "2" == get("/visit", "phone").body
