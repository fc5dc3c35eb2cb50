"""The visit counter: one count per certificate, and a reset that asks first."""

from __future__ import annotations

from hypothesis import given, settings

from jetforce_sesh.games import counter
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.strategies import player_input


def footer(visit: int) -> str:
    """The counter page's links, after the player's ``visit``-th visit."""
    return (
        "=> /counter Visit again\n"
        f"=> /counter/reset/{visit} Reset my count\n"
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


def test_reset_asks_then_forgets_only_on_yes() -> None:
    harness = SessionHarness(counter.app)
    harness.get("/counter")
    assert Page(10, "Reset your visit count to zero? Type yes to confirm", "") == (
        harness.get("/counter/reset/1")
    )
    assert Page(
        20,
        "text/gemini",
        "# Visit counter\n\nNot reset: the answer was not yes. You still have 1"
        " visit.\n\n=> /counter Back to the counter\n=> / Back to the capsule\n",
    ) == harness.get("/counter/reset/1", query="nope")
    assert Page(
        20,
        "text/gemini",
        "# Visit counter\n\nYour count is back to zero.\n\n=> /counter Start"
        " counting\n=> / Back to the capsule\n",
    ) == harness.get("/counter/reset/1", query=" YES ")
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
    page = harness.get("/counter/reset/1", query=answer)
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


def test_a_reset_sent_again_later_resets_nothing() -> None:
    """A client's Back key fetches the confirmed reset again: the visits made
    since are kept."""
    harness = SessionHarness(counter.app)
    harness.get("/counter")
    harness.get("/counter/reset/1", query="yes")
    harness.get("/counter")
    harness.get("/counter")
    page = harness.get("/counter/reset/1", query="yes")
    assert (
        Page(
            20,
            "text/gemini",
            "# Visit counter\n\nThat reset link is from an earlier visit: nothing was"
            " reset. You have 2 visits.\n\n=> /counter Back to the counter\n"
            "=> / Back to the capsule\n",
        )
        == page
    )
    assert counter.Visits(2, ever=3) == counter.slab.peek_now(fingerprint_of("player"))
