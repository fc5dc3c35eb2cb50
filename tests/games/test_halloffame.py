"""Hall of fame: rankings read across the games' slabs, and names made safe."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings

from jetforce_sesh import SlabOptions
from jetforce_sesh.games import guess, halloffame, hangman
from jetforce_sesh.names import MAX_NAME, clean_name, quoted
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of, later_stores
from tests.confirming import confirm
from tests.games.playing import follow, link_to, masked, tokened
from tests.strategies import player_input

SMALL = SlabOptions(max_records=64)


class Fixed(random.Random):
    """Secret number 100 and hangman word "kite", so tests can win and lose."""

    def __init__(self) -> None:
        super().__init__(0)

    def randint(self, a: int, b: int) -> int:
        return 100

    def choice(self, seq: Any) -> Any:
        return "kite"


@contextmanager
def opened(defaults: SlabOptions = SMALL) -> Iterator[SessionHarness]:
    """A harness on empty slabs, closed after so no test leaves players behind."""
    try:
        yield SessionHarness(halloffame.app, defaults=defaults)
    finally:
        halloffame.app.close()


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch) -> Iterator[SessionHarness]:
    monkeypatch.setattr(guess, "rng", Fixed())
    monkeypatch.setattr(hangman, "rng", Fixed())
    with opened() as harness:
        yield harness


def new_guess(harness: SessionHarness, player: str) -> Page:
    """Number guessing's page, past the end of the last game: a new one."""
    page = harness.get("/guess", player=player)
    if "Play again" in page.body:
        page = follow(harness, page, "Play again", player=player)
    return page


def win_guess(harness: SessionHarness, player: str, tries: int) -> None:
    """Win a game of number guessing (the secret is 100) in ``tries`` tries,
    each at the prompt the page before linked."""
    page = new_guess(harness, player)
    for number in [*range(1, tries), 100]:
        page = follow(harness, page, "Guess", str(number), player=player)
        assert 20 == page.status, page


def hangman_game(harness: SessionHarness, player: str, *, win: bool) -> None:
    """Win or lose a game of hangman (the word is "kite") by the pages' links."""
    page = harness.get("/hangman", player=player)
    if "New game" in page.body:
        page = follow(harness, page, "New game", player=player)
    for letter in "kite" if win else "abcdfg":
        page = follow(harness, page, "Guess a letter", letter, player=player)
        assert 20 == page.status, page


def name_prompt(harness: SessionHarness, player: str) -> str:
    """Where the hall asks this player for a name: a link of their own."""
    page = harness.get("/halloffame", player=player)
    url = link_to(page, "Change your name" if " Change your" in page.body else "Choose")
    assert tokened("/halloffame/name", url), url
    return url


def choose(harness: SessionHarness, player: str, typed: str | None) -> Page:
    """Type ``typed`` at the name prompt the hall's page links."""
    return harness.get(name_prompt(harness, player), player=player, query=typed)


def name(harness: SessionHarness, player: str, chosen: str) -> None:
    assert choose(harness, player, chosen).status == 20


def anonymous(player: str) -> str:
    return f"anonymous {fingerprint_of(player)[:3].hex()}"


def test_empty_hall_invites_players(harness: SessionHarness) -> None:
    page = harness.get("/halloffame", player="alice")
    assert (page.status, page.meta) == (20, "text/gemini")
    assert masked(page.body) == (
        "# Hall of fame\n\n"
        "The best players of the capsule's games, under the names they chose.\n\n"
        f"You appear as {anonymous('alice')} until you choose a name.\n"
        "=> /halloffame/name/<token> Choose your name\n\n"
        "## Number guessing: fewest tries per game\n\n"
        "Players with 5 games or more; a game given up counts as 10 tries.\n\n"
        "Nobody has played 5 games yet: be the first.\n"
        "=> /guess Play number guessing\n\n"
        "## Hangman: most wins\n\n"
        "Nobody has won at hangman yet: be the first.\n"
        "=> /hangman Play hangman\n\n"
        "=> / Back to the capsule\n"
    )


def test_viewing_the_hall_stores_nothing_for_the_viewer(
    harness: SessionHarness,
) -> None:
    harness.get("/halloffame", player="alice")
    assert halloffame.slab.peek_now(fingerprint_of("alice")) is None


def section(lines: list[str], heading: str) -> list[str]:
    """The list items under ``heading``."""
    start = lines.index(heading)
    end = lines.index("", start + 2)
    return [line for line in lines[start + 2 : end] if line.startswith("* ")]


GUESS_TABLE = "## Number guessing: fewest tries per game"


def section_after_note(lines: list[str], heading: str) -> list[str]:
    """The list items under ``heading``, past its explanatory note."""
    start = lines.index(heading)
    end = lines.index("", start + 4)
    return [line for line in lines[start + 4 : end] if line.startswith("* ")]


def give_up(harness: SessionHarness, player: str) -> None:
    """Guess once, then give the game up (it counts as 10 tries)."""
    follow(harness, new_guess(harness, player), "Guess", "1", player=player)
    confirm(harness, "/guess/giveup", player=player)


def test_guess_table_ranks_fewest_tries_per_game_from_five_games(
    harness: SessionHarness,
) -> None:
    for number in range(12):
        player = f"p{number:02}"
        name(harness, player, player)
        for _ in range(5):
            win_guess(harness, player, tries=number + 2)
    for _ in range(6):
        win_guess(harness, "nobody", tries=5)  # ties p03's 5.0 with more games
    for _ in range(4):
        win_guess(harness, "newcomer", tries=1)  # four games: not ranked yet
    for tries in (2, 2, 2, 2):
        win_guess(harness, "quitter", tries=tries)
    give_up(harness, "quitter")  # (8 + 10) / 5 = 3.6
    harness.clock.advance(halloffame.REFRESH)  # past the names' pages' reading
    lines = harness.get("/halloffame", player="p01").lines
    assert lines[lines.index(GUESS_TABLE) + 2] == (
        "Players with 5 games or more; a game given up counts as 10 tries."
    )
    assert section_after_note(lines, GUESS_TABLE) == [
        "* 1. p00: 2.0 tries a game over 5 games",
        "* 2. p01 (you): 3.0 tries a game over 5 games",
        f"* 3. {anonymous('quitter')}: 3.6 tries a game over 5 games",
        "* 4. p02: 4.0 tries a game over 5 games",
        f"* 5. {anonymous('nobody')}: 5.0 tries a game over 6 games",
        "* 6. p03: 5.0 tries a game over 5 games",
        "* 7. p04: 6.0 tries a game over 5 games",
        "* 8. p05: 7.0 tries a game over 5 games",
        "* 9. p06: 8.0 tries a game over 5 games",
        "* 10. p07: 9.0 tries a game over 5 games",
    ]


def test_equal_scores_share_their_rank_listed_in_key_order(
    harness: SessionHarness,
) -> None:
    players = ["ann", "ben", "cat"]
    for player in players:
        for _ in range(5):
            win_guess(harness, player, tries=4)
    for _ in range(5):
        win_guess(harness, "dan", tries=6)
    ranked = sorted(players, key=fingerprint_of)
    lines = harness.get("/halloffame", player="zed").lines
    assert section_after_note(lines, GUESS_TABLE) == [
        *(
            f"* 1. {anonymous(player)}: 4.0 tries a game over 5 games"
            for player in ranked
        ),
        f"* 4. {anonymous('dan')}: 6.0 tries a game over 5 games",
    ]


def test_tied_hangman_players_share_a_rank_and_the_next_skips(
    harness: SessionHarness,
) -> None:
    for player, wins in (("ann", 2), ("ben", 1), ("cat", 1), ("dan", 0)):
        for _ in range(wins):
            hangman_game(harness, player, win=True)
    hangman_game(harness, "dan", win=True)
    hangman_game(harness, "dan", win=False)  # 1 win, 1 loss: behind ben and cat
    tied = sorted(["ben", "cat"], key=fingerprint_of)
    lines = harness.get("/halloffame", player="zed").lines
    assert [
        f"* 1. {anonymous('ann')}: 2 wins, 0 losses",
        *(f"* 2. {anonymous(player)}: 1 win, 0 losses" for player in tied),
        f"* 4. {anonymous('dan')}: 1 win, 1 loss",
    ] == section(lines, "## Hangman: most wins")


@pytest.mark.parametrize(
    ("orders", "expected"),
    [
        ([], []),
        ([(1,), (2,), (3,)], [1, 2, 3]),
        ([(1,), (1,), (2,)], [1, 1, 3]),
        ([(1,), (2,), (2,), (2,), (5,)], [1, 2, 2, 2, 5]),
        ([(7, 1), (7, 1)], [1, 1]),
        ([(7, 1), (7, 2)], [1, 2]),  # a tie-break is no tie
    ],
)
def test_ranks_are_competition_ranks(
    orders: list[tuple[int, ...]], expected: list[int]
) -> None:
    assert expected == halloffame.ranks(orders)


def test_starting_again_on_every_miss_cannot_top_an_honest_player(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guessing 50 and giving up on a miss wins "in 1 try" now and then; each
    give-up counts 10, so it ranks below halving the range every time."""
    monkeypatch.setattr(guess, "rng", random.Random(2026))
    with opened() as harness:
        for _ in range(300):
            page = new_guess(harness, "cheat")
            page = follow(harness, page, "Guess", "50", player="cheat")
            if "correct" not in page.lines[2]:
                confirm(harness, "/guess/giveup", player="cheat")
        for _ in range(20):
            low, high = 1, 100
            page = new_guess(harness, "honest")
            while True:
                middle = (low + high) // 2
                page = follow(harness, page, "Guess", str(middle), player="honest")
                if "correct" in page.lines[2]:
                    break
                if "higher" in page.lines[2]:
                    low = middle + 1
                else:
                    high = middle - 1
        cheat = guess.slab.peek_now(fingerprint_of("cheat"))
        assert cheat is not None and cheat.played >= 1  # it did get lucky
        rows = section_after_note(harness.get("/halloffame").lines, GUESS_TABLE)
    assert [anonymous("honest"), anonymous("cheat")] == [
        row.split(". ", 1)[1].split(":")[0] for row in rows
    ]


def test_hangman_table_ranks_most_wins_then_fewest_losses(
    harness: SessionHarness,
) -> None:
    results = {
        "ann": (3, 0),
        "ben": (3, 2),
        "cat": (1, 1),
        "dan": (4, 5),
        "eve": (0, 3),  # no win: unranked
    }
    for player, (wins, losses) in results.items():
        name(harness, player, player.title())
        for _ in range(wins):
            hangman_game(harness, player, win=True)
        for _ in range(losses):
            hangman_game(harness, player, win=False)
    harness.clock.advance(halloffame.REFRESH)  # past the names' pages' reading
    lines = harness.get("/halloffame", player="cat").lines
    assert section(lines, "## Hangman: most wins") == [
        "* 1. Dan: 4 wins, 5 losses",
        "* 2. Ann: 3 wins, 0 losses",
        "* 3. Ben: 3 wins, 2 losses",
        "* 4. Cat (you): 1 win, 1 loss",
    ]


def test_choosing_a_name_shows_it_everywhere(harness: SessionHarness) -> None:
    hangman_game(harness, "alice", win=True)
    prompt = choose(harness, "alice", None)
    assert (prompt.status, prompt.meta) == (
        10,
        "Choose a display name of at most 32 characters",
    )
    lines = masked(choose(harness, "alice", "Alice").body).splitlines()
    assert lines[4:8] == [
        "Your name is now “Alice”.",
        "",
        "You appear as “Alice”.",
        "=> /halloffame/name/<token> Change your name",
    ]
    assert section(lines, "## Hangman: most wins") == [
        "* 1. Alice (you): 1 win, 0 losses"
    ]
    bob_sees = harness.get("/halloffame", player="bob").lines
    assert section(bob_sees, "## Hangman: most wins") == ["* 1. Alice: 1 win, 0 losses"]


@pytest.mark.parametrize(
    ("typed", "shown"),
    [
        ("=> /evil Click me", "/evil Click me"),
        ("# Heading", "Heading"),
        ("## # ###", None),
        ("* item", "item"),
        ("> quote", "quote"),
        ("```", None),
        ("```python", "python"),
        ("two\r\nlines", "two lines"),
        ("line\u2028separator", "line separator"),
        ("\u202eright to left", "right to left"),
        ("\x1b[31mred\x1b[0m", "[31mred [0m"),
        ("  lots   of\tspace ", "lots of space"),
        ("=>\n=> again", "again"),
        ("漢字 ünïcödé", "漢字 ünïcödé"),
        ("a => b", "a => b"),
    ],
)
def test_names_lose_line_breaks_and_leading_markup(
    harness: SessionHarness, typed: str, shown: str | None
) -> None:
    page = choose(harness, "alice", typed)
    if shown is None:
        assert (page.status, page.meta) == (
            10,
            f"{quoted(typed.strip())} has nothing left once line breaks and markup"
            " are taken out: choose a display name of at most 32 characters",
        )
        assert halloffame.slab.peek_now(fingerprint_of("alice")) is None
        return
    assert page.status == 20
    record = halloffame.slab.peek_now(fingerprint_of("alice"))
    assert record == halloffame.FameRecord(name=shown)
    changed = (
        " Line breaks, control characters, leading markup and extra spaces are taken"
        " out, and wide or styled letters written plain."
    )
    assert page.lines[4] == f"Your name is now “{shown}”." + (
        changed if shown != typed else ""
    )


def test_names_longer_than_32_characters_are_refused(
    harness: SessionHarness,
) -> None:
    name(harness, "alice", "a" * MAX_NAME)
    page = choose(harness, "alice", "b" * 33)
    assert (page.status, page.meta) == (
        10,
        "That name is 33 characters long: choose a display name of at most 32"
        " characters",
    )
    assert halloffame.slab.peek_now(fingerprint_of("alice")) == halloffame.FameRecord(
        name="a" * MAX_NAME
    )


def test_longest_name_of_widest_characters_fits_its_slot() -> None:
    with opened():
        widest = halloffame.FameRecord(name="\U0001f600" * MAX_NAME)
        assert len(halloffame.slab.codec.encode(widest)) <= 192


def test_reading_the_hall_does_not_keep_other_players_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rankings and names are read without counting as the players' visits, so
    idle players still expire on time."""
    monkeypatch.setattr(hangman, "rng", Fixed())
    with opened(SlabOptions(max_records=64, idle_timeout=100)) as harness:
        name(harness, "alice", "Alice")
        hangman_game(harness, "alice", win=True)
        harness.clock.advance(99)
        lines = harness.get("/halloffame", player="bob").lines
        assert section(lines, "## Hangman: most wins") == [
            "* 1. Alice: 1 win, 0 losses"
        ]
        harness.clock.advance(1)
        lines = harness.get("/halloffame", player="bob").lines
        assert section(lines, "## Hangman: most wins") == []


def test_hall_alone_serves_the_games_it_ranks(harness: SessionHarness) -> None:
    for path, heading in [("/guess", "# Number guessing"), ("/hangman", "# Hangman")]:
        page = harness.get(path, player="alice")
        assert (page.status, page.lines[0]) == (20, heading)


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("abc", "'abc'"),
        ("\x00\r\n", "'\\x00\\r\\n'"),
        ("\u2028", "'\\u2028'"),
        ("é" * 30, "'" + "é" * 24 + "…'"),
        ("\x1b" * 10, "'" + "\\x1b" * 6 + "…'"),
    ],
)
def test_quoted_spells_out_invisible_characters_and_cuts(text: str, shown: str) -> None:
    assert quoted(text) == shown


@settings(max_examples=150, deadline=None)
@given(answer=player_input)
def test_any_name_gets_a_prompt_or_a_safe_page(answer: str) -> None:
    """Whatever a player types as a name: a 10 with a one-line reason, or a
    page where the name is one line of at most 32 characters that gemtext
    cannot read as markup, and every link of the page is the page's own."""
    with opened() as harness:
        page = choose(harness, "alice", answer)
        record = halloffame.slab.peek_now(fingerprint_of("alice"))
    assert page.status in (10, 20)
    assert "\r" not in page.meta and "\n" not in page.meta
    assert len(page.meta.encode()) < 1024
    if page.status == 10:
        assert record is None
        return
    assert record is not None
    chosen = record.name
    assert chosen == clean_name(answer)
    assert 1 <= len(chosen) <= MAX_NAME
    assert chosen.splitlines() == [chosen]
    assert chosen[0] not in "=#*>` " and chosen == chosen.strip()
    assert all(unicodedata.category(c)[0] != "C" for c in chosen)
    assert [
        line
        for line in masked(page.body).splitlines()
        if line.startswith(("=>", "#", "```"))
    ] == [
        "# Hall of fame",
        "=> /halloffame/name/<token> Change your name",
        "## Number guessing: fewest tries per game",
        "=> /guess Play number guessing",
        "## Hangman: most wins",
        "=> /hangman Play hangman",
        "=> / Back to the capsule",
    ]


def test_the_hall_is_ranked_again_at_most_once_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A view shows the standings read up to REFRESH seconds ago, however many
    views come: no player can make every request decode every record."""
    monkeypatch.setattr(hangman, "rng", Fixed())
    with opened() as harness:
        hangman_game(harness, "alice", win=True)
        hangman_game(harness, "bob", win=True)
        before = halloffame.standings.readings
        assert [
            f"* 1. {anonymous('alice')}: 1 win, 0 losses",
            f"* 1. {anonymous('bob')}: 1 win, 0 losses",
        ] == sorted(section(harness.get("/halloffame").lines, "## Hangman: most wins"))
        hangman_game(harness, "bob", win=True)
        for _ in range(50):
            harness.clock.advance(halloffame.REFRESH / 100)
            assert 2 == len(
                section(harness.get("/halloffame").lines, "## Hangman: most wins")
            )
        assert 1 == halloffame.standings.readings - before
        harness.clock.advance(halloffame.REFRESH / 2 + 0.001)
        assert [
            f"* 1. {anonymous('bob')}: 2 wins, 0 losses",
            f"* 2. {anonymous('alice')}: 1 win, 0 losses",
        ] == section(harness.get("/halloffame").lines, "## Hangman: most wins")
        assert 2 == halloffame.standings.readings - before


def test_views_during_a_reading_share_it_or_show_the_previous_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a store that answers later, the first views after the stores open
    wait for one reading between them; once there are standings, views during
    the next reading show those rather than wait."""
    monkeypatch.setattr(hangman, "rng", Fixed())
    harness = SessionHarness(halloffame.app, defaults=SMALL, stores=later_stores(0.5))
    clock = harness.clock

    def at_once(count: int) -> list[Page]:
        pages: list[Page] = []
        for number in range(count):
            harness.request("/halloffame", player=f"v{number}").addCallback(
                pages.append
            )
        while len(pages) < count:
            clock.advance(0.5)
        return pages

    try:
        clock.advance(0.5)
        before = halloffame.standings.readings
        first = at_once(5)
        assert 1 == halloffame.standings.readings - before
        clock.advance(halloffame.REFRESH)
        waited: list[Page] = []
        harness.request("/halloffame", player="reader").addCallback(waited.append)
        clock.advance(0.5)  # its visit began: it reads, a slice at a time
        shown = at_once(3)  # served from the previous standings meanwhile
        while not waited:
            clock.advance(0.5)
        assert 2 == halloffame.standings.readings - before
        assert {20} == {page.status for page in first + shown + waited}
    finally:
        halloffame.app.close(grace=0)
        clock.pump([0.5] * 4)


def test_the_hall_ranks_and_names_players_on_a_store_that_answers_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rankings and names are read through the store contract only: the same
    page, a little later, from a store in another process."""
    monkeypatch.setattr(hangman, "rng", Fixed())
    harness = SessionHarness(halloffame.app, defaults=SMALL, stores=later_stores(0.5))
    clock = harness.clock

    def get(path: str, player: str, query: str | None = None) -> Page:
        pages: list[Page] = []
        harness.request(path, player=player, query=query).addCallback(pages.append)
        while not pages:
            clock.advance(0.5)
        return pages[0]

    try:
        clock.advance(0.5)
        at = link_to(get("/halloffame", "alice"), "Choose your name")
        assert 20 == get(at, "alice", "Alice").status
        page = get("/hangman", "alice")
        for letter in "kite":
            page = get(link_to(page, "Guess a letter"), "alice", letter)
        lines = get("/halloffame", "bob").body.splitlines()
        assert ["* 1. Alice: 1 win, 0 losses"] == section(
            lines, "## Hangman: most wins"
        )
    finally:
        halloffame.app.close(grace=0)
        clock.pump([0.5] * 4)


@pytest.mark.parametrize("typed", ["Alice (you)", "(YOU)", "me(You)too"])
def test_a_name_cannot_hold_the_mark_of_the_viewers_own_rows(
    harness: SessionHarness, typed: str
) -> None:
    page = choose(harness, "mallory", typed)
    assert (
        10,
        "A name cannot hold “(you)”, which marks your own rows: choose a"
        " display name of at most 32 characters",
    ) == (page.status, page.meta)
    assert halloffame.slab.peek_now(fingerprint_of("mallory")) is None


def test_players_who_share_a_name_are_told_apart(harness: SessionHarness) -> None:
    for player in ("alice", "mallory"):
        name(harness, player, "Alice" if player == "alice" else "alice")
        hangman_game(harness, player, win=True)
    hangman_game(harness, "alice", win=True)
    harness.clock.advance(halloffame.REFRESH)  # past the names' pages' reading
    tag = {p: fingerprint_of(p)[:3].hex() for p in ("alice", "mallory")}
    assert [
        f"* 1. Alice #{tag['alice']} (you): 2 wins, 0 losses",
        f"* 2. alice #{tag['mallory']}: 1 win, 0 losses",
    ] == section(
        harness.get("/halloffame", player="alice").lines, "## Hangman: most wins"
    )
    assert [
        f"* 1. Alice #{tag['alice']}: 2 wins, 0 losses",
        f"* 2. alice #{tag['mallory']} (you): 1 win, 0 losses",
    ] == section(
        harness.get("/halloffame", player="mallory").lines, "## Hangman: most wins"
    )


@pytest.mark.parametrize(
    "typed",
    [
        "Alice (y\u03bfu)",  # a Greek omicron
        "Eve \uff08you\uff09",  # fullwidth brackets
        "me (YOU)",
    ],
)
def test_the_mark_cannot_be_imitated_with_lookalike_letters(
    harness: SessionHarness, typed: str
) -> None:
    page = choose(harness, "mallory", typed)
    assert 10 == page.status
    assert halloffame.slab.peek_now(fingerprint_of("mallory")) is None


def test_a_lookalike_of_a_name_is_told_apart_from_it(harness: SessionHarness) -> None:
    name(harness, "alice", "Alice")
    name(harness, "mallory", "\u0410lice")  # a Cyrillic capital A
    for player in ("alice", "mallory"):
        hangman_game(harness, player, win=True)
    harness.clock.advance(halloffame.REFRESH)  # past the names' pages' reading
    tag = fingerprint_of("mallory")[:3].hex()
    rows = section(
        harness.get("/halloffame", player="bob").lines, "## Hangman: most wins"
    )
    assert f"\u0410lice #{tag}" in " ".join(rows)


@pytest.mark.parametrize("typed", ["anonymous 0a1b2c", "Ada #e1d18a", "No#1"])
def test_a_name_cannot_pass_for_an_anonymous_player_or_a_tag(
    harness: SessionHarness, typed: str
) -> None:
    page = choose(harness, "mallory", typed)
    assert (
        10,
        "A name cannot hold # nor start with “anonymous”: those tell players apart:"
        " choose a display name of at most 32 characters",
    ) == (page.status, page.meta)


@settings(max_examples=60, deadline=None)
@given(answer=player_input)
def test_no_name_in_a_link_from_elsewhere_names_anybody(answer: str) -> None:
    """The public name as any page anywhere can write it: at the bare prompt,
    at a made-up token, at another player's own prompt. None names alice: the
    page says so, and links a prompt of her own."""
    with opened() as harness:
        name(harness, "alice", "Alice")
        theirs = name_prompt(harness, "mallory")
        for path in (
            "/halloffame/name",
            "/halloffame/name/",
            "/halloffame/name/aaaaaaaaaaaaaaaa",
            theirs,
        ):
            page = harness.get(path, player="alice", query=answer)
            assert (20, halloffame.NOT_YOURS) == (page.status, page.lines[4]), path
            assert name_prompt(harness, "alice") == link_to(page, "Change your name")
        assert 20 == harness.get("/halloffame", player="alice", query=answer).status
        assert halloffame.FameRecord("Alice") == halloffame.slab.peek_now(
            fingerprint_of("alice")
        )
        assert halloffame.slab.peek_now(fingerprint_of("mallory")) is None


def test_a_name_prompt_answered_after_the_name_changed_asks_again(
    harness: SessionHarness,
) -> None:
    """A prompt shown before the name last changed (another device, the Back
    key) names nobody: the page says so, and links a prompt that names."""
    old = name_prompt(harness, "alice")
    assert 20 == harness.get(old, player="alice", query="Alice").status
    page = harness.get(old, player="alice", query="Bob")
    assert (20, halloffame.NOT_YOURS) == (page.status, page.lines[4])
    assert "You appear as “Alice”." == page.lines[6]
    fresh = link_to(page, "Change your name")
    assert fresh == name_prompt(harness, "alice")
    assert 20 == harness.get(fresh, player="alice", query="Bob").status
    assert halloffame.FameRecord("Bob") == halloffame.slab.peek_now(
        fingerprint_of("alice")
    )
    # And the first prompt, once more: stale still.
    page = harness.get(old, player="alice", query="Alice")
    assert (20, halloffame.NOT_YOURS) == (page.status, page.lines[4])
    assert halloffame.FameRecord("Bob") == halloffame.slab.peek_now(
        fingerprint_of("alice")
    )
