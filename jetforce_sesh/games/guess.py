"""Number guessing: find the secret number from 1 to 100 in as few tries as you can.

Shows a game whose record holds both the current game (the secret, the range the
hints have narrowed it to) and the player's history (games won and given up, tries
in all), with a ``10`` prompt that re-asks, saying why, for anything that is not a
usable guess, and one that confirms before a game in progress is given up.

Every step that changes the record (a guess, a new game, giving up) is taken at a
link only the capsule could have shown this player, for the game as it stands:
the prompt is asked at ``/guess/try/<token>``, so a ``/guess/try?50`` written on
some other capsule guesses nothing (the page, as it stands, says so). The
ranking is by tries per game, and a game given up counts as
:data:`FORFEIT_TRIES`: otherwise a player could guess 50, start again on every
miss, and reach "1 try" by luck at no cost. Run it alone with
``jetforce-sesh --app jetforce_sesh.games.guess:app``.
"""

from __future__ import annotations

import random
import re

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

LOWEST = 1
HIGHEST = 100
#: What a game given up counts as: more than halving the range ever needs (7).
FORFEIT_TRIES = 10

#: Where secrets come from; tests may swap in a seeded ``random.Random``.
rng: random.Random = random.SystemRandom()

app = SessionApplication(
    "Number guessing",
    entry="/guess",
    description="find my secret number from 1 to 100 in as few tries as you can",
)


def new_secret() -> int:
    return rng.randint(LOWEST, HIGHEST)


@attrs.define
class GuessRecord:
    secret: int = attrs.Factory(new_secret)
    # The hints so far say the secret is from `low` to `high`: a guess outside
    # that range would teach nothing, so it is refused rather than counted.
    low: int = LOWEST
    high: int = HIGHEST
    last: int = 0  # the latest guess of this game; 0 before the first
    tries: int = 0
    played: int = 0  # games won; a game ends only when the secret is found
    best: int = 0  # fewest tries in a won game; 0 until the first win
    total: int = 0  # tries of all games won
    forfeits: int = 0  # games given up after at least one guess

    @property
    def won(self) -> bool:
        return self.tries > 0 and self.last == self.secret

    @property
    def going(self) -> bool:
        """A game with guesses made and the secret not yet found."""
        return self.tries > 0 and not self.won

    @property
    def games(self) -> int:
        return self.played + self.forfeits

    def average(self) -> float:
        """Tries per game, a game given up counting as FORFEIT_TRIES."""
        return (self.total + FORFEIT_TRIES * self.forfeits) / self.games


# 81 bytes with every number at its largest (tests/games/test_guess.py checks it); the
# rest is headroom for fields a later version adds.
slab = app.slab(GuessRecord, record_size=128)

# ASCII digits only: int() also takes "٣" and "1_000", which nobody means here.
_NUMBER = re.compile(r"[+-]?[0-9]+")


def _tries(count: int) -> str:
    return "1 try" if count == 1 else f"{count} tries"


def _status(record: GuessRecord) -> list[str]:
    if record.tries == 0:
        return [
            f"I am thinking of a whole number from {LOWEST} to {HIGHEST}."
            " Can you find it?"
        ]
    if record.won:
        lines = [
            f"{record.last} is correct! You found it in {_tries(record.tries)}.",
        ]
        if record.tries == record.best:
            lines.append("That is your best score.")
        return lines
    direction = "higher" if record.last < record.secret else "lower"
    return [
        f"You guessed {record.last}: the secret is {direction}.",
        f"It is from {record.low} to {record.high}. Tries so far: {record.tries}.",
    ]


def moment(record: GuessRecord) -> str:
    """Where the game stands, as the links a page shows are made for: every
    guess, win, new game and give-up moves it on, so a link is good once. The
    secret is left out: a player who has not guessed yet has no record kept,
    and a new one (with a new secret) is drawn for every look."""
    return (
        f"{record.played} {record.forfeits} {record.tries}"
        f" {record.low} {record.high} {record.last}"
    )


def _link(request: Request, record: GuessRecord, path: str) -> str:
    return confirm_path(request, path, moment(record))


#: What a move from a link the page did not give this player says.
NOT_YOURS = (
    "Nothing was done: that link came from an older page, another device or"
    " somewhere else, not from this game as it is now."
)


def _page(request: Request, record: GuessRecord, note: str = "") -> Response:
    if record.won:
        actions = [f"=> {_link(request, record, '/guess/new')} Play again"]
    else:
        label = "Guess a number" if record.tries == 0 else "Guess again"
        actions = [f"=> {_link(request, record, '/guess/try')} {label}"]
        if record.going:
            actions.append(
                f"=> {_link(request, record, '/guess/giveup')} Give up and start"
                f" again (counts as {FORFEIT_TRIES} tries)"
            )
    best = _tries(record.best) if record.best else "none yet"
    history = [f"Games won: {record.played}", f"Best score: {best}"]
    if record.forfeits:
        history.append(f"Games given up: {record.forfeits}")
    if record.games:
        history.append(
            f"Tries per game: {record.average():.1f} (a game given up counts as"
            f" {FORFEIT_TRIES})"
        )
    lines = [
        "# Number guessing",
        "",
        *([note] if note else []),
        *_status(record),
        "",
        *actions,
        "",
        "## Your record",
        "",
        *history,
        "",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


def _ask(record: GuessRecord, problem: str = "") -> Response:
    wanted = f"a number from {record.low} to {record.high}"
    if problem:
        return Response(Status.INPUT, f"{problem}: guess {wanted}")
    return Response(Status.INPUT, f"Guess {wanted}")


def _problem(record: GuessRecord, answer: str) -> str:
    """What is wrong with ``answer`` as the next guess, or "" if nothing."""
    if not _NUMBER.fullmatch(answer):
        return f"{quoted(answer)} is not a whole number"
    digits = answer.lstrip("+-").lstrip("0")
    # Compare lengths first so a thousand-digit answer is never made an int.
    if len(digits) > 3 or not LOWEST <= int(answer) <= HIGHEST:
        return f"{quoted(answer)} is not from {LOWEST} to {HIGHEST}"
    number = int(answer)
    if number < record.low:
        return f"The secret is higher than {record.low - 1}"
    if number > record.high:
        return f"The secret is lower than {record.high + 1}"
    return ""


@app.session_route("/guess", record=GuessRecord)
async def show(request: Request, record: GuessRecord) -> Response:
    await ready()  # the secret the page's links are made under
    return _page(request, record)


@app.session_route(with_token("/guess/try"), record=GuessRecord)
async def guess(
    request: Request, record: GuessRecord, token: str | None = None
) -> Response:
    await ready()
    if record.won:
        # An old prompt answered again (a reload, a back button): no new game
        # starts without the player asking for one.
        return _page(
            request, record, "This game is over: start a new one to guess again."
        )
    # Only at the player's own prompt for this very game: a guess in a link
    # from elsewhere, or typed at a prompt the game has moved on from (another
    # device, the Back key), guesses nothing, and the page says so.
    typed = ask_for(
        request,
        token,
        "/guess/try",
        moment(record),
        _ask(record).meta,
        elsewhere=lambda _: _page(request, record, NOT_YOURS),
    )
    if isinstance(typed, Response):
        return typed
    answer = typed.strip()
    if not answer:
        return _ask(record)
    problem = _problem(record, answer)
    if problem:
        return _ask(record, problem)
    number = int(answer)
    record.last = number
    record.tries += 1
    if number < record.secret:
        record.low = number + 1
    elif number > record.secret:
        record.high = number - 1
    else:
        record.played += 1
        record.total += record.tries
        if record.best == 0 or record.tries < record.best:
            record.best = record.tries
    return _page(request, record)


@app.session_route(with_token("/guess/new"), record=GuessRecord)
async def new_game(
    request: Request, record: GuessRecord, token: str | None = None
) -> Response:
    await ready()
    if record.going:
        return _page(
            request, record, "This game is still going: finish it, or give it up."
        )
    if not is_confirmed(request, token, "/guess/new", moment(record)):
        return _page(request, record, NOT_YOURS)
    _restart(record)
    return _page(request, record)


@app.session_route(with_token("/guess/giveup"), record=GuessRecord)
async def give_up(
    request: Request, record: GuessRecord, token: str | None = None
) -> Response:
    await ready()
    if not record.going:
        return _page(
            request, record, "That game is over already: nothing was given up."
        )
    # Asked at a link made for this player and this very game: a give-up
    # re-sent later (a client's Back key) finds the game moved on and asks again.
    answer = ask_yes(
        request,
        token,
        "/guess/giveup",
        moment(record),
        f"Give up this game? It counts as {FORFEIT_TRIES} tries. Type yes to give up",
    )
    if isinstance(answer, Response):
        return answer
    if not answer:
        return _page(request, record, "Not given up: the answer was not yes.")
    record.forfeits += 1
    note = f"You gave up: the secret was {record.secret}."
    _restart(record)
    return _page(request, record, note)


def _restart(record: GuessRecord) -> None:
    record.secret = new_secret()
    record.low, record.high = LOWEST, HIGHEST
    record.last = record.tries = 0
