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
    code_from,
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
    assert 30 == first.status
    harness.get(first.meta, player="alice")  # the client follows; alice leaves
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
        assert 30 == page.status
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
    """``code_table_filled_by_strangers.py``, done properly: 1,000 fresh
    certificates from one address each follow their own code link; a player
    elsewhere still gets a code, and the flood holds few of the 1,000 slots."""
    harness = SessionHarness(app)
    statuses = []
    for n in range(1000):
        page = harness.get("/account", player=f"flood{n}")
        statuses.append(
            harness.get(link_at(page, "Make a link code"), player=f"flood{n}").status
        )
    assert (20, 980) == (statuses[0], statuses.count(44))
    assert 20 == accounts.codes.in_use()
    environ_address = "192.0.2.77"
    from jetforce_sesh.testing import Page

    page = harness.get("/account", player="honest")
    path = link_at(page, "Make a link code")
    environ = make_environ(path, player="honest")
    environ["REMOTE_ADDR"] = environ_address
    sent: list[tuple[int, str]] = []
    body = "".join(
        chunk
        for chunk in app(environ, lambda s, m: sent.append((s, m)))
        if isinstance(chunk, str)
    )
    assert code_from(Page(sent[0][0], sent[0][1], body))
    assert visits.in_use() == 0
