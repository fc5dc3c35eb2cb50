"""The pet: levels that grow with the slab's clock, illness, recovery, and its pages.

Time is a Clock: every test says exactly how far it moves, and none sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings

from jetforce_sesh.games.pet import (
    NAME_MAX,
    NOT_YOURS,
    RECOVERY,
    Pet,
    ago,
    app,
    catch_up,
    census,
    hatch,
    settle,
    slab,
)
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of, later_stores
from tests.games.playing import follow, link_to, masked, tokened, visit
from tests.games.test_tictactoe import assert_tidy, opened
from tests.strategies import player_input

MINUTE = 60.0
HOUR = 3600.0
# A new pet's hunger (30, +25 an hour) reaches 100 first: after 2.8 hours.
ILL_AFTER = 2.8 * HOUR


@pytest.fixture
def harness() -> Iterator[SessionHarness]:
    with opened(app) as opened_harness:
        yield opened_harness


def levels(page: Page) -> tuple[int, int]:
    """(hunger, boredom) as the page's bars show them."""
    bars = [line for line in page.lines if line.startswith(("Hunger", "Boredom"))]
    hunger, boredom = (int(line.split()[-1]) for line in bars)
    return hunger, boredom


def _status_paragraph(page: Page) -> list[str]:
    """The paragraph just before the picture: how the pet is, then any advice."""
    lines = page.lines
    end = next(i for i, line in enumerate(lines) if line.startswith("```")) - 1
    start = max(i for i in range(end) if lines[i] == "") + 1
    return lines[start:end]


def summary(page: Page) -> str:
    return _status_paragraph(page)[0]


def advice(page: Page) -> list[str]:
    return _status_paragraph(page)[1:]


def neglect_until_ill(harness: SessionHarness, player: str = "player") -> Page:
    harness.get("/pet", player=player)
    harness.clock.advance(6 * HOUR)
    return harness.get("/pet", player=player)


def do(harness: SessionHarness, label: str, player: str = "player") -> Page:
    """Look at the pet, then follow the page's link ``label`` (Feed, Play)."""
    return follow(harness, harness.get("/pet", player=player), label, player=player)


def name(harness: SessionHarness, answer: str, player: str = "player") -> Page:
    """Answer ``answer`` at the prompt the page's naming link leads to."""
    page = harness.get("/pet", player=player)
    url = link_to(page, "Rename" if pet_of(player).name else "Name your pet")
    assert tokened("/pet/name", url), url
    return visit(harness, url, player=player, query=answer)


def pet_of(player: str = "player") -> Pet:
    found = slab.peek_now(fingerprint_of(player))
    assert found is not None
    return found


def nurse(harness: SessionHarness, player: str = "player") -> Page:
    """From 100/100: three meals and three games leave it at hunger 30, boredom 0."""
    for _ in range(3):
        do(harness, "Feed", player)
    for _ in range(3):
        page = do(harness, "Play", player)
    return page


# -- the first visit -------------------------------------------------------------


def test_first_visit_hatches_a_content_pet(harness: SessionHarness) -> None:
    page = harness.get("/pet")
    assert masked(page.body) == "\n".join(
        [
            "# Pet",
            "",
            "An egg hatched! This little one is yours to look after.",
            "",
            "Your pet is content.",
            "",
            "```Your pet, content",
            "  (o_o)",
            "",
            "Hunger  [###.......]  30",
            "Boredom [###.......]  30",
            "```",
            "",
            "=> /pet/feed/<token> Feed",
            "=> /pet/play/<token> Play",
            "=> /pet Look again",
            "=> /pet/name/<token> Name your pet",
            "",
            "## Its life so far",
            "",
            "Hatched just now. Meals: 0. Games: 0. Times ill: 0.",
            "",
            # The census has not run since, but this new pet counts already.
            "Capsule census, taken once a minute: 1 pet, 0 of them ill.",
            "",
            "=> / Back to the capsule",
            "",
        ]
    )


# -- time -----------------------------------------------------------------------


def test_hunger_and_boredom_grow_with_the_clock(harness: SessionHarness) -> None:
    harness.get("/pet")
    harness.clock.advance(HOUR)
    page = harness.get("/pet")
    assert levels(page) == (55, 50)
    assert summary(page) == "Your pet is hungry and bored."
    assert "Hatched 60 minutes ago. Meals: 0. Games: 0. Times ill: 0." in page.lines


def test_falls_ill_the_moment_hunger_is_full_not_a_second_before(
    harness: SessionHarness,
) -> None:
    harness.get("/pet")
    harness.clock.advance(ILL_AFTER - 1)
    page = harness.get("/pet")
    assert summary(page) == "Your pet is starving and very bored."
    assert "It will fall ill if it is left like this much longer." in page.lines
    harness.clock.advance(1)
    page = harness.get("/pet")
    assert summary(page) == "Your pet is ill."
    assert "  (x_x)" in page.lines
    assert "Hatched 2 hours ago. Meals: 0. Games: 0. Times ill: 1." in page.lines


def _live(visit_every: float | None) -> Pet:
    """Ten hours of a pet's life, nursed once at 3 h, looked at every so often."""

    def look_until(pet: Pet, start: float, end: float) -> None:
        now = start
        while visit_every is not None and now + visit_every < end:
            now += visit_every
            catch_up(pet, now)
        catch_up(pet, end)

    pet = Pet()
    hatch(pet, 0.0)
    look_until(pet, 0.0, 3 * HOUR)
    pet.hunger = pet.boredom = 10.0
    settle(pet, 3 * HOUR)
    look_until(pet, 3 * HOUR, 10 * HOUR)
    return pet


@pytest.mark.parametrize("visit_every", [MINUTE, 7 * MINUTE, 1000.0, 2 * HOUR])
def test_how_often_a_player_looks_does_not_change_the_pets_fate(
    visit_every: float,
) -> None:
    """Catching up is exact: one look at the end, or one every few minutes, gives
    the same life. Ill at 2.8 h; nursed at 3 h and well at 3.5 h; ill at 6.6 h."""
    alone, watched = _live(None), _live(visit_every)
    assert (alone.hunger, alone.boredom, alone.ill, alone.illnesses) == (
        100.0,
        100.0,
        True,
        2,
    )
    assert (watched.hunger, watched.boredom) == pytest.approx((100.0, 100.0))
    assert (watched.ill, watched.illnesses, watched.content_since) == (True, 2, None)


def test_an_ill_pet_upset_before_the_recovery_time_stays_ill() -> None:
    """Content from 0 s, but hungry (50) at 12 minutes: not well at 40 minutes."""
    pet = Pet(updated=0.0, hunger=45.0, boredom=0.0, ill=True, content_since=0.0)
    catch_up(pet, 40 * MINUTE)
    assert (pet.ill, pet.content_since, pet.illnesses) == (True, None, 0)


def test_catch_up_never_runs_backwards() -> None:
    """A clock stepped back (NTP) leaves the levels, and the time they were
    brought up to date, where they were: no interval is counted twice."""
    pet = Pet()
    hatch(pet, 1000.0)
    catch_up(pet, 400.0)
    assert (pet.hunger, pet.boredom, pet.ill, pet.updated) == (
        30.0,
        30.0,
        False,
        1000.0,
    )
    catch_up(pet, 1000.0)
    assert (pet.hunger, pet.boredom) == (30.0, 30.0)


# -- feeding and playing ------------------------------------------------------------


def test_feeding_lowers_hunger_and_is_counted(harness: SessionHarness) -> None:
    page = do(harness, "Feed")
    assert page.lines[2] == "Munch munch."
    assert levels(page) == (0, 30)
    assert "Hatched just now. Meals: 1. Games: 0. Times ill: 0." in page.lines


def test_a_pet_that_is_not_hungry_refuses_food(harness: SessionHarness) -> None:
    fed = do(harness, "Feed")
    page = follow(harness, fed, "Feed")
    assert page.lines[2] == "It is not hungry: it sniffs the food and walks off."
    assert "Hatched just now. Meals: 1. Games: 0. Times ill: 0." in page.lines


def test_playing_lowers_boredom_and_works_up_an_appetite(
    harness: SessionHarness,
) -> None:
    page = do(harness, "Play")
    assert page.lines[2] == "You play chase."
    assert levels(page) == (40, 0)
    page = follow(harness, page, "Play")
    assert page.lines[2] == "It is tired of playing: let it rest a while."
    assert levels(page) == (40, 0)


def test_fed_and_played_with_it_is_happy(harness: SessionHarness) -> None:
    page = follow(harness, do(harness, "Feed"), "Play")
    assert levels(page) == (10, 0)
    assert summary(page) == "Your pet is happy."
    assert "  (^_^)" in page.lines


# -- illness and recovery -------------------------------------------------------


def test_an_ill_pet_recovers_after_staying_content_for_the_recovery_time(
    harness: SessionHarness,
) -> None:
    neglect_until_ill(harness)
    page = nurse(harness)
    assert levels(page) == (30, 0)
    assert summary(page) == "Your pet is ill."
    assert advice(page) == [
        "It is comfortable now: keep it so and it should be well in 30 minutes."
    ]
    harness.clock.advance(RECOVERY - 1)
    page = harness.get("/pet")
    assert summary(page) == "Your pet is ill."
    assert advice(page) == [
        "It is comfortable now: keep it so and it should be well in 1 minute."
    ]
    harness.clock.advance(1)
    page = harness.get("/pet")
    assert summary(page) == "Your pet is content."
    assert "Hatched 6 hours ago. Meals: 3. Games: 3. Times ill: 1." in page.lines


def test_recovery_counts_even_when_nobody_looks(harness: SessionHarness) -> None:
    """Well at 30 minutes, hungry at 48: a look at 40 minutes finds it well."""
    neglect_until_ill(harness)
    nurse(harness)
    harness.clock.advance(40 * MINUTE)
    assert summary(harness.get("/pet")) == "Your pet is content."


def test_an_ill_pet_that_is_not_content_is_told_how_to_recover(
    harness: SessionHarness,
) -> None:
    page = neglect_until_ill(harness)
    assert (summary(page), levels(page)) == ("Your pet is ill.", (100, 100))
    assert advice(page) == [
        "It gets better once it has been neither hungry nor bored for 30 minutes."
        " Feed it and play with it."
    ]
    harness.clock.advance(HOUR)
    assert summary(harness.get("/pet")) == "Your pet is ill."


# -- naming: the one prompt --------------------------------------------------------


def test_naming_prompts_then_names(harness: SessionHarness) -> None:
    page = do(harness, "Name your pet")
    assert (page.status, page.meta) == (10, "What will you call your pet?")
    page = name(harness, "  Biscuit ")
    assert page.lines[2] == "Your pet is called Biscuit now."
    page = name(harness, "Rex")
    assert page.lines[2] == "Your pet is called Rex now."
    assert summary(page) == "Rex is content."
    assert "```Rex, content" in page.lines
    assert "=> /pet/name/<token> Rename" in masked(page.body).splitlines()


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (" ", "A name cannot be empty: what will you call your pet?"),
        (
            "x" * (NAME_MAX + 1),
            "That name is 21 characters long; the most is 20: try a shorter name",
        ),
        (
            "Rex\n=> /evil",
            "A name cannot hold control or invisible characters: try another",
        ),
        (
            "zero\u200bwidth",
            "A name cannot hold control or invisible characters: try another",
        ),
        (
            "=> /x",
            "A name cannot start with a gemtext marker (=> # * > ```): try another",
        ),
        (
            "# Big",
            "A name cannot start with a gemtext marker (=> # * > ```): try another",
        ),
    ],
)
def test_a_bad_name_reprompts_saying_why(
    harness: SessionHarness, answer: str, why: str
) -> None:
    page = name(harness, answer)
    assert (page.status, page.meta) == (10, why)
    assert summary(harness.get("/pet")) == "Your pet is content."


@settings(max_examples=200, deadline=None)
@given(answer=player_input)
def test_any_typed_name_gets_a_page_or_a_reprompt(answer: str) -> None:
    with opened(app) as harness:
        page = name(harness, answer)
        if page.status == 20:
            assert page.lines[2] == f"Your pet is called {answer.strip()} now."
            assert_tidy(page)
        else:
            assert page.status == 10
            assert page.meta.isprintable()
            assert len(page.meta.encode()) <= 1024
            assert page.meta.endswith(("your pet?", "try another", "shorter name"))


@settings(max_examples=50, deadline=None)
@given(query=player_input)
def test_no_step_in_a_link_from_elsewhere_does_anything(query: str) -> None:
    """Feeding, playing and naming as any page anywhere can write them: bare,
    with a made-up token, with another player's own links, whatever query.
    The pet is as it was; each shows its page, saying nothing was done, with
    the player's own links."""
    with opened(app) as harness:
        harness.get("/pet")
        harness.clock.advance(3 * HOUR)  # hungry and bored: it would eat and play
        theirs = harness.get("/pet", player="mallory")
        page = harness.get("/pet")
        before = pet_of()
        for label, path in (
            ("Feed", "/pet/feed"),
            ("Play", "/pet/play"),
            ("Name your pet", "/pet/name"),
        ):
            for url in (path, path + "/aaaaaaaaaaaaaaaa", link_to(theirs, label)):
                shown = harness.get(url, query=query)
                assert_tidy(shown)
                assert NOT_YOURS == shown.lines[2], url
                assert link_to(shown, label) == link_to(page, label)
        assert 20 == harness.get("/pet", query=query).status
        assert before == pet_of()


def test_a_page_left_open_still_feeds_but_each_link_works_once(
    harness: SessionHarness,
) -> None:
    """The links are made for what was done to the pet, not for its levels,
    which change by the second: a page left open 15 minutes still feeds; the
    same link again (the Back key, or another device's page) does nothing once
    the pet has eaten, nor after half an hour (the tokens' time), and each
    such page gives links that work."""
    page = harness.get("/pet")
    harness.clock.advance(15 * MINUTE)
    fed = follow(harness, page, "Feed")
    assert ("Munch munch.", 1) == (fed.lines[2], pet_of().meals)
    again = follow(harness, page, "Feed")
    assert (NOT_YOURS, 1) == (again.lines[2], pet_of().meals)
    harness.clock.advance(30 * MINUTE)
    late = follow(harness, again, "Play")
    assert (NOT_YOURS, 0) == (late.lines[2], pet_of().games)
    assert "You play chase." == follow(harness, late, "Play").lines[2]


def test_a_step_for_a_player_with_no_pet_is_sent_to_its_page(
    harness: SessionHarness,
) -> None:
    """Nothing hatches but at a look at the pet's page."""
    for path in ("/pet/feed", "/pet/play", "/pet/name"):
        page = harness.get(path, player="newcomer", query="Rex")
        assert (30, "/pet") == (page.status, page.meta)
    assert slab.peek_now(fingerprint_of("newcomer")) is None


# -- players, the census, the record -------------------------------------------------


def test_two_players_interleaved_keep_their_own_pets(harness: SessionHarness) -> None:
    name(harness, "Ada", player="alice")
    do(harness, "Feed", player="bob")
    harness.clock.advance(HOUR)
    do(harness, "Play", player="alice")
    alice = harness.get("/pet", player="alice")
    bob = harness.get("/pet", player="bob")
    assert (summary(alice), levels(alice)) == ("Ada is hungry.", (65, 15))
    assert (summary(bob), levels(bob)) == ("Your pet is bored.", (25, 50))
    assert "Hatched 60 minutes ago. Meals: 1. Games: 0. Times ill: 0." in bob.lines


def test_the_census_counts_every_pet_once_a_minute(harness: SessionHarness) -> None:
    harness.get("/pet", player="alice")
    harness.get("/pet", player="bob")
    harness.clock.advance(59)
    assert (census.pets, census.ill) == (0, 0)  # counted at start-up, before them
    harness.clock.advance(1)
    assert (census.pets, census.ill) == (2, 0)
    harness.clock.advance(ILL_AFTER)
    assert (census.pets, census.ill) == (2, 2)  # unvisited pets fall ill too
    nurse(harness, player="bob")
    harness.clock.advance(RECOVERY)
    assert (census.pets, census.ill) == (2, 1)
    page = harness.get("/pet", player="alice")
    assert "Capsule census, taken once a minute: 2 pets, 1 of them ill." in page.lines


def test_the_census_changes_no_record(harness: SessionHarness) -> None:
    harness.get("/pet")
    slab = app.slabs[Pet]
    before = [record for _, record in slab.records_now()]
    harness.clock.advance(10 * HOUR)
    assert [record for _, record in slab.records_now()] == before


def test_the_census_stops_once_the_app_is_closed() -> None:
    with opened(app) as harness:
        assert len(harness.clock.getDelayedCalls()) == 1
    harness.clock.advance(60)
    assert harness.clock.getDelayedCalls() == []


def test_the_fullest_record_fits_its_slot(harness: SessionHarness) -> None:
    codec = app.slabs[Pet].codec
    fullest = Pet(
        name="\U0001f431" * NAME_MAX,
        born=1.7e9,
        updated=1.8e9,
        hunger=99.9,
        boredom=99.9,
        ill=True,
        content_since=1.8e9,
        meals=10**15,
        games=10**15,
        illnesses=10**15,
    )
    assert len(codec.encode(fullest)) <= 320


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (59, "just now"),
        (60, "1 minute ago"),
        (119 * 60, "119 minutes ago"),
        (120 * 60, "2 hours ago"),
        (47 * HOUR, "47 hours ago"),
        (48 * HOUR, "2 days ago"),
    ],
)
def test_ago_reads_naturally(seconds: float, words: str) -> None:
    assert ago(seconds) == words


def test_the_census_counts_on_a_store_that_answers_later() -> None:
    """The census reads through the store contract only: it works, a little
    later, on a store in another process."""
    harness = SessionHarness(app, stores=later_stores(0.5))
    try:
        harness.clock.advance(0.5)
        pages: list[Page] = []
        for player in ("alice", "bob"):
            harness.request("/pet", player=player).addCallback(pages.append)
        harness.clock.pump([0.5] * 6)
        assert [20, 20] == [page.status for page in pages]
        harness.clock.advance(59)
        assert (census.pets, census.ill) == (0, 0)
        harness.clock.pump([1, 0.5, 0.5])  # the minute, then the store's answers
        assert (census.pets, census.ill) == (2, 0)
    finally:
        app.close(grace=0)
        harness.clock.pump([0.5] * 4)
