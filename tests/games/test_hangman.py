"""Hangman: the masked word, lives, wins and losses, bad input, two players apart."""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import SlabOptions
from jetforce_sesh.games import hangman
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.confirming import asked_at, confirm
from tests.games.playing import follow, link_to, masked, tokened, visit
from tests.strategies import player_input

SMALL = SlabOptions(max_records=16)


class Fixed(random.Random):
    """A random source that always picks ``word``, so tests know the word."""

    def __init__(self, word: str) -> None:
        super().__init__(0)
        self.word = word

    def choice(self, seq: Any) -> Any:
        return self.word


@contextmanager
def opened() -> Iterator[SessionHarness]:
    """A harness on empty slabs, closed after so no test leaves players behind."""
    try:
        yield SessionHarness(hangman.app, defaults=SMALL)
    finally:
        hangman.app.close()


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionHarness]:
    monkeypatch.setattr(hangman, "rng", Fixed("banana"))
    with opened() as harness:
        yield harness


def record_of(player: str) -> hangman.HangmanRecord:
    record = hangman.slab.peek_now(fingerprint_of(player))
    assert record is not None
    return record


def prompt_of(harness: SessionHarness, player: str = "alice") -> str:
    """Where the game page asks this player for a letter: a link of their own
    (the first look at the page gives them their word)."""
    url = link_to(harness.get("/hangman", player=player), "Guess a letter")
    assert tokened("/hangman/letter", url), url
    return url


def play(harness: SessionHarness, letters: str, player: str = "alice") -> list[str]:
    """Guess each of ``letters`` in turn, each at the prompt the page before
    linked; the last page's lines."""
    page = harness.get("/hangman", player=player)
    for letter in letters:
        page = follow(harness, page, "Guess a letter", letter, player=player)
        assert (page.status, page.meta) == (20, "text/gemini"), page
    return page.lines


FRESH = """\
# Hangman

```Gallows: 6 of 6 lives left
  +---+
  |   |
      |
      |
      |
      |
=======
```

Word: _ _ _ _ _ _ (6 letters)
Letters tried: none yet
Lives left: 6 of 6

=> /hangman/letter/<token> Guess a letter
=> /hangman/giveup/<token> Give up and start a new game (counts as a loss)

## Your record

Wins: 0
Losses: 0

=> / Back to the capsule
"""


def test_first_visit_shows_the_masked_word(harness: SessionHarness) -> None:
    page = harness.get("/hangman", player="alice")
    assert (page.status, page.meta, masked(page.body)) == (20, "text/gemini", FRESH)


def test_first_visit_keeps_its_word(monkeypatch: pytest.MonkeyPatch) -> None:
    """The word a player first sees is the word they then play, though words
    are drawn at random and the page alone changes nothing else."""
    with opened() as harness:
        first = harness.get("/hangman", player="alice").lines
        word = record_of("alice").word
        for _ in range(5):
            assert harness.get("/hangman", player="alice").lines == first
        assert record_of("alice").word == word


def test_found_letter_shows_in_every_place(harness: SessionHarness) -> None:
    lines = play(harness, "a")
    assert lines[12:17] == [
        "Yes: a is in the word 3 times.",
        "",
        "Word: _ a _ a _ a (6 letters)",
        "Letters tried: a",
        "Lives left: 6 of 6",
    ]


def test_missed_letter_costs_a_life_and_draws(harness: SessionHarness) -> None:
    lines = play(harness, "ze")
    assert lines[2:11] == [
        "```Gallows: 4 of 6 lives left",
        "  +---+",
        "  |   |",
        "  O   |",
        "  |   |",
        "      |",
        "      |",
        "=======",
        "```",
    ]
    assert lines[12:17] == [
        "No e in the word: you lose a life.",
        "",
        "Word: _ _ _ _ _ _ (6 letters)",
        "Letters tried: e, z",
        "Lives left: 4 of 6",
    ]
    assert (
        "=> /hangman/giveup/<token> Give up and start a new game (counts as a loss)"
        in masked("\n".join(lines)).splitlines()
    )


def test_finding_every_letter_wins(harness: SessionHarness) -> None:
    page_lines = play(harness, "xbna")
    assert masked("\n".join(page_lines[2:])) == (
        "```Gallows: 5 of 6 lives left\n"
        "  +---+\n"
        "  |   |\n"
        "  O   |\n"
        "      |\n"
        "      |\n"
        "      |\n"
        "=======\n"
        "```\n\n"
        "You won! The word was banana.\n\n"
        "Word: b a n a n a (6 letters)\n"
        "Letters tried: a, b, n, x\n"
        "Lives left: 5 of 6\n\n"
        "=> /hangman/new/<token> New game\n\n"
        "## Your record\n\n"
        "Wins: 1\n"
        "Losses: 0\n\n"
        "=> / Back to the capsule"
    )


def test_six_misses_lose_and_reveal_the_word(harness: SessionHarness) -> None:
    lines = play(harness, "aqwerty")
    assert lines[2:9] == [
        "```Gallows: 0 of 6 lives left",
        "  +---+",
        "  |   |",
        "  O   |",
        " /|\\  |",
        " / \\  |",
        "      |",
    ]
    assert masked("\n".join(lines)).splitlines()[12:21] == [
        "You lost: the word was banana.",
        "",
        "Word: b a n a n a (6 letters)",
        "Letters tried: a, e, q, r, t, w, y",
        "Lives left: 0 of 6",
        "",
        "=> /hangman/new/<token> New game",
        "",
        "## Your record",
    ]
    assert (record_of("alice").wins, record_of("alice").losses) == (0, 1)


@pytest.mark.parametrize("answer", ["A", " n ", "\tB\t"])
def test_letters_are_read_in_either_case_and_trimmed(
    harness: SessionHarness, answer: str
) -> None:
    page = harness.get(prompt_of(harness), player="alice", query=answer)
    assert page.status == 20
    assert record_of("alice").tried == answer.strip().lower()


def test_prompt_without_an_answer_says_lives_left(harness: SessionHarness) -> None:
    play(harness, "z")
    page = harness.get(prompt_of(harness), player="alice")
    assert (page.status, page.meta) == (
        10,
        "Guess one letter, a to z (5 of 6 lives left)",
    )


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("ab", "'ab' is more than one letter"),
        ("banana", "'banana' is more than one letter"),
        ("ß", "'ß' is not a letter from a to z"),
        ("1", "'1' is not a letter from a to z"),
        ("é", "'é' is not a letter from a to z"),
        ("?", "'?' is not a letter from a to z"),
        ("\x00", "'\\x00' is not a letter from a to z"),
        ("\x1b[31m", "'\\x1b[31m' is more than one letter"),
        ("=> /x", "'=> /x' is more than one letter"),
        ("x" * 3000, f"'{'x' * 24}…' is more than one letter"),
    ],
)
def test_unusable_answers_reprompt_with_the_reason(
    harness: SessionHarness, answer: str, reason: str
) -> None:
    page = harness.get(prompt_of(harness), player="alice", query=answer)
    assert (page.status, page.meta, page.body) == (
        10,
        f"{reason}: guess one letter, a to z (6 of 6 lives left)",
        "",
    )
    assert record_of("alice").tried == ""


def test_letter_tried_twice_reprompts_and_costs_nothing(
    harness: SessionHarness,
) -> None:
    play(harness, "zan")
    at = prompt_of(harness)
    for answer in ("z", "A"):
        page = harness.get(at, player="alice", query=answer)
        assert (page.status, page.meta) == (
            10,
            f"You already tried {answer.lower()} (tried so far: a, n, z):"
            " guess one letter, a to z (5 of 6 lives left)",
        )
    assert record_of("alice").tried == "zan"


def test_letter_after_the_end_says_the_game_is_over(harness: SessionHarness) -> None:
    """The winning prompt answered again (a reload, the Back key)."""
    play(harness, "ba")
    at = prompt_of(harness)
    assert 20 == harness.get(at, player="alice", query="n").status
    page = harness.get(at, player="alice", query="q")
    assert page.status == 20
    assert page.lines[12:15] == [
        "You won! The word was banana.",
        "This game is over: start a new one to play again.",
        "",
    ]
    assert (record_of("alice").tried, record_of("alice").wins) == ("ban", 1)


def test_giving_up_counts_a_loss_and_reveals_the_word(
    harness: SessionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    play(harness, "ae")
    monkeypatch.setattr(hangman, "rng", Fixed("kite"))
    at = asked_at(harness, "/hangman/giveup", player="alice")
    prompt = harness.get(at, player="alice")
    assert (10, "Give up this game? It counts as a loss. Type yes to give up") == (
        prompt.status,
        prompt.meta,
    )
    kept = harness.get(at, player="alice", query="no").lines
    assert "Not given up: the answer was not yes." in kept
    assert 0 == record_of("alice").losses
    again = harness.get("/hangman/new", player="alice").lines
    assert "This game is still going: finish it, or give it up." in again
    lines = harness.get(at, player="alice", query="yes").lines
    assert lines[12:15] == [
        "You gave up: the word was banana.",
        "",
        "Word: _ _ _ _ (4 letters)",
    ]
    assert record_of("alice") == hangman.HangmanRecord(
        word="kite", tried="", wins=0, losses=1
    )
    play(harness, "k")
    stale = harness.get(at, player="alice", query="yes")
    assert (30, True) == (stale.status, stale.meta != at)
    assert 1 == record_of("alice").losses


def test_a_shown_word_is_not_swapped_for_free(harness: SessionHarness) -> None:
    """The word's length shows at once and the list ships with the package:
    a new word without a loss would let a player reroll until an easy one."""
    first = harness.get("/hangman", player="alice")
    assert "Word: _ _ _ _ _ _ (6 letters)" in first.lines
    assert (
        "=> /hangman/giveup/<token> Give up and start a new game (counts as a loss)"
        in masked(first.body).splitlines()
    )
    for _ in range(3):
        again = harness.get("/hangman/new", player="alice")
        assert "This game is still going: finish it, or give it up." == again.lines[12]
    assert record_of("alice") == hangman.HangmanRecord(word="banana")
    confirm(harness, "/hangman/giveup", player="alice")
    assert (0, 1) == (record_of("alice").wins, record_of("alice").losses)


class Cycle(random.Random):
    """A random source that picks the shipped words in turn: every new word
    is another one."""

    def __init__(self) -> None:
        super().__init__(0)
        self.next = 0

    def choice(self, seq: Any) -> Any:
        self.next += 1
        return seq[self.next % len(seq)]


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(
        st.sampled_from(["view", "new", "giveup", *"aeiourstlnq"]), max_size=30
    )
)
def test_no_word_once_shown_is_swapped_without_a_loss(steps: list[str]) -> None:
    """Whatever a player does (``hangman_free_reroll.py`` rerolled 878 times
    for free until an 8-letter word), a word that was shown changes only when
    its game ended, in a win or a loss: each new word costs the last one."""
    before, hangman.rng = hangman.rng, Cycle()
    try:
        with opened() as harness:
            shown = hangman.HangmanRecord()
            page = harness.get("/hangman", player="alice")
            for step in steps:
                if step == "view":
                    page = harness.get("/hangman", player="alice")
                elif step == "new":
                    # The page's own link when it shows one, else the bare one.
                    again = re.search(r"^=> (\S+) New game$", page.body, re.M)
                    page = visit(
                        harness, again[1] if again else "/hangman/new", player="alice"
                    )
                elif step == "giveup" and shown.word and not shown.over:
                    page = confirm(harness, "/hangman/giveup", player="alice")
                elif step not in ("giveup", "new", "view"):
                    # At the page's prompt when it shows one (else the game is
                    # over: the bare link).
                    at = re.search(r"^=> (\S+) Guess a letter$", page.body, re.M)
                    got = harness.get(
                        at[1] if at else "/hangman/letter", player="alice", query=step
                    )
                    page = got if got.status == 20 else page  # a 10: asked again
                now = hangman.slab.peek_now(fingerprint_of("alice"))
                now = now or hangman.HangmanRecord()
                if shown.word and now.word != shown.word:
                    ended = (now.wins + now.losses) - (shown.wins + shown.losses)
                    assert shown.over or ended == 1, (step, shown, now)
                shown = now
    finally:
        hangman.rng = before


def test_a_new_game_after_the_end_costs_nothing(harness: SessionHarness) -> None:
    won = Page(20, "", "\n".join(play(harness, "ban")))
    lines = visit(harness, link_to(won, "New game"), player="alice").lines
    assert "You gave up" not in "\n".join(lines)
    assert (record_of("alice").wins, record_of("alice").losses) == (1, 0)
    assert ("banana", "") == (record_of("alice").word, record_of("alice").tried)


def test_a_new_game_starts_only_at_the_link_the_page_gave(
    harness: SessionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the end, "new game" from a link of elsewhere (or mallory's own)
    starts nothing; the page's own link starts one, once."""
    won = Page(20, "", "\n".join(play(harness, "ban")))
    play(harness, "ban", player="mallory")
    theirs = link_to(harness.get("/hangman", player="mallory"), "New game")
    monkeypatch.setattr(hangman, "rng", Fixed("kite"))
    for path in ("/hangman/new", "/hangman/new/aaaaaaaaaaaaaaaa", theirs):
        page = harness.get(path, player="alice", query="yes")
        assert (20, hangman.NOT_YOURS) == (page.status, page.lines[13]), path
        assert ("banana", "ban") == (record_of("alice").word, record_of("alice").tried)
    again = link_to(won, "New game")
    assert "Word: _ _ _ _ (4 letters)" in visit(harness, again, player="alice").lines
    # The same link again (the Back key): the game it was for is over.
    page = visit(harness, again, player="alice")
    assert "This game is still going: finish it, or give it up." == page.lines[12]
    assert hangman.HangmanRecord("kite", "", 1, 0) == record_of("alice")


@settings(max_examples=60, deadline=None)
@given(answer=player_input)
def test_no_letter_in_a_link_from_elsewhere_is_tried(answer: str) -> None:
    """The letter in the URL, as any page anywhere can write it: at the bare
    prompt, at a made-up or another player's token. None is tried; each
    shows the page, saying so, with the player's own links."""
    before, hangman.rng = hangman.rng, Fixed("banana")
    try:
        with opened() as harness:
            play(harness, "b", player="alice")
            theirs = prompt_of(harness, "mallory")
            for path in (
                "/hangman/letter",
                "/hangman/letter/",
                "/hangman/letter/aaaaaaaaaaaaaaaa",
                theirs,
            ):
                page = harness.get(path, player="alice", query=answer)
                assert (20, hangman.NOT_YOURS) == (page.status, page.lines[12]), path
                assert prompt_of(harness) == link_to(page, "Guess a letter")
            assert hangman.HangmanRecord("banana", "b") == record_of("alice")
    finally:
        hangman.rng = before


def test_a_letter_for_a_player_with_no_word_is_sent_to_the_page() -> None:
    """A link from elsewhere to a player who has never played: the page, whose
    first look gives the word; no letter is tried."""
    with opened() as harness:
        for path in ("/hangman/letter", "/hangman/new", "/hangman/giveup"):
            page = harness.get(path, player="newcomer", query="e")
            assert (30, "/hangman") == (page.status, page.meta)
        assert hangman.slab.peek_now(fingerprint_of("newcomer")) is None


#: The page a letter typed at an old prompt gets, tokens masked.
STALE = f"""\
# Hangman

```Gallows: 6 of 6 lives left
  +---+
  |   |
      |
      |
      |
      |
=======
```

{hangman.NOT_YOURS}

Word: _ a _ a _ a (6 letters)
Letters tried: a
Lives left: 6 of 6

=> /hangman/letter/<token> Guess a letter
=> /hangman/giveup/<token> Give up and start a new game (counts as a loss)

## Your record

Wins: 0
Losses: 0

=> / Back to the capsule
"""


def test_a_prompt_the_game_moved_on_from_asks_again(harness: SessionHarness) -> None:
    """A letter typed at a prompt shown before the last letter (on another
    device, or after the Back key) is not tried: the page says so, as the game
    stands, and its link asks for a letter of this game."""
    old = prompt_of(harness)
    play(harness, "a")
    page = harness.get(old, player="alice", query="n")
    assert 20 == page.status
    assert "a" == record_of("alice").tried
    assert masked(page.body) == STALE
    page = follow(harness, page, "Guess a letter", "n", player="alice")
    assert "an" == record_of("alice").tried


@settings(max_examples=60, deadline=None)
@given(answer=player_input)
def test_no_give_up_link_from_elsewhere_gives_anything_up(answer: str) -> None:
    """The give-up with the answer in the URL, the old numbered links, and
    another player's own link: none gives up the game, nor does a new game."""
    before, hangman.rng = hangman.rng, Fixed("banana")
    try:
        harness = SessionHarness(hangman.app)
        play(harness, "b", player="alice")
        play(harness, "b", player="mallory")
        theirs = asked_at(harness, "/hangman/giveup", player="mallory")
        for path in ("/hangman/giveup", "/hangman/giveup/0", theirs):
            page = harness.get(path, player="alice", query=answer)
            assert 30 == page.status, (path, page)
        harness.get("/hangman/new", player="alice", query=answer)
        harness.get(prompt_of(harness, "mallory"), player="alice", query=answer)
        assert record_of("alice") == hangman.HangmanRecord(word="banana", tried="b")
    finally:
        hangman.rng = before


def test_two_players_interleaved_keep_their_own_games(
    harness: SessionHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    play(harness, "b", player="alice")  # alice plays banana
    monkeypatch.setattr(hangman, "rng", Fixed("kite"))
    play(harness, "b", player="bob")
    play(harness, "a", player="alice")
    bob = play(harness, "k", player="bob")
    alice = play(harness, "n", player="alice")
    assert bob[12:17] == [
        "Yes: k is in the word once.",
        "",
        "Word: k _ _ _ (4 letters)",
        "Letters tried: b, k",
        "Lives left: 5 of 6",
    ]
    assert alice[12] == "You won! The word was banana."
    assert record_of("bob") == hangman.HangmanRecord(
        word="kite", tried="bk", wins=0, losses=0
    )
    assert harness.get("/hangman", player="bob").lines == bob[:12] + bob[14:]


def test_word_list_has_a_few_hundred_plain_words() -> None:
    assert len(hangman.WORDS) >= 300
    assert len(set(hangman.WORDS)) == len(hangman.WORDS)
    assert all(set(word) <= set(string.ascii_lowercase) for word in hangman.WORDS)
    assert min(map(len, hangman.WORDS)) >= 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# words\nkite\nKite\n",
            "words.txt line 3: 'Kite' must be lowercase letters a to z",
        ),
        (
            "ice cream\n",
            "words.txt line 1: 'ice cream' must be lowercase letters a to z",
        ),
        ("# only a comment\n\n", "words.txt holds no words: ship at least one"),
    ],
)
def test_broken_word_list_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        hangman.parse_words(text)
    assert str(raised.value) == message


def test_word_list_skips_comments_and_blank_lines() -> None:
    assert hangman.parse_words("# a list\n\nkite  # a toy\n  fox\n") == ("kite", "fox")


def test_record_fits_its_slot_at_its_largest() -> None:
    longest = max(hangman.WORDS, key=len)
    biggest = hangman.HangmanRecord(
        word=longest, tried=string.ascii_lowercase, wins=10**9, losses=10**9
    )
    with opened():
        assert len(hangman.slab.codec.encode(biggest)) <= 128


@settings(max_examples=150, deadline=None)
@given(
    before=st.text(alphabet=string.ascii_lowercase, max_size=8),
    answer=player_input,
)
def test_any_answer_gets_a_prompt_or_a_page(before: str, answer: str) -> None:
    """Whatever a player types: a 10 with a one-line reason, or a game page;
    a letter is added only when it is one new letter a to z."""
    with opened() as harness:
        at = prompt_of(harness)
        for letter in before:
            page = harness.get(at, player="alice", query=letter)
            if "=> /hangman/letter/" in page.body:
                at = link_to(page, "Guess a letter")  # else over: the last stays
        old = record_of("alice")
        page = harness.get(at, player="alice", query=answer)
        new = record_of("alice")
    assert page.status in (10, 20)
    assert "\r" not in page.meta and "\n" not in page.meta
    assert len(page.meta.encode()) < 1024
    assert new.word == old.word
    if page.status == 10:
        assert new == old
        return
    assert page.lines[0] == "# Hangman"
    assert page.lines[-1] == "=> / Back to the capsule"
    if old.over:
        assert new == old
    else:
        letter = answer.strip().casefold()
        assert len(letter) == 1 and letter in string.ascii_lowercase
        assert new.tried == old.tried + letter
