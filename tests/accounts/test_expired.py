"""An expired certificate keeps a way out: for ``expired_grace`` after its end
it may still open its account page and make a link code for its successor;
everything else answers 62, saying so."""

from __future__ import annotations

import re

import pytest

from jetforce_sesh.testing import Page, SessionHarness
from tests.accounts.support import app, code_from, enter, link, link_at

#: The harness's clock starts 2026-01-01: this certificate ended 12 days before.
ENDED = "2025-12-20T00:00:00Z"


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


def old(harness: SessionHarness, path: str, query: str | None = None) -> Page:
    return harness.get(path, player="old", query=query, not_after=ENDED)


def test_an_expired_certificate_moves_its_records_to_a_new_one(
    harness: SessionHarness,
) -> None:
    for _ in range(3):
        harness.get("/visit", player="old", not_after="2026-02-01T00:00:00Z")
    page = old(harness, "/account")
    assert page.lines[2] == (
        "This certificate expired on 2025-12-20. Until 2026-01-19 it can still make"
        " a link code here, for the new certificate you play from next: make one,"
        " then open this page from the new certificate and enter it."
    )
    path = link_at(page, "Make a link code for your new certificate")
    code = code_from(old(harness, path))
    assert "Linked." in enter(harness, "new", code).body
    assert "4" == harness.get("/visit", player="new").body


def test_everything_else_answers_62_and_names_the_way_out(
    harness: SessionHarness,
) -> None:
    note = (
        "Your certificate expired on 2025-12-20: make a new one. Until 2026-01-19"
        " it can still open /account to make a link code for your new certificate"
    )
    link(harness, "ann", "phone")
    prefix = "0" * 16
    for path in (
        "/visit",
        "/account/link",
        "/account/join",
        "/account/recovery",
        f"/account/revoke/{prefix}",
    ):
        assert Page(62, note, "") == old(harness, path, query="yes"), path


def test_after_the_grace_an_expired_certificate_is_62_everywhere(
    harness: SessionHarness,
) -> None:
    harness.clock.advance(19 * 86400)
    for path in ("/account", "/account/code", "/visit"):
        assert Page(
            62, "Your certificate expired on 2025-12-20: make a new one", ""
        ) == old(harness, path)


def test_a_certificate_not_valid_yet_gets_no_grace(harness: SessionHarness) -> None:
    page = harness.get("/account", player="early", not_before="2026-06-01T00:00:00Z")
    assert (
        62,
        "Your certificate is not valid until 2026-06-01 00:00 UTC: use another one",
    ) == (
        page.status,
        page.meta,
    )


def test_an_expired_certificate_cannot_act_for_its_account_beyond_a_code(
    harness: SessionHarness,
) -> None:
    """Its page shows the code link alone: no revoke, no entering codes, no
    recovery codes."""
    page = old(harness, "/account")
    links = [line for line in page.lines if line.startswith("=> ")]
    assert [re.sub("/[a-z2-7]{16} ", "/TOKEN ", line) for line in links] == [
        "=> /account/code Make a link code for your new certificate",
        "=> /account Your account",
        "=> /account/help How accounts work",
        "=> / Back to the capsule",
    ]
