"""Accounts keep what they promise under churn and floods: strangers make no
records, links and account lists are never evicted, every record fits at its
largest, and a link that cannot be made changes nothing and leaves the code
live."""

from __future__ import annotations

import attrs
import pytest
from jetforce.app.base import Request, Response, Status

from jetforce_sesh import SessionApplication, SlabOptions, use_accounts
from jetforce_sesh.accounts import AccountOptions, Accounts
from jetforce_sesh.accounts.records import (
    encoded_size,
    largest_account,
    largest_link_code,
    largest_member,
    largest_pending,
    largest_tally,
)
from jetforce_sesh.testing import SessionHarness, fingerprint_of
from tests.accounts.support import (
    accounts,
    app,
    code_from,
    enter,
    link,
    link_at,
    make_code,
    revoke,
    visits,
)


def test_strangers_cannot_push_out_a_linked_certificate_or_its_account() -> None:
    """``account_list_evicted_link_unrevokable.py``: 40 strangers open their
    account pages while a linked tablet plays, in slabs of 30; the tablet stays
    listed on the owner's page and revocable, and after the revoke the two
    count apart."""
    harness = SessionHarness(app, defaults=SlabOptions(max_records=30))
    harness.get("/visit", player="owner")
    link(harness, "owner", "tablet")
    for n in range(40):
        harness.get("/account", player=f"other{n}")
        harness.clock.advance(61)
        harness.get("/visit", player="tablet")
    owner = int(harness.get("/visit", player="owner").body)
    tablet = int(harness.get("/visit", player="tablet").body)
    assert owner + 1 == tablet  # one record
    page = harness.get("/account", player="owner")
    assert "## tablet" in page.lines
    assert "Revoked tablet" in revoke(harness, "tablet", by="owner").body
    assert (1, owner + 2) == (
        int(harness.get("/visit", player="tablet").body),
        int(harness.get("/visit", player="owner").body),
    )


def test_a_full_capsule_refuses_a_link_and_the_code_still_works() -> None:
    """Links and accounts refuse rather than evict: a link that cannot be
    made says so, changes nothing, and the code stays live."""
    small = SessionApplication("small")

    @attrs.define
    class Count:
        n: int = 0

    small.slab(Count, name="count", record_size=16)

    @small.session_route("/count", record=Count)
    def count(request: Request, record: Count) -> Response:
        record.n += 1
        return Response(Status.SUCCESS, "text/plain", str(record.n))

    mine = use_accounts(small, Accounts(AccountOptions(max_members=3)))
    harness = SessionHarness(small)
    link(harness, "a", "b")  # links of b and a, account a
    link(harness, "e", "f")  # the link of f: full; account e
    harness.get("/count", player="c")
    code = make_code(harness, "c")
    page = enter(harness, "d", code)
    assert page.body.startswith(
        "# Your account\n\nThe capsule keeps as many accounts and certificate links"
        " as it may right now: nothing changed, and the code still works."
    )
    assert mine.members.peek_now(fingerprint_of("d")) is None
    assert mine.accounts.peek_now(fingerprint_of("c")) is None
    assert "2" == harness.get("/count", player="c").body
    # Room again (an admin drops a link): the same code links.
    assert mine.members.store.delete_now(fingerprint_of("f"))  # type: ignore[attr-defined]
    assert "Linked." in enter(harness, "d", code).body
    assert "3" == harness.get("/count", player="d").body


def test_every_account_record_fits_its_slab_at_its_largest() -> None:
    """Sized from the records at their largest legal content: 32 characters
    of 4 bytes for a name, max_certificates and recovery_codes for an account."""
    options = AccountOptions(max_certificates=12, recovery_codes=10)
    sized = Accounts(options)
    cases = [
        (sized.members, largest_member()),
        (sized.accounts, largest_account(options)),
        (sized.codes, largest_link_code()),
        (sized.limits_slab, largest_tally(options)),
        (sized.pending, largest_pending()),
    ]
    for slab, record in cases:
        assert encoded_size(record) <= slab.resolve().record_size, slab.name


@pytest.mark.parametrize(
    "name",
    ["x" * 40, "漢字" * 11, "\U0001f600" * 40, "a\nb\x1b[31m" * 8],
)
def test_a_long_common_name_links_and_shows(name: str) -> None:
    harness = SessionHarness(app)
    harness.get("/visit", player="ann")
    code = make_code(harness, "ann")
    # make_environ names the certificate by the player: REMOTE_USER = player.
    linked = enter(harness, name, code)
    assert "Linked." in linked.body
    page = harness.get("/account", player="ann")
    assert 20 == page.status
    assert "This account has 2 certificates" in page.body


def test_an_account_of_eight_certificates_still_makes_codes() -> None:
    harness = SessionHarness(app)
    for n in range(7):
        link(harness, "ann", f"device{n}")
    page = harness.get("/account", player="ann")
    assert "This account has 8 certificates" in page.body
    code = code_from(harness.get(link_at(page, "Make a link code"), player="ann"))
    full = enter(harness, "ninth", code)
    assert "That account has 8 certificates already: revoke one of them first." in (
        full.body
    )
    assert accounts.members.peek_now(fingerprint_of("ninth")) is None
    assert 1 == int(harness.get("/visit", player="ninth").body)
    assert visits.peek_now(fingerprint_of("ann")) is None
