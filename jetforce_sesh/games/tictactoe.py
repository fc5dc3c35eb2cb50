"""Tic-tac-toe against the capsule, which plays perfectly and never loses.

The record keeps the board as a nine-character string and the player's tally. The
capsule answers every move at once, so whenever a page is shown it is the player's
turn. Its moves come from a memoized minimax over every reachable board.

A move is the answer to the prompt at ``/tictactoe/move/<token>``, a link only
the capsule could have shown this player for this very board; the page links
each cell as that prompt answered (``/tictactoe/move/<token>?5``), so a client
plays a cell in one click. A move in a link from elsewhere, or from an older
board (another device, the Back key), plays nothing: the page says so and
shows the board as it is. Run it alone with
``jetforce-sesh --app jetforce_sesh.games.tictactoe:app``.
"""

from __future__ import annotations

import functools

import attrs
from jetforce.app.base import Request, Response, Status

from jetforce_sesh import (
    SessionApplication,
    ask_for,
    confirm_path,
    is_confirmed,
    quoted,
    ready,
    with_token,
)

app = SessionApplication(
    "Tic-tac-toe",
    entry="/tictactoe",
    description="three in a row against a capsule that never loses",
)

YOU, ME, FREE = "X", "O", "."
EMPTY = FREE * 9
LINES = (
    (0, 1, 2),
    (3, 4, 5),
    (6, 7, 8),
    (0, 3, 6),
    (1, 4, 7),
    (2, 5, 8),
    (0, 4, 8),
    (2, 4, 6),
)
CELL_NAMES = (
    "top left",
    "top",
    "top right",
    "left",
    "centre",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
GAME_OVER = "This game is over: start a new one to play."
#: What a move from a link the page did not give this player says.
NOT_YOURS = (
    "Nothing was played: that link came from an older board, another device or"
    " somewhere else. Here is the board as it is now."
)
WHICH = "Which cell? 1 to 9, row by row from top left"


@attrs.define
class Board:
    cells: str = EMPTY
    you_start: bool = True
    wins: int = 0
    draws: int = 0
    losses: int = 0


# The defaults take 50 bytes, a full board with tallies in the trillions 74.
slab = app.slab(Board, record_size=128)


# -- the rules and the capsule's play -------------------------------------------


def winner(cells: str) -> str | None:
    """The mark with three in a row on ``cells``, or None."""
    for a, b, c in LINES:
        if cells[a] != FREE and cells[a] == cells[b] == cells[c]:
            return cells[a]
    return None


def is_over(cells: str) -> bool:
    return winner(cells) is not None or FREE not in cells


def play(cells: str, index: int, mark: str) -> str:
    return cells[:index] + mark + cells[index + 1 :]


@functools.cache
def best_move(cells: str, mark: str) -> tuple[int, int]:
    """(score, cell index) of ``mark``'s best move; score > 0 wins, < 0 loses.

    A won game scores one more than the cells left free, so a quicker win and a
    slower loss score higher. Ties go to the lowest cell: play is repeatable.
    """
    other = ME if mark == YOU else YOU
    best: tuple[int, int] | None = None
    for index, cell in enumerate(cells):
        if cell != FREE:
            continue
        after = play(cells, index, mark)
        if winner(after) == mark:
            score = 1 + after.count(FREE)
        elif FREE not in after:
            score = 0
        else:
            score = -best_move(after, other)[0]
        if best is None or score > best[0]:
            best = (score, index)
    if best is None:
        raise ValueError(f"board {cells!r} has no free cell: ask only while it has")
    return best


def reply(board: Board) -> int | None:
    """Make the capsule's move if the game goes on, and count the game if it ends.

    Returns the cell index the capsule played, or None.
    """
    index = None
    if not is_over(board.cells):
        _, index = best_move(board.cells, ME)
        board.cells = play(board.cells, index, ME)
    if is_over(board.cells):
        mark = winner(board.cells)
        if mark == YOU:
            board.wins += 1
        elif mark == ME:
            board.losses += 1
        else:
            board.draws += 1
    return index


# -- reading what the player sent -------------------------------------------------


def parse_cell(text: str) -> int | str:
    """The cell index (0-8) ``text`` names, or a sentence saying what is wrong."""
    answer = text.strip()
    if not answer:
        return "No cell given: pick a cell from 1 to 9."
    if len(answer) == 1 and "1" <= answer <= "9":
        return int(answer) - 1
    digits = answer.lstrip("+-")
    if digits.isascii() and digits.isdigit():
        return f"There is no cell {quoted(answer)}: the cells are numbered 1 to 9."
    return f"{quoted(answer)} is not a cell: pick a number from 1 to 9."


# -- pages --------------------------------------------------------------------


def board_block(cells: str) -> list[str]:
    """The board as a preformatted block; free cells show their numbers."""
    marks = [mark if mark != FREE else str(i + 1) for i, mark in enumerate(cells)]
    rows = [" " + " | ".join(marks[r : r + 3]) for r in (0, 3, 6)]
    rule = "---+---+---"
    return ["```Tic-tac-toe board", rows[0], rule, rows[1], rule, rows[2], "```"]


def outcome(cells: str) -> str:
    mark = winner(cells)
    if mark == YOU:
        return "You win! Three in a row. (That should not happen: tell the author.)"
    if mark == ME:
        return "I win: three in a row. Better luck next game."
    if FREE not in cells:
        return "A draw. Nobody beats perfect play, but you did not lose."
    return "Your move: pick a free cell."


def page(request: Request, board: Board, note: str = "") -> Response:
    """The game page: an optional note, the board, the moves, the tally.

    Its links are made for this player and this very board (the record), so
    each works once: the next move makes another board.
    """
    starter = "you start" if board.you_start else "I start"
    lines = ["# Tic-tac-toe", ""]
    if note:
        lines += [note, ""]
    lines += [
        f"You are X and I am O. We take turns to start: this game {starter}.",
        "",
        *board_block(board.cells),
        "",
        outcome(board.cells),
        "",
    ]
    if is_over(board.cells):
        next_starter = "I start" if board.you_start else "you start"
        again = confirm_path(request, "/tictactoe/new", board)
        lines.append(f"=> {again} Play again ({next_starter})")
    else:
        move = confirm_path(request, "/tictactoe/move", board)
        # All nine cells, always in this order: clients that follow links by
        # number ([1] to [9]) then play the cell of that number.
        lines += [
            f"=> {move}?{i + 1} Cell {i + 1}, {CELL_NAMES[i]}"
            + ("" if mark == FREE else f" (taken by {mark})")
            for i, mark in enumerate(board.cells)
        ]
        lines.append(f"=> {move} Type a cell number")
    played = board.wins + board.draws + board.losses
    lines += [
        "",
        "## Your record",
        "",
        f"Games: {played}. Won {board.wins}, drawn {board.draws}, lost {board.losses}.",
        "",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


# -- routes -------------------------------------------------------------------


@app.session_route("/tictactoe", record=Board)
async def show(request: Request, record: Board) -> Response:
    await ready()  # the secret the page's links are made under
    return page(request, record)


@app.session_route(with_token("/tictactoe/new"), record=Board)
async def new_game(
    request: Request, record: Board, token: str | None = None
) -> Response:
    await ready()
    if not is_over(record.cells):
        return page(request, record, "This game is still going: finish it first.")
    if not is_confirmed(request, token, "/tictactoe/new", record):
        return page(request, record, NOT_YOURS)
    record.cells = EMPTY
    record.you_start = not record.you_start
    if record.you_start:
        return page(request, record, "New game: you start.")
    _, index = best_move(EMPTY, ME)
    record.cells = play(EMPTY, index, ME)
    return page(request, record, f"New game: I start, in cell {index + 1}.")


# [\s\S] rather than with_token()'s [^/]: whatever follows /tictactoe/move (an
# old numbered cell link, a cell with a slash or a newline in it) reaches the
# handler as a token that is not good, and gets the board, not "Not found".
@app.session_route(r"/tictactoe/move(?:/(?P<token>[\s\S]*))?", record=Board)
async def move(
    request: Request,
    record: Board,
    token: str | None = None,
) -> Response:
    await ready()
    if is_over(record.cells):
        return page(request, record, GAME_OVER)
    # The cell is the answer to the prompt, whether typed or carried by one of
    # the page's links; a move at a link the page did not give for this board
    # gets the board as it is, and plays nothing.
    answer = ask_for(
        request,
        token,
        "/tictactoe/move",
        record,
        WHICH,
        elsewhere=lambda _: page(request, record, NOT_YOURS),
    )
    if isinstance(answer, Response):
        return answer
    index = parse_cell(answer)
    if isinstance(index, str):
        return Response(Status.INPUT, index.rstrip("."))  # a prompt, not a page
    if record.cells[index] != FREE:
        return Response(Status.INPUT, f"Cell {index + 1} is taken: pick a free cell")
    record.cells = play(record.cells, index, YOU)
    note = f"You played cell {index + 1}."
    mine = reply(record)
    if mine is not None:
        note += f" I played cell {mine + 1}."
    return page(request, record, note)
