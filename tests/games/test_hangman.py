"""Hangman: the masked word, lives, wins and losses, bad input, two players apart."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import SlabOptions
from jetforce_sesh.games import hangman
from jetforce_sesh.testing import SessionHarness, fingerprint_of
from tests.confirming import asked_at, confirm
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


def play(harness: SessionHarness, letters: str, player: str = "alice") -> list[str]:
    """Guess each of ``letters`` in turn; the last page's lines."""
    lines: list[str] = []
    for letter in letters:
        page = harness.get("/hangman/letter", player=player, query=letter)
        assert (page.status, page.meta) == (20, "text/gemini")
        lines = page.lines
    return lines


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

=> /hangman/letter Guess a letter
=> /hangman/giveup Give up and start a new game (counts as a loss)

## Your record

Wins: 0
Losses: 0

=> / Back to the capsule
"""


def test_first_visit_shows_the_masked_word(harness: SessionHarness) -> None:
    page = harness.get("/hangman", player="alice")
    assert (page.status, page.meta, page.body) == (20, "text/gemini", FRESH)


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
    assert "=> /hangman/giveup Give up and start a new game (counts as a loss)" in (
        lines
    )


def test_finding_every_letter_wins(harness: SessionHarness) -> None:
    page_lines = play(harness, "xbna")
    assert "\n".join(page_lines[2:]) == (
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
        "=> /hangman/new New game\n\n"
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
    assert lines[12:21] == [
        "You lost: the word was banana.",
        "",
        "Word: b a n a n a (6 letters)",
        "Letters tried: a, e, q, r, t, w, y",
        "Lives left: 0 of 6",
        "",
        "=> /hangman/new New game",
        "",
        "## Your record",
    ]
    assert (record_of("alice").wins, record_of("alice").losses) == (0, 1)


@pytest.mark.parametrize("answer", ["A", " n ", "\tB\t"])
def test_letters_are_read_in_either_case_and_trimmed(
    harness: SessionHarness, answer: str
) -> None:
    page = harness.get("/hangman/letter", player="alice", query=answer)
    assert page.status == 20
    assert record_of("alice").tried == answer.strip().lower()


def test_prompt_without_an_answer_says_lives_left(harness: SessionHarness) -> None:
    play(harness, "z")
    page = harness.get("/hangman/letter", player="alice")
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
    page = harness.get("/hangman/letter", player="alice", query=answer)
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
    for answer in ("z", "A"):
        page = harness.get("/hangman/letter", player="alice", query=answer)
        assert (page.status, page.meta) == (
            10,
            f"You already tried {answer.lower()} (tried so far: a, n, z):"
            " guess one letter, a to z (5 of 6 lives left)",
        )
    assert record_of("alice").tried == "zan"


def test_letter_after_the_end_says_the_game_is_over(harness: SessionHarness) -> None:
    play(harness, "ban")
    page = harness.get("/hangman/letter", player="alice", query="q")
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
        "=> /hangman/giveup Give up and start a new game (counts as a loss)"
        in first.lines
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
            for step in steps:
                if step == "view":
                    harness.get("/hangman", player="alice")
                elif step == "new":
                    harness.get("/hangman/new", player="alice")
                elif step == "giveup" and shown.word and not shown.over:
                    confirm(harness, "/hangman/giveup", player="alice")
                elif step not in ("giveup", "new", "view"):
                    harness.get("/hangman/letter", player="alice", query=step)
                now = hangman.slab.peek_now(fingerprint_of("alice"))
                now = now or hangman.HangmanRecord()
                if shown.word and now.word != shown.word:
                    ended = (now.wins + now.losses) - (shown.wins + shown.losses)
                    assert shown.over or ended == 1, (step, shown, now)
                shown = now
    finally:
        hangman.rng = before


def test_a_new_game_after_the_end_costs_nothing(harness: SessionHarness) -> None:
    play(harness, "ban")
    lines = harness.get("/hangman/new", player="alice").lines
    assert "You gave up" not in "\n".join(lines)
    assert (record_of("alice").wins, record_of("alice").losses) == (1, 0)
    assert ("banana", "") == (record_of("alice").word, record_of("alice").tried)


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
        harness.get("/hangman", player="alice")
        for letter in before:
            harness.get("/hangman/letter", player="alice", query=letter)
        old = record_of("alice")
        page = harness.get("/hangman/letter", player="alice", query=answer)
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
