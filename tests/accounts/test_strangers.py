"""What a stranger's links can do to a player's account: nothing.

In Gemini the answer to a prompt is the query of the URL, so any page anywhere
can link ``/account/link?CODE`` or ``/account/join?yes``. Each test here is one
of ``../shared/repro/edges/`` turned around: the stranger's links, followed by
the victim, link nothing and delete nothing.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh.server.protocol import query_hidden
from jetforce_sesh.session.route import ENVIRON_SECRET
from jetforce_sesh.testing import SessionHarness, fingerprint_of, make_environ
from tests.accounts.support import (
    accounts,
    app,
    enter,
    link_at,
    make_code,
    visits,
)
from tests.strategies import player_input

#: Spellings of one path that Jetforce routes alike.
SPELLINGS = ["/account/link", "/account/link/", "/%61ccount/link", "/account/link//"]


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


def test_two_links_from_elsewhere_neither_join_nor_delete(
    harness: SessionHarness,
) -> None:
    """``account_join_prefilled_yes_deletes_records.py``: link 1 carries the
    attacker's code, link 2 the answer; the victim's count goes on."""
    for _ in range(5):
        harness.get("/visit", player="alice")
    code = make_code(harness, "mallory")
    first = harness.get("/account/link", player="alice", query=code)
    assert first.lines[2].startswith("A link asked to enter a link code.")
    assert (
        11
        == harness.get(  # alice follows the page's link, then leaves
            link_at(first, "Enter a code from another certificate"), player="alice"
        ).status
    )
    second = harness.get("/account/join", player="alice", query="yes")
    assert "Nothing to link: enter a code first." in second.body
    assert "6" == harness.get("/visit", player="alice").body
    assert accounts.members.peek_now(fingerprint_of("alice")) is None
    # The code was never taken: mallory's own other device still links with it.
    assert "Linked." in enter(harness, "mallory-tablet", code).body


def test_one_link_with_a_code_joins_no_fresh_visitor(harness: SessionHarness) -> None:
    """``account_link_without_prompt.py``: a certificate with no records
    follows ``/account/link?CODE``: nothing is linked, and the attacker's page
    shows nobody new."""
    code = make_code(harness, "mallory")
    for spelling in SPELLINGS:
        page = harness.get(spelling, player="alice-phone", query=code)
        assert (20, "A link asked to enter a link code.") == (
            page.status,
            page.lines[2][:34],
        )
    for _ in range(3):
        harness.get("/visit", player="alice-phone")
    page = harness.get("/account", player="mallory")
    assert "alice-phone" not in page.body
    assert "This account has 1 certificate;" in page.body
    assert "1" == harness.get("/visit", player="mallory").body


@settings(max_examples=80, deadline=None)
@given(
    path=st.sampled_from(
        [*SPELLINGS, "/account/join", "/account/code", "/account/recovery"]
    ),
    token=st.one_of(
        st.none(), st.text("abcdefghijklmnopqrstuvwxyz234567", max_size=20)
    ),
    query=st.one_of(player_input, st.just("yes"), st.just("ABCD-2345")),
)
def test_no_account_link_a_stranger_can_write_changes_a_record(
    path: str, token: str | None, query: str
) -> None:
    harness = SessionHarness(app)
    harness.get("/visit", player="alice")
    code = make_code(harness, "mallory")
    enter(harness, "alice", code, confirm=None)  # alice stopped at the question
    before = {slab.name: list(slab.records_now()) for slab in app.slabs.values()}
    url = path if token is None else f"{path.rstrip('/')}/{token}"
    for answer in (query, code, "yes"):
        harness.get(url, player="alice", query=answer)
    after = {slab.name: list(slab.records_now()) for slab in app.slabs.values()}
    if path == "/account/code":
        # A link code for alice, shown to her only; her live ones still live.
        made = [
            r
            for _, r in after["accounts.codes"]
            if r not in dict(before["accounts.codes"]).values()
        ]
        assert all(r.account == fingerprint_of("alice") for r in made)
        assert (
            dict(before["accounts.codes"]).items()
            <= dict(after["accounts.codes"]).items()
        )
        for name in ("accounts.codes", "accounts.limits"):
            before.pop(name), after.pop(name)
    assert before == after


def test_every_spelling_of_the_code_route_is_secret_in_the_log() -> None:
    """The route that answers decides, not the spelling of its path: every
    spelling that reaches /account/link, with a token or none, is marked;
    another route is not."""
    SessionHarness(app)
    marked = {}
    for path in [*SPELLINGS, "/account/link/abcdefghijklmnop", "/visit"]:
        environ = make_environ(path, query="abcd-2345")
        list(app(environ, lambda status, meta: None))
        marked[path] = environ.get(ENVIRON_SECRET, False)
    assert {path: path != "/visit" for path in marked} == marked
    assert "gemini://h:1965/account/link?(hidden)" == query_hidden(
        "gemini://h:1965/account/link?abcd-2345"
    )


def test_strangers_codes_cannot_fill_the_code_table_for_everyone() -> None:
    """``code_table_filled_by_strangers.py``: 1,000 fresh certificates from one
    address each make a code; the address holds 10 of the 1,000 slots at a
    time, so a player still gets one, from anywhere, that address too."""
    harness = SessionHarness(app)
    statuses = [
        harness.get("/account/code", player=f"flood{n}").status for n in range(1000)
    ]
    assert [20] * 1000 == statuses
    assert 10 == accounts.codes.in_use()
    code = make_code(harness, "honest")  # from the same address
    assert "Linked." in enter(harness, "honest-phone", code).body
    assert 0 == visits.in_use()
