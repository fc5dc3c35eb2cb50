"""Tic-tac-toe: the rules, the capsule's perfect play, and every page a player sees."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import given, settings

from jetforce_sesh import SessionApplication
from jetforce_sesh.games.tictactoe import (
    EMPTY,
    FREE,
    ME,
    NOT_YOURS,
    YOU,
    Board,
    app,
    best_move,
    is_over,
    play,
    winner,
)
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.games.playing import follow, link_to, masked, tokened, visit
from tests.strategies import player_input

PREFORMATTED_MAX = 40


@contextlib.contextmanager
def opened(application: SessionApplication) -> Iterator[SessionHarness]:
    """A harness on a fresh Clock, closing the app after: no test leaves its
    players, or the pet census's loop, running behind it."""
    harness = SessionHarness(application)
    try:
        yield harness
    finally:
        application.close()


def assert_tidy(page: Page) -> None:
    """A game page a real client shows well: heading first, labelled links,
    short preformatted lines, a way back to the capsule."""
    assert page.status == 20, (page.status, page.meta)
    assert page.meta == "text/gemini"
    lines = page.lines
    assert lines[0].startswith("# "), lines[0]
    preformatted = False
    for line in lines:
        if line.startswith("```"):
            preformatted = not preformatted
            continue
        if preformatted:
            assert len(line) <= PREFORMATTED_MAX, line
        elif line.startswith("=>"):
            assert len(line[2:].strip().split(maxsplit=1)) == 2, f"no label: {line}"
    assert not preformatted, "a preformatted block is left open"
    assert "=> / Back to the capsule" in lines


@pytest.fixture
def harness() -> Iterator[SessionHarness]:
    with opened(app) as opened_harness:
        yield opened_harness


def board_of(harness: SessionHarness, player: str = "player") -> list[str]:
    """The rows of the player's board, as drawn on the page."""
    lines = harness.get("/tictactoe", player=player).lines
    start = lines.index("```Tic-tac-toe board") + 1
    return lines[start : start + 5 : 2]


def cell(page: Page, number: int) -> str:
    """The link of ``page`` that plays cell ``number``."""
    url = link_to(page, f"Cell {number},")
    assert tokened("/tictactoe/move", url) and url.endswith(f"?{number}"), url
    return url


def play_moves(
    harness: SessionHarness, cells: list[int], player: str = "player"
) -> Page:
    """Play each of ``cells`` in turn, each by its link on the page before."""
    page = harness.get("/tictactoe", player=player)
    for number in cells:
        page = visit(harness, cell(page, number), player=player)
    return page


def prompt_of(harness: SessionHarness, player: str = "player") -> str:
    """Where the game page asks this player to type a cell: a link of theirs."""
    url = link_to(harness.get("/tictactoe", player=player), "Type a cell number")
    assert tokened("/tictactoe/move", url), url
    return url


def board_record(player: str = "player") -> Board:
    board = app.slabs[Board].peek_now(fingerprint_of(player))
    assert board is not None
    return board


# -- the capsule's play ---------------------------------------------------------


def _games_against_capsule(cells: str) -> Iterator[str]:
    """Every finished board reachable when X tries every move and O answers."""
    if is_over(cells):
        yield cells
        return
    for index, mark in enumerate(cells):
        if mark != FREE:
            continue
        after = play(cells, index, YOU)
        if not is_over(after):
            after = play(after, best_move(after, ME)[1], ME)
        yield from _games_against_capsule(after)


def test_capsule_never_loses_whatever_the_player_does() -> None:
    """Exhaustive: whoever starts, every line X plays ends in O's win or a draw."""
    opening = play(EMPTY, best_move(EMPTY, ME)[1], ME)
    endings = [*_games_against_capsule(EMPTY), *_games_against_capsule(opening)]
    assert len(endings) > 100
    assert [cells for cells in endings if winner(cells) == YOU] == []


def test_capsule_takes_a_win_before_blocking() -> None:
    """O can win at cell 3 or block X at cell 9: it wins."""
    assert best_move("OO.XX....", ME) == (1 + 4, 2)


def test_capsule_blocks_a_threat() -> None:
    assert best_move("XX..O....", ME)[1] == 2


def test_best_move_on_a_full_board_names_the_board() -> None:
    with pytest.raises(ValueError) as raised:
        best_move("XOXXOOOXX", ME)
    assert str(raised.value) == (
        "board 'XOXXOOOXX' has no free cell: ask only while it has"
    )


def test_random_legal_players_never_beat_the_capsule(harness: SessionHarness) -> None:
    """300 games of random legal moves through the pages' links: no win, all
    counted."""
    rng = random.Random(1965)
    games = 300
    page = harness.get("/tictactoe")
    for _ in range(games):
        while "Play again" not in page.body:
            free = [
                line.split()[1]
                for line in page.lines
                if line.startswith("=> /tictactoe/move/")
                and line.endswith(("left", "top", "right", "centre", "bottom"))
            ]
            page = visit(harness, rng.choice(free))
        page = follow(harness, page, "Play again")
    tally = next(line for line in page.lines if line.startswith("Games:"))
    won, drawn, lost = (int(word.rstrip(",.")) for word in tally.split()[3::2])
    assert (won, won + drawn + lost) == (0, games)
    assert lost > 0


# -- pages ------------------------------------------------------------------------


def test_new_player_sees_an_empty_board_and_starts(harness: SessionHarness) -> None:
    page = harness.get("/tictactoe")
    assert masked(page.body) == "\n".join(
        [
            "# Tic-tac-toe",
            "",
            "You are X and I am O. We take turns to start: this game you start.",
            "",
            "```Tic-tac-toe board",
            " 1 | 2 | 3",
            "---+---+---",
            " 4 | 5 | 6",
            "---+---+---",
            " 7 | 8 | 9",
            "```",
            "",
            "Your move: pick a free cell.",
            "",
            "=> /tictactoe/move/<token>?1 Cell 1, top left",
            "=> /tictactoe/move/<token>?2 Cell 2, top",
            "=> /tictactoe/move/<token>?3 Cell 3, top right",
            "=> /tictactoe/move/<token>?4 Cell 4, left",
            "=> /tictactoe/move/<token>?5 Cell 5, centre",
            "=> /tictactoe/move/<token>?6 Cell 6, right",
            "=> /tictactoe/move/<token>?7 Cell 7, bottom left",
            "=> /tictactoe/move/<token>?8 Cell 8, bottom",
            "=> /tictactoe/move/<token>?9 Cell 9, bottom right",
            "=> /tictactoe/move/<token> Type a cell number",
            "",
            "## Your record",
            "",
            "Games: 0. Won 0, drawn 0, lost 0.",
            "",
            "=> / Back to the capsule",
            "",
        ]
    )
    # One token for the whole board: each cell is the prompt's answer.
    assert 1 == len({line.split()[1].partition("?")[0] for line in page.lines[14:24]})


def test_a_move_is_answered_at_once(harness: SessionHarness) -> None:
    page = play_moves(harness, [5])
    assert page.lines[2] == "You played cell 5. I played cell 1."
    assert board_of(harness) == [" O | 2 | 3", " 4 | X | 6", " 7 | 8 | 9"]
    # All nine, in order, taken or not: link [n] of a numbering client is cell n.
    assert [line for line in masked(page.body).splitlines() if line.startswith("=> ")][
        :9
    ] == [
        "=> /tictactoe/move/<token>?1 Cell 1, top left (taken by O)",
        "=> /tictactoe/move/<token>?2 Cell 2, top",
        "=> /tictactoe/move/<token>?3 Cell 3, top right",
        "=> /tictactoe/move/<token>?4 Cell 4, left",
        "=> /tictactoe/move/<token>?5 Cell 5, centre (taken by X)",
        "=> /tictactoe/move/<token>?6 Cell 6, right",
        "=> /tictactoe/move/<token>?7 Cell 7, bottom left",
        "=> /tictactoe/move/<token>?8 Cell 8, bottom",
        "=> /tictactoe/move/<token>?9 Cell 9, bottom right",
    ]
    assert_tidy(page)


def test_a_scripted_player_loses_and_the_loss_is_counted(
    harness: SessionHarness,
) -> None:
    page = play_moves(harness, [1, 2, 4])
    assert page.lines[2] == "You played cell 4. I played cell 7."
    assert board_of(harness) == [" X | X | O", " X | O | 6", " O | 8 | 9"]
    assert "I win: three in a row. Better luck next game." in page.lines
    assert "=> /tictactoe/new/<token> Play again (I start)" in (
        masked(page.body).splitlines()
    )
    assert not any(line.startswith("=> /tictactoe/move") for line in page.lines)
    assert "Games: 1. Won 0, drawn 0, lost 1." in page.lines
    assert_tidy(page)


def test_a_scripted_player_draws_and_the_draw_is_counted(
    harness: SessionHarness,
) -> None:
    page = play_moves(harness, [1, 2, 7, 6, 9])
    assert page.lines[2] == "You played cell 9."
    assert board_of(harness) == [" X | X | O", " O | O | X", " X | O | X"]
    assert "A draw. Nobody beats perfect play, but you did not lose." in page.lines
    assert "Games: 1. Won 0, drawn 1, lost 0." in page.lines


def test_starts_alternate_and_the_capsule_opens_in_a_corner(
    harness: SessionHarness,
) -> None:
    page = follow(harness, play_moves(harness, [1, 2, 4]), "Play again")
    assert page.lines[2] == "New game: I start, in cell 1."
    assert page.lines[4] == (
        "You are X and I am O. We take turns to start: this game I start."
    )
    assert board_of(harness) == [" O | 2 | 3", " 4 | 5 | 6", " 7 | 8 | 9"]
    page = follow(harness, play_moves(harness, [2, 3]), "Play again")
    assert page.lines[2] == "New game: you start."
    assert board_of(harness) == [" 1 | 2 | 3", " 4 | 5 | 6", " 7 | 8 | 9"]
    assert "Games: 2. Won 0, drawn 0, lost 2." in page.lines


def test_new_game_while_one_is_going_keeps_the_board(harness: SessionHarness) -> None:
    play_moves(harness, [5])
    page = harness.get("/tictactoe/new")
    assert page.lines[2] == "This game is still going: finish it first."
    assert board_of(harness) == [" O | 2 | 3", " 4 | X | 6", " 7 | 8 | 9"]


# -- moves only at the board's own links ----------------------------------------------


def test_a_new_game_starts_only_at_the_link_the_page_gave(
    harness: SessionHarness,
) -> None:
    over = play_moves(harness, [1, 2, 4])
    theirs = link_to(play_moves(harness, [1, 2, 4], player="mallory"), "Play again")
    for path in ("/tictactoe/new", "/tictactoe/new/aaaaaaaaaaaaaaaa", theirs):
        page = harness.get(path, query="yes")
        assert (20, NOT_YOURS) == (page.status, page.lines[2]), path
        assert board_of(harness) == [" X | X | O", " X | O | 6", " O | 8 | 9"]
    again = link_to(over, "Play again")
    assert "New game: I start, in cell 1." == visit(harness, again).lines[2]
    # The same link again (the Back key): the game it was for is over.
    assert (
        "This game is still going: finish it first." == (visit(harness, again).lines[2])
    )
    assert Board("O........", False, 0, 0, 1) == board_record()


@settings(max_examples=100, deadline=None)
@given(junk=player_input)
def test_no_move_in_a_link_from_elsewhere_is_played(junk: str) -> None:
    """A cell in the URL as any page anywhere can write it: the old numbered
    links, the prompt with the cell as its answer, a made-up token, another
    player's own links. Each gets the board as it is, saying nothing was
    played, with the player's own links."""
    with opened(app) as harness:
        play_moves(harness, [5])
        mallory = harness.get("/tictactoe", player="mallory")
        for url in (
            "/tictactoe/move/2",
            "/tictactoe/move/" + quote(junk, safe=""),
            "/tictactoe/move?2",
            "/tictactoe/move/aaaaaaaaaaaaaaaa?2",
            cell(mallory, 2),
            link_to(mallory, "Type a cell number") + "?" + quote(junk, safe=""),
        ):
            page = visit(harness, url)
            assert (20, NOT_YOURS) == (page.status, page.lines[2]), url
            assert_tidy(page)
            assert cell(page, 2) == cell(harness.get("/tictactoe"), 2)
        assert board_record() == Board("O...X....")


def test_a_move_from_an_older_board_plays_nothing(harness: SessionHarness) -> None:
    """A cell link of a board the player has moved on from (another device,
    the Back key): nothing is played, and the board shows as it is now."""
    first = harness.get("/tictactoe")
    visit(harness, cell(first, 5))
    page = visit(harness, cell(first, 9))
    assert (NOT_YOURS, [" O | 2 | 3", " 4 | X | 6", " 7 | 8 | 9"]) == (
        page.lines[2],
        board_of(harness),
    )
    assert (
        "You played cell 9. I played cell 3." == visit(harness, cell(page, 9)).lines[2]
    )


# -- bad moves are asked again, saying what was wrong --------------------------------


@pytest.mark.parametrize(
    ("answer", "meta"),
    [
        ("0", "There is no cell '0': the cells are numbered 1 to 9"),
        ("10", "There is no cell '10': the cells are numbered 1 to 9"),
        ("-3", "There is no cell '-3': the cells are numbered 1 to 9"),
        ("x", "'x' is not a cell: pick a number from 1 to 9"),
        ("x\n\x1b", "'x\\n\\x1b' is not a cell: pick a number from 1 to 9"),
        (" ", "No cell given: pick a cell from 1 to 9"),
        ("a" * 30, "'" + "a" * 24 + "…' is not a cell: pick a number from 1 to 9"),
        ("1/2", "'1/2' is not a cell: pick a number from 1 to 9"),
    ],
)
def test_a_cell_that_is_no_cell_is_asked_again(
    harness: SessionHarness, answer: str, meta: str
) -> None:
    play_moves(harness, [5])
    page = harness.get(prompt_of(harness), query=answer)
    assert (10, meta) == (page.status, page.meta)
    assert board_of(harness) == [" O | 2 | 3", " 4 | X | 6", " 7 | 8 | 9"]


def test_a_taken_cell_is_asked_again(harness: SessionHarness) -> None:
    page = play_moves(harness, [5])
    for taken in (5, 1):
        again = visit(harness, cell(page, taken))
        assert (10, f"Cell {taken} is taken: pick a free cell") == (
            again.status,
            again.meta,
        )
    assert board_of(harness) == [" O | 2 | 3", " 4 | X | 6", " 7 | 8 | 9"]


def test_a_move_after_the_game_is_over_is_explained(harness: SessionHarness) -> None:
    before_the_end = play_moves(harness, [1, 2])
    page = visit(harness, cell(before_the_end, 4))
    assert "Games: 1. Won 0, drawn 0, lost 1." in page.lines
    page = visit(harness, cell(before_the_end, 9))
    assert page.lines[2] == "This game is over: start a new one to play."
    assert harness.get("/tictactoe/move").lines[2] == page.lines[2]
    assert "Games: 1. Won 0, drawn 0, lost 1." in page.lines


def test_the_typed_move_prompts_then_reprompts_saying_why(
    harness: SessionHarness,
) -> None:
    at = prompt_of(harness)

    def ask(query: str | None) -> tuple[int, str]:
        page = harness.get(at, query=query)
        return page.status, page.meta

    assert ask(None) == (10, "Which cell? 1 to 9, row by row from top left")
    assert ask("12") == (10, "There is no cell '12': the cells are numbered 1 to 9")
    assert ask("five") == (10, "'five' is not a cell: pick a number from 1 to 9")
    assert ask(" 5 ")[0] == 20
    # The prompt was for the empty board: the board now needs another.
    assert ask("9") == (20, "text/gemini")
    at = prompt_of(harness)
    assert ask("5") == (10, "Cell 5 is taken: pick a free cell")
    assert board_of(harness) == [" O | 2 | 3", " 4 | X | 6", " 7 | 8 | 9"]


@settings(max_examples=150, deadline=None)
@given(answer=player_input)
def test_any_typed_cell_gets_a_page_or_a_reprompt(answer: str) -> None:
    with opened(app) as harness:
        page = harness.get(prompt_of(harness), query=answer)
        if page.status == 20:
            assert page.lines[2].startswith(f"You played cell {answer.strip()}.")
            assert_tidy(page)
        else:
            assert page.status == 10
            assert "\r" not in page.meta and "\n" not in page.meta
            assert len(page.meta.encode()) <= 1024
            assert page.meta.endswith(("1 to 9", "1 to 9.", "top left")), page.meta


# -- players are kept apart -----------------------------------------------------------


def test_two_players_interleaved_keep_their_own_games(harness: SessionHarness) -> None:
    play_moves(harness, [5], player="alice")
    play_moves(harness, [1], player="bob")
    play_moves(harness, [2], player="alice")
    assert board_of(harness, "alice") == [" O | X | 3", " 4 | X | 6", " 7 | O | 9"]
    assert board_of(harness, "bob") == [" X | 2 | 3", " 4 | O | 6", " 7 | 8 | 9"]
    page = play_moves(harness, [5], player="bob")
    assert (page.status, page.meta) == (10, "Cell 5 is taken: pick a free cell")
    page = play_moves(harness, [1], player="alice")
    assert (page.status, page.meta) == (10, "Cell 1 is taken: pick a free cell")
    play_moves(harness, [2, 4], player="bob")
    assert (
        "Games: 1. Won 0, drawn 0, lost 1."
        in harness.get("/tictactoe", player="bob").lines
    )
    assert (
        "Games: 0. Won 0, drawn 0, lost 0."
        in harness.get("/tictactoe", player="alice").lines
    )


def test_without_a_certificate_the_game_asks_for_one(harness: SessionHarness) -> None:
    page = harness.get("/tictactoe", player=None)
    assert page.status == 60


def test_the_fullest_record_fits_its_slot(harness: SessionHarness) -> None:
    codec = app.slabs[Board].codec
    big = Board("XOXOXOXOX", False, 10**15, 10**15, 10**15)
    assert len(codec.encode(big)) <= 128
