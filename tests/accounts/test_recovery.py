"""Recovery codes: printed once from the account page, each attaches one new
certificate, asked and limited like link codes, never logged nor echoed."""

from __future__ import annotations

import re

import pytest
from twisted.logger import capturedLogs

from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.accounts.support import accounts, app, enter, link, revoke, visits


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


def print_codes(harness: SessionHarness, player: str) -> list[str]:
    page = harness.get("/account", player=player)
    (at,) = [
        line.split()[1]
        for line in page.lines
        if line.startswith("=> /account/recovery/")
    ]
    asked = harness.get(at, player=player)
    assert (
        10,
        "Print 8 new recovery codes? Any printed before stop working. Type yes to"
        " print",
    ) == (asked.status, asked.meta)
    printed = harness.get(at, player=player, query="yes")
    return re.findall(
        r"^([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})$", printed.body, re.M
    )


def test_a_recovery_code_attaches_a_new_certificate_once(
    harness: SessionHarness,
) -> None:
    for _ in range(3):
        harness.get("/visit", player="lost-phone")
    codes = print_codes(harness, "lost-phone")
    assert 8 == len(set(codes))
    question = enter(harness, "new-phone", codes[3].lower(), confirm=None)
    asked = harness.get(question.meta, player="new-phone")
    assert asked.meta.startswith(
        "Link this certificate with a recovery code to the account of"
    )
    assert "Linked." in harness.get(question.meta, player="new-phone", query="yes").body
    assert "4" == harness.get("/visit", player="new-phone").body
    again = enter(harness, "thief", codes[3])
    assert (11, "No live code like that") == (again.status, again.meta[:22])
    assert "Linked." in enter(harness, "tablet", codes[4]).body
    page = harness.get("/account", player="tablet")
    assert "6 of this account's are live." in page.body


def test_printing_again_ends_the_codes_printed_before(harness: SessionHarness) -> None:
    first = print_codes(harness, "ann")
    second = print_codes(harness, "ann")
    assert not set(first) & set(second)
    assert 11 == enter(harness, "phone", first[0]).status
    assert "Linked." in enter(harness, "phone", second[0]).body
    assert 8 + 8 - 8 - 1 == accounts.recovery.in_use()


def test_a_revoke_ends_the_accounts_recovery_codes(harness: SessionHarness) -> None:
    link(harness, "ann", "phone")
    codes = print_codes(harness, "phone")
    page = revoke(harness, "phone", by="ann")
    assert page.body.startswith(
        "# Your account\n\nRevoked phone: from now on it is a new player, and cannot"
        " see this account's records. Its recovery codes stop working: print new"
        " ones."
    )
    assert 11 == enter(harness, "thief", codes[0]).status
    assert 0 == accounts.recovery.in_use()


def test_recovery_codes_are_never_logged_nor_echoed(harness: SessionHarness) -> None:
    with capturedLogs() as events:
        codes = print_codes(harness, "ann")
        typo = enter(harness, "phone", codes[0] + "X", confirm=None)
        right = enter(harness, "phone", codes[1], confirm=None)
    assert 11 == typo.status and 30 == right.status
    shown = repr(events) + typo.meta + right.meta
    for code in codes:
        assert code not in shown and code.replace("-", "") not in shown


def test_wrong_recovery_codes_count_like_wrong_link_codes(
    harness: SessionHarness,
) -> None:
    pages: list[Page] = [
        enter(harness, "guesser", "ABCD-2345-ABCD-2345") for _ in range(6)
    ]
    assert [11, 11, 11, 11, 11, 44] == [page.status for page in pages]


def test_a_lone_certificate_printing_codes_keeps_its_records(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="solo")
    print_codes(harness, "solo")
    assert "2" == harness.get("/visit", player="solo").body
    account = accounts.accounts.peek_now(fingerprint_of("solo"))
    assert account is not None and [fingerprint_of("solo")] == account.certificates
    assert visits.peek_now(fingerprint_of("solo")) is not None
