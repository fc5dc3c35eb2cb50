"""Hangman: find the word one letter at a time before the six lives run out.

Shows a record that keeps a game in progress as plain strings (the word and the
letters tried) and derives everything else from them, a data file shipped inside
the package, and a ``10`` prompt that re-asks, saying why, for anything that is
not one new letter.

A game counts from the moment its word is shown: the page shows its length at
once, and the list ships with the package, so a new word for free would let a
player pick an easy one and top the hall of fame. So a game going is finished
or given up (a loss), never swapped, and giving up is asked before it is done.

Every step that changes the record (a letter, a new game, giving up) is taken at
a link only the capsule could have shown this player, for the game as it
stands: a ``/hangman/letter?e`` written on some other capsule tries no letter
(the page, as it stands, says so). Run it alone with
``jetforce-sesh --app jetforce_sesh.games.hangman:app``.
"""

from __future__ import annotations

import random
import string
from importlib import resources

import attrs
from jetforce.app.base import Request, Response, Status

from jetforce_sesh import (
    SessionApplication,
    ask_for,
    ask_yes,
    confirm_path,
    is_confirmed,
    quoted,
    ready,
    with_token,
)

LIVES = 6
LETTERS = frozenset(string.ascii_lowercase)

#: Where words come from; tests may swap in a seeded ``random.Random``.
rng: random.Random = random.SystemRandom()

app = SessionApplication(
    "Hangman",
    entry="/hangman",
    description="find the word one letter at a time before six misses",
)


def parse_words(text: str) -> tuple[str, ...]:
    """The words in ``text``: one a line, ``#`` starts a comment."""
    words = []
    for number, line in enumerate(text.splitlines(), start=1):
        word = line.split("#", 1)[0].strip()
        if not word:
            continue
        if not set(word) <= LETTERS:
            # A broken word list is a packaging mistake: refuse to start.
            raise ValueError(
                f"words.txt line {number}: {word!r} must be lowercase letters a to z"
            )
        words.append(word)
    if not words:
        raise ValueError("words.txt holds no words: ship at least one")
    return tuple(words)


def load_words() -> tuple[str, ...]:
    """The word list shipped inside the package, next to this module."""
    words = resources.files("jetforce_sesh.games").joinpath("words.txt")
    return parse_words(words.read_text(encoding="utf-8"))


WORDS = load_words()


def new_word() -> str:
    return rng.choice(WORDS)


@attrs.define
class HangmanRecord:
    # "" until the player first opens the game. A word picked as the default
    # would vanish with the visit that showed it: a record is saved only when
    # a handler changes it, so the next visit would meet a different word.
    word: str = ""
    # Letters guessed in this game, in order. Lives, the masked word and whether
    # the game is over all follow from these two strings, so they cannot disagree.
    tried: str = ""
    wins: int = 0
    losses: int = 0

    @property
    def lives(self) -> int:
        return LIVES - sum(1 for letter in self.tried if letter not in self.word)

    @property
    def won(self) -> bool:
        return all(letter in self.tried for letter in self.word)

    @property
    def lost(self) -> bool:
        return self.lives == 0 and not self.won

    @property
    def over(self) -> bool:
        return self.won or self.lost

    @property
    def going(self) -> bool:
        """A word shown and the game not over: it counts, whatever was tried."""
        return bool(self.word) and not self.over


# 79 bytes with all 26 letters tried and the longest word; the rest is
# headroom for longer words in a later list.
slab = app.slab(HangmanRecord, record_size=128)


def masked(record: HangmanRecord) -> str:
    """The word with ``_`` for each letter not found yet, letters spaced apart."""
    return " ".join(c if c in record.tried else "_" for c in record.word)


def gallows(lives: int) -> list[str]:
    """The gallows drawing for ``lives`` left: one more piece for each miss."""
    misses = LIVES - lives
    head, body, left_arm, right_arm, left_leg, right_leg = (
        piece if misses > n else " " for n, piece in enumerate("O|/\\/\\")
    )
    return [
        "  +---+",
        "  |   |",
        f"  {head}   |",
        f" {left_arm}{body}{right_arm}  |",
        f" {left_leg} {right_leg}  |",
        "      |",
        "=======",
    ]


def _status(record: HangmanRecord) -> list[str]:
    if record.won:
        return [f"You won! The word was {record.word}."]
    if record.lost:
        return [f"You lost: the word was {record.word}."]
    return []


#: What a move from a link the page did not give this player says.
NOT_YOURS = (
    "Nothing was done: that link came from an older page, another device or"
    " somewhere else, not from this game as it is now."
)


def _page(request: Request, record: HangmanRecord, note: str = "") -> Response:
    tried = ", ".join(sorted(record.tried)) or "none yet"
    news = [*_status(record), *([note] if note else [])]
    if news:
        news.append("")
    word = " ".join(record.word) if record.over else masked(record)
    # Each link is made for this player and the game as it stands (the record:
    # every letter, word and tally is in it), so each works once.
    if record.over:
        actions = [f"=> {confirm_path(request, '/hangman/new', record)} New game"]
    else:
        actions = [
            f"=> {confirm_path(request, '/hangman/letter', record)} Guess a letter",
            f"=> {confirm_path(request, '/hangman/giveup', record)} Give up and"
            " start a new game (counts as a loss)",
        ]
    lines = [
        "# Hangman",
        "",
        f"```Gallows: {record.lives} of {LIVES} lives left",
        *gallows(record.lives),
        "```",
        "",
        *news,
        f"Word: {word} ({len(record.word)} letters)",
        f"Letters tried: {tried}",
        f"Lives left: {record.lives} of {LIVES}",
        "",
        *actions,
        "",
        "## Your record",
        "",
        f"Wins: {record.wins}",
        f"Losses: {record.losses}",
        "",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


def _ask(record: HangmanRecord, problem: str = "") -> Response:
    wanted = f"one letter, a to z ({record.lives} of {LIVES} lives left)"
    if problem:
        return Response(Status.INPUT, f"{problem}: guess {wanted}")
    return Response(Status.INPUT, f"Guess {wanted}")


def _problem(record: HangmanRecord, answer: str, letter: str) -> str:
    """What is wrong with ``answer`` (``letter`` once folded), or "" if nothing."""
    if len(answer) > 1:
        return f"{quoted(answer)} is more than one letter"
    if letter not in LETTERS:
        return f"{quoted(answer)} is not a letter from a to z"
    if letter in record.tried:
        tried = ", ".join(sorted(record.tried))
        return f"You already tried {letter} (tried so far: {tried})"
    return ""


def _start(record: HangmanRecord) -> None:
    """Give a player who has never played a word (and so a record to keep)."""
    if not record.word:
        record.word = new_word()


#: Where a player with no word yet is sent from a step of play: the page,
#: whose first visit picks the word (nothing else gives one).
TO_THE_PAGE = Response(Status.REDIRECT_TEMPORARY, "/hangman")


@app.session_route("/hangman", record=HangmanRecord)
async def show(request: Request, record: HangmanRecord) -> Response:
    await ready()  # the secret the page's links are made under
    _start(record)
    return _page(request, record)


@app.session_route(with_token("/hangman/letter"), record=HangmanRecord)
async def guess_letter(
    request: Request, record: HangmanRecord, token: str | None = None
) -> Response:
    await ready()
    if not record.word:
        return TO_THE_PAGE
    if record.over:
        # An old prompt answered again (a reload, a back button).
        return _page(
            request, record, "This game is over: start a new one to play again."
        )
    # Only at the player's own prompt for this very game: a letter in a link
    # from elsewhere, or typed at a prompt the game has moved on from (another
    # device, the Back key), tries nothing, and the page says so.
    typed = ask_for(
        request,
        token,
        "/hangman/letter",
        record,
        _ask(record).meta,
        elsewhere=lambda _: _page(request, record, NOT_YOURS),
    )
    if isinstance(typed, Response):
        return typed
    answer = typed.strip()
    if not answer:
        return _ask(record)
    letter = answer.casefold()
    problem = _problem(record, answer, letter)
    if problem:
        return _ask(record, problem)
    record.tried += letter
    if record.won:
        record.wins += 1
    elif record.lost:
        record.losses += 1
    if record.over:
        return _page(request, record)
    found = record.word.count(letter)
    if found:
        return _page(request, record, f"Yes: {letter} is in the word {_times(found)}.")
    return _page(request, record, f"No {letter} in the word: you lose a life.")


def _times(count: int) -> str:
    return "once" if count == 1 else "twice" if count == 2 else f"{count} times"


@app.session_route(with_token("/hangman/new"), record=HangmanRecord)
async def new_game(
    request: Request, record: HangmanRecord, token: str | None = None
) -> Response:
    await ready()
    if not record.word:
        return TO_THE_PAGE
    # A word shown counts, letters tried or not: a new one for free would let a
    # player reroll until an easy word.
    if record.going:
        return _page(
            request, record, "This game is still going: finish it, or give it up."
        )
    if not is_confirmed(request, token, "/hangman/new", record):
        return _page(request, record, NOT_YOURS)
    record.word = new_word()
    record.tried = ""
    return _page(request, record)


@app.session_route(with_token("/hangman/giveup"), record=HangmanRecord)
async def give_up(
    request: Request, record: HangmanRecord, token: str | None = None
) -> Response:
    await ready()
    if not record.word:
        return TO_THE_PAGE
    if not record.going:
        return _page(
            request, record, "That game is over already: nothing was given up."
        )
    # Asked at a link made for this player and this very game: a give-up
    # re-sent later (a client's Back key) finds the game moved on and asks again.
    answer = ask_yes(
        request,
        token,
        "/hangman/giveup",
        record,
        "Give up this game? It counts as a loss. Type yes to give up",
    )
    if isinstance(answer, Response):
        return answer
    if not answer:
        return _page(request, record, "Not given up: the answer was not yes.")
    # Giving up counts as losing, or a player could dodge every loss.
    record.losses += 1
    note = f"You gave up: the word was {record.word}."
    record.word = new_word()
    record.tried = ""
    return _page(request, record, note)
