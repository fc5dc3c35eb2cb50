"""Number guessing, hangman and the hall of fame, each run alone by the real
launcher and played over real TLS by scripted players with real certificates.

The players follow the links the pages give, as a person's client does: every
step of play is taken at a link the capsule made for that player and that
moment of the game, which no test (and no stranger) writes.

The hangman players only read the pages and the public word list: one solves
(always guessing the letter most candidate words hold), one loses on purpose
(always guessing the letter fewest candidates hold). A unit test below plays both
against every word in the list, so the end-to-end games cannot go either way.
"""

from __future__ import annotations

import re
import string
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from jetforce_sesh.games import halloffame, hangman
from tests.support import AGUNUA, ClientCert, Reply, Server, serve

MakeCert = Callable[..., ClientCert]


@pytest.fixture(scope="module")
def guess_server() -> Iterator[Server]:
    yield from serve(["--app", "jetforce_sesh.games.guess:app"])


@pytest.fixture(scope="module")
def hangman_server() -> Iterator[Server]:
    yield from serve(["--app", "jetforce_sesh.games.hangman:app"])


@pytest.fixture(scope="module")
def fame_server() -> Iterator[Server]:
    yield from serve(["--app", "jetforce_sesh.games.halloffame:app"])


def ok(reply: Reply) -> list[str]:
    """The lines of a game page; fails on anything but a 20 gemtext page."""
    assert (reply.status, reply.meta) == (20, "text/gemini"), reply
    return reply.body.splitlines()


def link(lines: list[str], label: str) -> str:
    """The URL of the link of a page whose label starts with ``label``."""
    for line in lines:
        parts = line.split(maxsplit=2)
        if parts[:1] == ["=>"] and len(parts) == 3 and parts[2].startswith(label):
            return parts[1]
    raise AssertionError(f"no link {label!r} on {lines}")


def agunua(server: Server, cert: ClientCert, url: str) -> list[str]:
    """``url`` (a page's link, its query and all) fetched by agunua, an
    independent client, with ``cert``: the page's lines."""
    fetched = subprocess.run(
        [
            AGUNUA,
            "--no-tofu",
            "-c",
            str(cert.cert_path),
            "-k",
            str(cert.key_path),
            f"gemini://localhost:{server.port}{url}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert 0 == fetched.returncode, (url, fetched.stderr)
    return fetched.stdout.splitlines()


def prompted(server: Server, cert: ClientCert, url: str, answer: str) -> Reply:
    """Follow a page's link to its prompt, as a client does, then answer it."""
    asked = server.request(url, cert)
    assert asked.status == 10, asked
    return server.request(url, cert, query=answer)


def choose_name(server: Server, cert: ClientCert, name: str) -> Reply:
    """Choose a hall-of-fame name by the hall's own link."""
    hall = ok(server.request("/halloffame", cert))
    return prompted(server, cert, link(hall, "Choose your name"), name)


# -- number guessing -----------------------------------------------------------


class BinarySearch:
    """A number guessing player that halves the range with every hint."""

    def __init__(self, server: Server, cert: ClientCert) -> None:
        self.server, self.cert = server, cert
        self.low, self.high = 1, 100
        self.tries = 0
        self.done = False
        self.lines = ok(server.request("/guess", cert))

    def step(self) -> list[str]:
        """One guess, at the prompt the last page linked."""
        guess = (self.low + self.high) // 2
        at = link(self.lines, "Guess")
        lines = ok(prompted(self.server, self.cert, at, str(guess)))
        self.lines = lines
        self.tries += 1
        if lines[2] == f"You guessed {guess}: the secret is higher.":
            self.low = guess + 1
        elif lines[2] == f"You guessed {guess}: the secret is lower.":
            self.high = guess - 1
        else:
            assert lines[2] == (
                f"{guess} is correct! You found it in {self.tries}"
                f" {'try' if self.tries == 1 else 'tries'}."
            )
            self.done = True
            return lines
        assert lines[3] == (
            f"It is from {self.low} to {self.high}. Tries so far: {self.tries}."
        )
        return lines

    def play(self) -> list[str]:
        while True:
            lines = self.step()
            if self.done:
                return lines

    def play_again(self) -> list[str]:
        """The won page's "Play again" link: a new game."""
        self.lines = ok(self.server.request(link(self.lines, "Play again"), self.cert))
        assert self.lines[2] == (
            "I am thinking of a whole number from 1 to 100. Can you find it?"
        )
        return self.lines


@pytest.mark.e2e
def test_guess_binary_search_wins(guess_server: Server, make_cert: MakeCert) -> None:
    cert = make_cert("guess-alice")
    page = ok(guess_server.request("/guess", cert))
    assert page[0] == "# Number guessing"
    prompt = guess_server.request(link(page, "Guess a number"), cert)
    assert (prompt.status, prompt.meta) == (10, "Guess a number from 1 to 100")
    player = BinarySearch(guess_server, cert)
    lines = player.play()
    assert player.tries <= 7
    assert lines[-6:] == [
        "",
        "Games won: 1",
        f"Best score: {player.tries} {'try' if player.tries == 1 else 'tries'}",
        f"Tries per game: {player.tries:.1f} (a game given up counts as 10)",
        "",
        "=> / Back to the capsule",
    ]


@pytest.mark.e2e
def test_guess_two_players_interleaved(
    guess_server: Server, make_cert: MakeCert
) -> None:
    ann = BinarySearch(guess_server, make_cert("guess-ann"))
    ben = BinarySearch(guess_server, make_cert("guess-ben"))
    while not (ann.done and ben.done):
        for player in (ann, ben):
            if not player.done:
                player.step()
    for player in (ann, ben):
        lines = ok(guess_server.request("/guess", player.cert))
        assert "Games won: 1" in lines


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("answer", "meta"),
    [
        ("", "Guess a number from 1 to 100"),
        ("abc", "'abc' is not a whole number: guess a number from 1 to 100"),
        (
            "4\r\n=> /x",
            "'4\\r\\n=> /x' is not a whole number: guess a number from 1 to 100",
        ),
        ("漢字", "'漢字' is not a whole number: guess a number from 1 to 100"),
        ("500", "'500' is not from 1 to 100: guess a number from 1 to 100"),
    ],
)
def test_guess_bad_input_reprompts(
    guess_server: Server, make_cert: MakeCert, answer: str, meta: str
) -> None:
    cert = make_cert("guess-typo")
    at = link(ok(guess_server.request("/guess", cert)), "Guess a number")
    reply = guess_server.request(at, cert, query=answer)
    assert (reply.status, reply.meta, reply.body) == (10, meta, "")


@pytest.mark.e2e
def test_guess_won_by_an_independent_client(
    guess_server: Server, make_cert: MakeCert
) -> None:
    """agunua answers each prompt the page links (the guess as the query of
    the prompt's URL, as a client sends what the player typed), no token
    typed, by binary search to the win and into a new game."""
    cert = make_cert("guess-agunua")
    page = agunua(guess_server, cert, "/guess")
    low, high = 1, 100
    for _ in range(7):  # halving 1 to 100 finds any number in 7 guesses
        number = (low + high) // 2
        page = agunua(guess_server, cert, f"{link(page, 'Guess')}?{number}")
        if page[2] == f"You guessed {number}: the secret is higher.":
            low = number + 1
        elif page[2] == f"You guessed {number}: the secret is lower.":
            high = number - 1
        else:
            break
    assert page[2].startswith(f"{number} is correct! You found it in "), page
    page = agunua(guess_server, cert, link(page, "Play again"))
    assert page[2] == "I am thinking of a whole number from 1 to 100. Can you find it?"


@pytest.mark.e2e
def test_guess_in_a_link_from_elsewhere_counts_nothing(
    guess_server: Server, make_cert: MakeCert
) -> None:
    """``/guess/try?50`` as any page can write it, over real TLS: the game's
    page, saying nothing was done, with the player's own prompt; nothing is
    counted."""
    cert = make_cert("guess-victim")
    own = link(ok(guess_server.request("/guess", cert)), "Guess a number")
    page = ok(guess_server.request("/guess/try", cert, query="50"))
    assert page[2] == (
        "Nothing was done: that link came from an older page, another device or"
        " somewhere else, not from this game as it is now."
    )
    assert link(page, "Guess a number") == own
    assert ok(guess_server.request("/guess", cert))[2:5] == [
        "I am thinking of a whole number from 1 to 100. Can you find it?",
        "",
        f"=> {own} Guess a number",
    ]


@pytest.mark.e2e
def test_games_ask_for_a_certificate(guess_server: Server) -> None:
    reply = guess_server.request("/guess")
    assert reply.status == 60


# -- hangman -------------------------------------------------------------------

WORD_LINE = re.compile(r"Word: (?P<mask>[a-z_ ]+) \((?P<length>[0-9]+) letters\)")


BY_LENGTH: dict[int, list[str]] = {}
for _word in hangman.WORDS:
    BY_LENGTH.setdefault(len(_word), []).append(_word)


def candidates(mask: str, tried: str) -> list[str]:
    """Words of the list that fit ``mask`` (``_`` for unknown) after ``tried``."""
    return [
        word
        for word in BY_LENGTH.get(len(mask), [])
        if all(
            (m == "_" and c not in tried) or c == m
            for c, m in zip(word, mask, strict=True)
        )
    ]


def solver(mask: str, tried: str) -> str:
    """The untried letter the most candidate words hold."""
    words = candidates(mask, tried)
    untried = [c for c in string.ascii_lowercase if c not in tried]
    return max(untried, key=lambda c: (sum(c in w for w in words), -ord(c)))


def loser(mask: str, tried: str) -> str:
    """The untried letter the fewest candidate words hold."""
    words = candidates(mask, tried)
    untried = [c for c in string.ascii_lowercase if c not in tried]
    return min(untried, key=lambda c: (sum(c in w for w in words), c))


Strategy = Callable[[str, str], str]


def test_strategies_decide_every_word_of_the_list() -> None:
    """The solver wins every word and the loser loses every word, by the game's
    own rules, so the scripted games below always end the same way."""
    for strategy, wins in ((solver, True), (loser, False)):
        for word in hangman.WORDS:
            record = hangman.HangmanRecord(word=word)
            while not record.over:
                record.tried += strategy(
                    hangman.masked(record).replace(" ", ""), record.tried
                )
            assert record.won is wins, (strategy.__name__, word, record.tried)


class HangmanPlayer:
    """A hangman player that reads only the pages and the public word list."""

    def __init__(self, server: Server, cert: ClientCert, strategy: Strategy) -> None:
        self.server, self.cert, self.strategy = server, cert, strategy
        self.lines = ok(server.request("/hangman", cert))
        if self.over:  # a game played before: the page's own "New game"
            self.lines = ok(server.request(link(self.lines, "New game"), cert))
        self.tried = ""

    @property
    def mask(self) -> str:
        found = next(filter(None, map(WORD_LINE.fullmatch, self.lines)))
        return found["mask"].replace(" ", "")

    @property
    def over(self) -> bool:
        return any(
            line.startswith("=> /hangman/new/") and line.endswith(" New game")
            for line in self.lines
        )

    def step(self) -> None:
        """One letter, at the prompt the last page linked."""
        letter = self.strategy(self.mask, self.tried)
        self.tried += letter
        at = link(self.lines, "Guess a letter")
        self.lines = ok(prompted(self.server, self.cert, at, letter))
        assert f"Letters tried: {', '.join(sorted(self.tried))}" in self.lines

    def play(self) -> list[str]:
        while not self.over:
            self.step()
        return self.lines


def ended(lines: list[str]) -> tuple[str, str]:
    """The end-of-game line and the revealed word."""
    end = next(line for line in lines if line.startswith("You "))
    mask = next(filter(None, map(WORD_LINE.fullmatch, lines)))["mask"]
    return end, mask.replace(" ", "")


@pytest.mark.e2e
def test_hangman_solver_wins(hangman_server: Server, make_cert: MakeCert) -> None:
    lines = HangmanPlayer(hangman_server, make_cert("hang-alice"), solver).play()
    end, word = ended(lines)
    assert end == f"You won! The word was {word}."
    assert word in hangman.WORDS
    assert lines[-6:-2] == ["## Your record", "", "Wins: 1", "Losses: 0"]


@pytest.mark.e2e
def test_hangman_loser_loses(hangman_server: Server, make_cert: MakeCert) -> None:
    lines = HangmanPlayer(hangman_server, make_cert("hang-bob"), loser).play()
    end, word = ended(lines)
    assert end == f"You lost: the word was {word}."
    assert "Lives left: 0 of 6" in lines
    assert lines[-6:-2] == ["## Your record", "", "Wins: 0", "Losses: 1"]


@pytest.mark.e2e
def test_hangman_two_players_interleaved(
    hangman_server: Server, make_cert: MakeCert
) -> None:
    winner = HangmanPlayer(hangman_server, make_cert("hang-ann"), solver)
    loser_ = HangmanPlayer(hangman_server, make_cert("hang-ben"), loser)
    while not (winner.over and loser_.over):
        for player in (winner, loser_):
            if not player.over:
                player.step()
    assert ended(winner.lines)[0].startswith("You won!")
    assert ended(loser_.lines)[0].startswith("You lost:")
    assert ok(hangman_server.request("/hangman", winner.cert))[-4:-2] == [
        "Wins: 1",
        "Losses: 0",
    ]
    assert ok(hangman_server.request("/hangman", loser_.cert))[-4:-2] == [
        "Wins: 0",
        "Losses: 1",
    ]


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("ab", "'ab' is more than one letter"),
        ("7", "'7' is not a letter from a to z"),
        ("\x00", "'\\x00' is not a letter from a to z"),
    ],
)
def test_hangman_bad_input_reprompts(
    hangman_server: Server, make_cert: MakeCert, answer: str, reason: str
) -> None:
    cert = make_cert("hang-typo")
    at = link(ok(hangman_server.request("/hangman", cert)), "Guess a letter")
    reply = hangman_server.request(at, cert, query=answer)
    assert reply.status == 10
    assert reply.meta.startswith(f"{reason}: guess one letter, a to z (")


# -- hall of fame --------------------------------------------------------------


def section(lines: list[str], heading: str) -> list[str]:
    start = lines.index(heading)
    rows = [line for line in lines[start + 1 :] if line.startswith(("* ", "=> "))]
    return [row for row in rows[: next(i for i, r in enumerate(rows) if r[0] == "=")]]


@pytest.mark.e2e
def test_hall_of_fame_ranks_named_players(
    fame_server: Server, make_cert: MakeCert
) -> None:
    ann, ben = make_cert("fame-ann"), make_cert("fame-ben")
    named = ok(choose_name(fame_server, ann, "=> Ann\r\n"))
    assert named[4] == (
        "Your name is now “Ann”."
        " Line breaks, control characters, leading markup and extra spaces are"
        " taken out, and wide or styled letters written plain."
    )
    prompt = choose_name(fame_server, ben, "```")
    assert prompt.status == 10
    # A stranger's link that would name Ann: the hall, saying it named nobody.
    hijack = ok(fame_server.request("/halloffame/name", ann, query="Mallory"))
    assert hijack[4:7] == [
        "Nothing was done: that link came from an older page, another device or"
        " somewhere else, not from this page as it is now.",
        "",
        "You appear as “Ann”.",
    ]
    tries = 0
    for _ in range(5):  # ranked from five games on
        guesser = BinarySearch(fame_server, ann)
        guesser.play()
        tries += guesser.tries
        guesser.play_again()
    HangmanPlayer(fame_server, ben, solver).play()
    # The hall shows standings of up to a second ago (REFRESH): Ann's naming
    # page read them before her games.
    deadline = time.monotonic() + 10 * halloffame.REFRESH
    while True:
        lines = ok(fame_server.request("/halloffame", ben))
        if section(lines, "## Hangman: most wins") or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert section(lines, "## Number guessing: fewest tries per game") == [
        f"* 1. Ann: {tries / 5:.1f} tries a game over 5 games"
    ]
    anonymous = f"anonymous {ben.fingerprint[:3].hex()}"
    assert section(lines, "## Hangman: most wins") == [
        f"* 1. {anonymous} (you): 1 win, 0 losses"
    ]
