"""Revoking a certificate, and the sweep that forgets accounts nobody reaches."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest

from jetforce_sesh import Slab
from jetforce_sesh.testing import (
    LaterStore,
    Page,
    SessionHarness,
    fingerprint_of,
    later_stores,
)
from tests.accounts.support import (
    SWEEP_EVERY,
    Visits,
    accounts,
    app,
    enter,
    evict_link,
    link,
    link_at,
    make_code,
    revoke,
    visits,
)

R = TypeVar("R")


def held(slab: Slab[R], key: bytes) -> R:
    """The record ``slab`` holds under ``key``, behind a LaterStore."""
    store = slab.store
    assert isinstance(store, LaterStore)
    stored = store.inner.peek_now(key)
    assert stored is not None
    return slab.codec.decode(stored.data)


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


def test_revoking_a_certificate_asks_then_makes_it_a_new_player(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    harness.get("/visit", player="phone")
    prefix = fingerprint_of("phone").hex()[:16]
    no = revoke(harness, "phone", by="ann", answer="no")
    assert "Not revoked: the answer was not yes." in no.body
    page = harness.get("/account", player="ann")
    (at,) = [
        line.split()[1]
        for line in page.lines
        if line.startswith(f"=> /account/revoke/{prefix}/")
    ]
    asked = harness.get(at, player="ann")
    assert (
        10,
        f"Revoke certificate phone ({prefix[:8]}…)? It will be a new, unknown"
        f" player from then on, and this account's recovery codes stop working."
        f" Type yes to revoke",
    ) == (asked.status, asked.meta)
    harness.get(at, player="ann", query="yes")
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
    link(harness, "ann", "phone")
    prefix = fingerprint_of("ann").hex()[:16]
    page = harness.get(f"/account/revoke/{prefix}", player="ann", query="yes")
    assert "That is the certificate you are using" in page.body
    assert "1" == harness.get("/visit", player="ann").body


def test_a_revoke_link_from_elsewhere_revokes_nothing(harness: SessionHarness) -> None:
    """``/account/revoke/<prefix>?yes`` in a link: a 30 to the player's own
    link, which asks; the certificate stays."""
    link(harness, "ann", "phone")
    prefix = fingerprint_of("phone").hex()[:16]
    for path in (f"/account/revoke/{prefix}", f"/account/revoke/{prefix}/forged"):
        page = harness.get(path, player="ann", query="yes")
        assert page.lines[2] == (
            "A link asked to revoke certificate phone. Only links this page makes"
            " for you here can do that, and that one was not (or it is out of"
            " date): nothing was done."
        )
        assert link_at(page, "Revoke phone (you are asked first)").startswith(
            f"/account/revoke/{prefix}/"
        )
    assert accounts.members.peek_now(fingerprint_of("phone")) is not None
    assert (
        "This account has 2 certificates" in harness.get("/account", player="ann").body
    )


def test_linked_certificates_take_turns(harness: SessionHarness) -> None:
    link(harness, "ann", "phone")
    pages: list[Any] = []
    for player in ("ann", "phone"):
        harness.request("/slow", player=player).addCallback(pages.append)
    harness.clock.advance(1)
    harness.clock.advance(1)
    assert ["1", "2"] == [page.body for page in pages]


def test_a_revoked_certificate_cannot_come_back_with_a_code_it_made(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "thief")
    kept = make_code(harness, "thief")
    revoke(harness, "thief", by="ann")
    again = enter(harness, "other", kept)
    assert (11, "No live code like that") == (again.status, again.meta[:22])
    assert "1" == harness.get("/visit", player="thief").body
    assert "2" == harness.get("/visit", player="ann").body


def test_a_code_made_by_a_certificate_that_left_the_account_is_dead(
    harness: SessionHarness,
) -> None:
    link(harness, "ann", "phone")
    code = make_code(harness, "phone")
    revoke(harness, "phone", by="ann")
    assert 11 == enter(harness, "other", code).status


def test_a_revoked_first_certificate_stays_out_when_its_link_record_goes(
    harness: SessionHarness,
) -> None:
    """ann's fingerprint names the account: with no record of the revoke, an
    expired link record would map ann back to it."""
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    harness.get("/visit", player="phone")
    revoke(harness, "ann", by="phone")
    evict_link("ann")
    assert "1" == harness.get("/visit", player="ann").body
    assert "3" == harness.get("/visit", player="phone").body


def test_a_revoke_that_meets_other_writes_keeps_one_fresh_account() -> None:
    """The revoke's edits run again when another write gets there first; the
    fresh account is drawn once, so the revoked certificate has one."""
    harness = SessionHarness(app, stores=later_stores(0.5))
    harness.clock.pump([0.5] * 4)

    def get(path: str, player: str, query: str | None = None) -> Page:
        got: list[Page] = []
        harness.request(path, player=player, query=query).addCallback(got.append)
        harness.clock.pump([0.5] * 60)
        return got[0]

    code = get(link_at(get("/account", "ann"), "Make a link code"), "ann")
    from tests.accounts.support import code_from

    asked = get(
        link_at(get("/account", "phone"), "Enter a code from another certificate"),
        "phone",
        code_from(code),
    )
    get(asked.meta, "phone", "yes")
    page = get("/account", "ann")
    prefix = fingerprint_of("phone").hex()[:16]
    (at,) = [
        line.split()[1] for line in page.lines if f"/account/revoke/{prefix}/" in line
    ]
    revoked: list[Page] = []
    harness.request(at, player="ann", query="yes").addCallback(revoked.append)
    # Meanwhile the phone keeps playing (its "last seen" is written).
    harness.clock.advance(61)
    harness.request("/visit", player="phone")
    harness.clock.pump([0.5] * 80)
    assert "Revoked phone" in revoked[0].body
    member = held(accounts.members, fingerprint_of("phone"))
    fresh = held(accounts.accounts, member.account)
    assert [fingerprint_of("phone")] == fresh.certificates
    assert fresh.fresh


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


def test_the_sweep_forgets_a_revoke_made_account_nobody_reaches(
    harness: SessionHarness,
) -> None:
    """``sweep_misses_revoke_made_accounts.py``: the fresh account a revoke
    gives a certificate is swept, with its records, once its link goes."""
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    revoke(harness, "phone", by="ann")
    for _ in range(3):
        harness.get("/visit", player="phone")
    harness.get("/account", player="phone")
    member = accounts.members.peek_now(fingerprint_of("phone"))
    assert member is not None
    fresh = member.account
    assert Visits(3) == visits.peek_now(fresh)
    evict_link("phone")
    assert "1" == harness.get("/visit", player="phone").body
    harness.clock.advance(SWEEP_EVERY + 1)
    assert (None, None) == (
        visits.peek_now(fresh),
        accounts.accounts.peek_now(fresh),
    )
    assert Visits(1) == visits.peek_now(fingerprint_of("ann"))


def test_the_sweep_keeps_every_account_a_certificate_reaches(
    harness: SessionHarness,
) -> None:
    harness.get("/visit", player="ann")
    link(harness, "ann", "phone")
    harness.get("/account", player="solo")
    harness.get("/visit", player="solo")
    harness.get("/visit", player="nobody-linked")
    link(harness, "ben", "tablet")
    revoke(harness, "ben", by="tablet")  # ben plays a fresh account, by its revoke
    harness.get("/visit", player="ben")
    evict_link("ben")
    revoke(harness, "phone", by="ann")
    harness.clock.advance(SWEEP_EVERY)
    assert [Visits(1), Visits(1), Visits(1), Visits(1)] == [
        visits.peek_now(key)
        for key in (
            fingerprint_of("ann"),
            fingerprint_of("solo"),
            fingerprint_of("nobody-linked"),
            accounts.revoked.peek_now(fingerprint_of("ben")).account,  # type: ignore[union-attr]
        )
    ]
    assert "2" == harness.get("/visit", player="ben").body
