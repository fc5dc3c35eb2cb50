"""The visit counter: one count per certificate, and a reset that asks first."""

from __future__ import annotations

from hypothesis import given, settings

from jetforce_sesh.games import counter
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.confirming import asked_at, confirm
from tests.strategies import player_input


def footer(visit: int) -> str:
    """The counter page's links, after the player's ``visit``-th visit."""
    return (
        "=> /counter Visit again\n"
        "=> /counter/reset Reset my count\n"
        "=> / Back to the capsule\n"
    )


def test_first_visit_greets_then_counts() -> None:
    harness = SessionHarness(counter.app)
    assert Page(
        20,
        "text/gemini",
        "# Visit counter\n\nWelcome! This is your first visit. Come back and I will"
        " count.\n\n" + footer(1),
    ) == harness.get("/counter")
    assert Page(
        20, "text/gemini", "# Visit counter\n\nVisit number 2.\n\n" + footer(2)
    ) == harness.get("/counter")


def test_players_count_apart() -> None:
    harness = SessionHarness(counter.app)
    for player in ("ann", "ben", "ann", "ann", "ben"):
        harness.get("/counter", player=player)
    assert counter.Visits(3, ever=3) == counter.slab.peek_now(fingerprint_of("ann"))
    assert counter.Visits(2, ever=2) == counter.slab.peek_now(fingerprint_of("ben"))


def test_reset_asks_at_its_own_link_then_forgets_only_on_yes() -> None:
    harness = SessionHarness(counter.app)
    harness.get("/counter")
    at = asked_at(harness, "/counter/reset")
    assert Page(10, "Reset your visit count to zero? Type yes to confirm", "") == (
        harness.get(at)
    )
    assert Page(
        20,
        "text/gemini",
        "# Visit counter\n\nNot reset: the answer was not yes. You still have 1"
        " visit.\n\n=> /counter Back to the counter\n=> / Back to the capsule\n",
    ) == harness.get(at, query="nope")
    assert Page(
        20,
        "text/gemini",
        "# Visit counter\n\nYour count is back to zero.\n\n=> /counter Start"
        " counting\n=> / Back to the capsule\n",
    ) == harness.get(at, query=" YES ")
    assert counter.Visits(0, ever=1) == counter.slab.peek_now(fingerprint_of("player"))
    assert Page(
        20,
        "text/gemini",
        "# Visit counter\n\nVisit number 1 since you reset your count.\n\n" + footer(2),
    ) == harness.get("/counter")


@settings(max_examples=150, deadline=None)
@given(answer=player_input)
def test_any_answer_to_the_reset_prompt_gets_a_page_or_a_prompt(answer: str) -> None:
    harness = SessionHarness(counter.app)
    harness.get("/counter")
    page = harness.get(asked_at(harness, "/counter/reset"), query=answer)
    if answer:
        assert (20, "text/gemini") == (page.status, page.meta)
    else:
        assert (10, "Reset your visit count to zero? Type yes to confirm") == (
            page.status,
            page.meta,
        )
    expected = 0 if answer.strip().lower() == "yes" else 1
    assert counter.Visits(expected, ever=1) == counter.slab.peek_now(
        fingerprint_of("player")
    )


@settings(max_examples=100, deadline=None)
@given(answer=player_input)
def test_no_reset_link_from_elsewhere_resets_anything(answer: str) -> None:
    """``/counter/reset?yes`` on another capsule, the old numbered links, and
    another player's own link: each answers a 30 to a fresh link of this
    player's, and the count stays."""
    harness = SessionHarness(counter.app)
    for _ in range(3):
        harness.get("/counter", player="alice")
    harness.get("/counter", player="mallory")
    theirs = asked_at(harness, "/counter/reset", player="mallory")
    for path in ("/counter/reset", "/counter/reset/3", "/counter/reset/", theirs):
        page = harness.get(path, player="alice", query=answer)
        assert 30 == page.status, (path, page)
        assert page.meta != theirs
    assert counter.Visits(3, ever=3) == counter.slab.peek_now(fingerprint_of("alice"))


def test_a_reset_sent_again_later_resets_nothing() -> None:
    """A client's Back key fetches the confirmed reset again: the count moved
    on since the link was shown, so it is asked again and the visits made
    since are kept."""
    harness = SessionHarness(counter.app)
    harness.get("/counter")
    at = asked_at(harness, "/counter/reset")
    assert "Your count is back to zero." in harness.get(at, query="yes").body
    harness.get("/counter")
    harness.get("/counter")
    again = harness.get(at, query="yes")
    assert (30, True) == (again.status, again.meta != at)
    assert counter.Visits(2, ever=3) == counter.slab.peek_now(fingerprint_of("player"))
    assert "Your count is back to zero." in confirm(harness, "/counter/reset").body
