"""Number guessing: hints, scores, every kind of bad input, and two players apart."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import SlabOptions
from jetforce_sesh.demo import app as demo
from jetforce_sesh.games import guess
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.accounts.support import link
from tests.confirming import asked_at
from tests.games.playing import follow, link_to, masked, tokened, visit
from tests.strategies import player_input

SMALL = SlabOptions(max_records=16)


class Fixed(random.Random):
    """A random source that always picks ``value``, so tests know the secret."""

    def __init__(self, value: int) -> None:
        super().__init__(0)
        self.value = value

    def randint(self, a: int, b: int) -> int:
        return self.value


@contextmanager
def opened() -> Iterator[SessionHarness]:
    """A harness on empty slabs, closed after so no test leaves players behind."""
    try:
        yield SessionHarness(guess.app, defaults=SMALL)
    finally:
        guess.app.close()


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionHarness]:
    monkeypatch.setattr(guess, "rng", Fixed(42))
    with opened() as harness:
        yield harness


def record_of(player: str) -> guess.GuessRecord:
    record = guess.slab.peek_now(fingerprint_of(player))
    assert record is not None
    return record


def prompt_of(harness: SessionHarness, player: str = "alice") -> str:
    """Where the game page asks this player for a guess: a link of their own."""
    url = link_to(harness.get("/guess", player=player), "Guess")
    assert tokened("/guess/try", url), url
    return url


def play(harness: SessionHarness, *numbers: int, player: str = "alice") -> str:
    """Guess each of ``numbers`` in turn, each at the prompt the page before
    linked; the last page's body."""
    page = harness.get("/guess", player=player)
    for number in numbers:
        page = follow(harness, page, "Guess", str(number), player=player)
        assert (page.status, page.meta) == (20, "text/gemini"), page
    return page.body


FRESH = """\
# Number guessing

I am thinking of a whole number from 1 to 100. Can you find it?

=> /guess/try/<token> Guess a number

## Your record

Games won: 0
Best score: none yet

=> / Back to the capsule
"""


def test_first_visit_shows_a_new_game(harness: SessionHarness) -> None:
    page = harness.get("/guess", player="alice")
    assert (page.status, page.meta, masked(page.body)) == (20, "text/gemini", FRESH)


def test_first_visit_stores_nothing(harness: SessionHarness) -> None:
    """A look at the page is not a game yet: no slot is taken for it."""
    harness.get("/guess", player="alice")
    assert guess.slab.peek_now(fingerprint_of("alice")) is None


def test_the_page_links_its_prompt_which_asks_for_a_guess(
    harness: SessionHarness,
) -> None:
    page = harness.get(prompt_of(harness), player="alice")
    assert (page.status, page.meta) == (10, "Guess a number from 1 to 100")


def test_low_guess_says_higher(harness: SessionHarness) -> None:
    lines = play(harness, 30).splitlines()
    assert lines[2:4] == [
        "You guessed 30: the secret is higher.",
        "It is from 31 to 100. Tries so far: 1.",
    ]
    assert "=> /guess/try/<token> Guess again" in masked("\n".join(lines)).split("\n")


def test_high_guess_says_lower(harness: SessionHarness) -> None:
    lines = play(harness, 30, 60).splitlines()
    assert lines[2:4] == [
        "You guessed 60: the secret is lower.",
        "It is from 31 to 59. Tries so far: 2.",
    ]


def test_prompt_offers_the_range_the_hints_left(harness: SessionHarness) -> None:
    play(harness, 30, 60)
    page = harness.get(prompt_of(harness), player="alice")
    assert (page.status, page.meta) == (10, "Guess a number from 31 to 59")


def test_correct_guess_reports_tries_and_counts_the_game(
    harness: SessionHarness,
) -> None:
    body = play(harness, 50, 25, 42)
    assert masked(body) == (
        "# Number guessing\n\n"
        "42 is correct! You found it in 3 tries.\n"
        "That is your best score.\n\n"
        "=> /guess/new/<token> Play again\n\n"
        "## Your record\n\n"
        "Games won: 1\n"
        "Best score: 3 tries\n"
        "Tries per game: 3.0 (a game given up counts as 10)\n\n"
        "=> / Back to the capsule\n"
    )


def test_first_try_win_says_one_try(harness: SessionHarness) -> None:
    lines = play(harness, 42).splitlines()
    assert lines[2] == "42 is correct! You found it in 1 try."
    assert "Best score: 1 try" in lines


def test_best_score_keeps_the_fewest_tries(harness: SessionHarness) -> None:
    play(harness, 50, 42)
    follow(harness, harness.get("/guess", player="alice"), "Play again", player="alice")
    lines = play(harness, 10, 20, 30, 42).splitlines()
    assert "That is your best score." not in lines
    assert lines[-5:-2] == [
        "Games won: 2",
        "Best score: 2 tries",
        "Tries per game: 3.0 (a game given up counts as 10)",
    ]


def test_page_shows_the_game_in_progress(harness: SessionHarness) -> None:
    """Reloading /guess repeats the last hint and counts nothing."""
    after_guess = play(harness, 30)
    assert harness.get("/guess", player="alice").body == after_guess
    assert record_of("alice").tries == 1


@pytest.mark.parametrize(
    ("answer", "meta"),
    [
        ("abc", "'abc' is not a whole number: guess a number from 1 to 100"),
        ("4.5", "'4.5' is not a whole number: guess a number from 1 to 100"),
        ("1e2", "'1e2' is not a whole number: guess a number from 1 to 100"),
        ("٣", "'٣' is not a whole number: guess a number from 1 to 100"),
        ("1_0", "'1_0' is not a whole number: guess a number from 1 to 100"),
        ("0", "'0' is not from 1 to 100: guess a number from 1 to 100"),
        ("-7", "'-7' is not from 1 to 100: guess a number from 1 to 100"),
        ("101", "'101' is not from 1 to 100: guess a number from 1 to 100"),
        (
            "9" * 5000,
            "'999999999999999999999999…' is not from 1 to 100:"
            " guess a number from 1 to 100",
        ),
        (
            "4\r\n2",
            "'4\\r\\n2' is not a whole number: guess a number from 1 to 100",
        ),
        ("   ", "Guess a number from 1 to 100"),
    ],
)
def test_unusable_answers_reprompt_with_the_reason(
    harness: SessionHarness, answer: str, meta: str
) -> None:
    page = harness.get(prompt_of(harness), player="alice", query=answer)
    assert (page.status, page.meta, page.body) == (10, meta, "")
    assert guess.slab.peek_now(fingerprint_of("alice")) is None


@pytest.mark.parametrize("answer", [" 42 ", "+42", "042"])
def test_numbers_are_read_leniently(harness: SessionHarness, answer: str) -> None:
    page = harness.get(prompt_of(harness), player="alice", query=answer)
    assert page.lines[2] == "42 is correct! You found it in 1 try."


def test_guess_the_hints_ruled_out_is_refused_and_not_counted(
    harness: SessionHarness,
) -> None:
    play(harness, 30, 60)
    at = prompt_of(harness)
    low = harness.get(at, player="alice", query="30")
    high = harness.get(at, player="alice", query="60")
    assert (low.status, low.meta) == (
        10,
        "The secret is higher than 30: guess a number from 31 to 59",
    )
    assert (high.status, high.meta) == (
        10,
        "The secret is lower than 60: guess a number from 31 to 59",
    )
    assert record_of("alice").tries == 2


def test_guess_after_winning_says_the_game_is_over(harness: SessionHarness) -> None:
    """The winning prompt answered again (a reload, the Back key)."""
    at = prompt_of(harness)
    assert 20 == harness.get(at, player="alice", query="42").status
    page = harness.get(at, player="alice", query="17")
    assert page.status == 20
    assert page.lines[2:5] == [
        "This game is over: start a new one to guess again.",
        "42 is correct! You found it in 1 try.",
        "That is your best score.",
    ]
    assert (record_of("alice").tries, record_of("alice").played) == (1, 1)


def test_new_game_resets_the_game_and_keeps_the_record(
    harness: SessionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    won = play(harness, 42)
    monkeypatch.setattr(guess, "rng", Fixed(7))
    page = visit(harness, link_to(Page(20, "", won), "Play again"), player="alice")
    assert masked(page.body) == FRESH.replace("Games won: 0", "Games won: 1").replace(
        "Best score: none yet",
        "Best score: 1 try\nTries per game: 1.0 (a game given up counts as 10)",
    )
    assert record_of("alice") == guess.GuessRecord(
        secret=7, low=1, high=100, last=0, tries=0, played=1, best=1, total=1
    )


def test_giving_up_a_game_in_progress_asks_first_then_counts_ten_tries(
    harness: SessionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    play(harness, 10, 20)
    assert "=> /guess/giveup/<token> Give up and start again (counts as 10 tries)" in (
        masked(harness.get("/guess", player="alice").body).splitlines()
    )
    at = asked_at(harness, "/guess/giveup", player="alice")
    prompt = harness.get(at, player="alice")
    assert (10, "Give up this game? It counts as 10 tries. Type yes to give up") == (
        prompt.status,
        prompt.meta,
    )
    kept = harness.get(at, player="alice", query="no")
    assert "Not given up: the answer was not yes." in kept.lines
    assert 2 == record_of("alice").tries
    monkeypatch.setattr(guess, "rng", Fixed(7))
    page = harness.get(at, player="alice", query="yes")
    assert page.lines[2:4] == [
        "You gave up: the secret was 42.",
        "I am thinking of a whole number from 1 to 100. Can you find it?",
    ]
    assert page.lines[-6:-2] == [
        "Games won: 0",
        "Best score: none yet",
        "Games given up: 1",
        "Tries per game: 10.0 (a game given up counts as 10)",
    ]
    assert (0, 0, 1) == (
        record_of("alice").played,
        record_of("alice").best,
        record_of("alice").forfeits,
    )


def test_a_give_up_sent_again_later_gives_up_nothing(harness: SessionHarness) -> None:
    """A client's Back key fetches the confirmed give-up again: the game
    started since has moved on, so it is asked again, not given up."""
    play(harness, 10)
    at = asked_at(harness, "/guess/giveup", player="alice")
    harness.get(at, player="alice", query="yes")
    play(harness, 30)
    page = harness.get(at, player="alice", query="yes")
    assert (30, True) == (page.status, page.meta != at)
    assert (1, 1) == (record_of("alice").forfeits, record_of("alice").tries)


@settings(max_examples=60, deadline=None)
@given(answer=player_input)
def test_no_give_up_link_from_elsewhere_gives_anything_up(answer: str) -> None:
    """The give-up with the answer in the URL, the old numbered links, and
    another player's own link: none gives up the game."""
    before, guess.rng = guess.rng, Fixed(42)
    try:
        with opened() as harness:
            play(harness, 10, player="alice")
            play(harness, 10, player="mallory")
            theirs = asked_at(harness, "/guess/giveup", player="mallory")
            for path in ("/guess/giveup", "/guess/giveup/0", "/guess/giveup/", theirs):
                page = harness.get(path, player="alice", query=answer)
                assert 30 == page.status, (path, page)
            assert (0, 1) == (record_of("alice").forfeits, record_of("alice").tries)
    finally:
        guess.rng = before


def test_a_new_game_while_one_is_going_only_says_so(harness: SessionHarness) -> None:
    play(harness, 10)
    page = harness.get("/guess/new", player="alice")
    assert "This game is still going: finish it, or give it up." == page.lines[2]
    assert 1 == record_of("alice").tries


def test_a_new_game_starts_only_at_the_link_the_page_gave(
    harness: SessionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a win, "play again" from a link of elsewhere (or mallory's own)
    starts nothing; the page's own link starts a game, once."""
    won = Page(20, "", play(harness, 42))
    play(harness, 42, player="mallory")
    theirs = link_to(harness.get("/guess", player="mallory"), "Play again")
    monkeypatch.setattr(guess, "rng", Fixed(7))
    for path in ("/guess/new", "/guess/new/", "/guess/new/aaaaaaaaaaaaaaaa", theirs):
        page = harness.get(path, player="alice")
        assert (20, guess.NOT_YOURS) == (page.status, page.lines[2]), path
        assert 42 == record_of("alice").secret
    again = link_to(won, "Play again")
    assert tokened("/guess/new", again)
    page = visit(harness, again, player="alice")
    assert page.lines[2] == (
        "I am thinking of a whole number from 1 to 100. Can you find it?"
    )
    assert (7, 0) == (record_of("alice").secret, record_of("alice").tries)
    # The same link again (the Back key): the game it was for is over.
    play(harness, 50)
    page = visit(harness, again, player="alice")
    assert "This game is still going: finish it, or give it up." == page.lines[2]
    assert 1 == record_of("alice").tries


@settings(max_examples=60, deadline=None)
@given(answer=player_input)
def test_no_guess_in_a_link_from_elsewhere_is_counted(answer: str) -> None:
    """The guess in the URL, as any page anywhere can write it: at the bare
    prompt, at a made-up or another player's token, at the game's page. None
    counts; at the prompt ones the page says so, with the player's own links."""
    before, guess.rng = guess.rng, Fixed(42)
    try:
        with opened() as harness:
            play(harness, 10, player="alice")
            play(harness, 10, player="mallory")
            theirs = prompt_of(harness, "mallory")
            for path in (
                "/guess/try",
                "/guess/try/",
                "/guess/try/aaaaaaaaaaaaaaaa",
                theirs,
            ):
                page = harness.get(path, player="alice", query=answer)
                assert (20, guess.NOT_YOURS) == (page.status, page.lines[2]), path
                assert link_to(page, "Guess again") == prompt_of(harness)
            assert 20 == harness.get("/guess", player="alice", query=answer).status
            assert (1, 10) == (record_of("alice").tries, record_of("alice").last)
    finally:
        guess.rng = before


def test_a_prompt_the_game_moved_on_from_asks_again(
    harness: SessionHarness,
) -> None:
    """A guess typed at a prompt shown before the last guess (on another
    device, or after the Back key) is not counted: the page says so, as the
    game stands, and its link asks for the range as it is now."""
    old = prompt_of(harness)
    play(harness, 30)
    page = harness.get(old, player="alice", query="60")
    assert 20 == page.status
    assert masked(page.body) == "\n".join(
        [
            "# Number guessing",
            "",
            guess.NOT_YOURS,
            "You guessed 30: the secret is higher.",
            "It is from 31 to 100. Tries so far: 1.",
            "",
            "=> /guess/try/<token> Guess again",
            "=> /guess/giveup/<token> Give up and start again (counts as 10 tries)",
            "",
            "## Your record",
            "",
            "Games won: 0",
            "Best score: none yet",
            "",
            "=> / Back to the capsule",
            "",
        ]
    )
    again = visit(harness, link_to(page, "Guess again"), player="alice")
    assert (10, "Guess a number from 31 to 100") == (again.status, again.meta)
    assert (1, 30) == (record_of("alice").tries, record_of("alice").last)


def test_two_players_interleaved_keep_their_own_games(
    harness: SessionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    play(harness, 50, player="alice")  # alice's secret is 42
    monkeypatch.setattr(guess, "rng", Fixed(77))
    play(harness, 50, player="bob")
    play(harness, 25, player="alice")
    bob = play(harness, 80, player="bob")
    alice = play(harness, 42, player="alice")
    assert bob.splitlines()[2:4] == [
        "You guessed 80: the secret is lower.",
        "It is from 51 to 79. Tries so far: 2.",
    ]
    assert alice.splitlines()[2] == "42 is correct! You found it in 3 tries."
    assert record_of("bob") == guess.GuessRecord(
        secret=77, low=51, high=79, last=80, tries=2, played=0, best=0, total=0
    )
    assert harness.get("/guess", player="bob").body == bob


def test_record_fits_its_slot_at_its_largest() -> None:
    """Every number at its largest realistic value still fits record_size."""
    biggest = guess.GuessRecord(
        secret=100,
        low=100,
        high=100,
        last=100,
        tries=100,
        played=10**9,
        best=100,
        total=10**11,
        forfeits=10**9,
    )
    with opened():
        assert 81 == len(guess.slab.codec.encode(biggest))
        assert 128 == guess.slab.codec.record_size


@settings(max_examples=150, deadline=None)
@given(
    before=st.lists(st.integers(min_value=1, max_value=100), max_size=4),
    answer=player_input,
)
def test_any_answer_gets_a_prompt_or_a_page(before: list[int], answer: str) -> None:
    """Whatever a player types: a 10 with a one-line reason, or a game page;
    a try is counted only for a number the hints have not ruled out."""
    with opened() as harness:
        at = prompt_of(harness)
        for number in before:
            page = harness.get(at, player="alice", query=str(number))
            if "=> /guess/try/" in page.body:
                at = link_to(page, "Guess")  # else won: the last prompt stays
        old = guess.slab.peek_now(fingerprint_of("alice")) or guess.GuessRecord(tries=0)
        page = harness.get(at, player="alice", query=answer)
        new = guess.slab.peek_now(fingerprint_of("alice")) or guess.GuessRecord(tries=0)
    assert page.status in (10, 20)
    assert "\r" not in page.meta and "\n" not in page.meta
    assert len(page.meta.encode()) < 1024
    counted = new.tries - old.tries
    if page.status == 10:
        assert counted == 0
    else:
        assert page.lines[0] == "# Number guessing"
        assert page.lines[-1] == "=> / Back to the capsule"
        assert counted == (0 if old.won else 1)
        if counted:
            assert old.low <= int(answer.strip()) <= old.high


def test_two_devices_of_one_account_each_play_at_their_own_prompts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A phone and a laptop linked into one account share the game, not the
    links: the phone's prompt opened on the laptop, and the laptop's prompt
    after the phone has guessed, each count nothing: the page says so, and
    links the laptop's own prompt."""
    monkeypatch.setattr(guess, "rng", Fixed(42))
    harness = SessionHarness(demo)
    try:
        assert "Linked." in link(harness, "phone", "laptop").body
        laptop = prompt_of(harness, "laptop")
        phone = prompt_of(harness, "phone")
        page = harness.get(phone, player="laptop", query="30")
        assert (20, guess.NOT_YOURS) == (page.status, page.lines[2])
        assert laptop == link_to(page, "Guess")
        assert 20 == harness.get(phone, player="phone", query="30").status
        page = harness.get(laptop, player="laptop", query="60")
        assert (20, guess.NOT_YOURS) == (page.status, page.lines[2])
        fresh = link_to(page, "Guess again")
        assert fresh == prompt_of(harness, "laptop")
        asked = harness.get(fresh, player="laptop")
        assert (10, "Guess a number from 31 to 100") == (asked.status, asked.meta)
        assert 20 == harness.get(fresh, player="laptop", query="60").status
        record = guess.slab.peek_now(fingerprint_of("phone"))
        assert record is not None and (2, 60) == (record.tries, record.last)
    finally:
        demo.close()
