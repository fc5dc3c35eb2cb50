"""Tic-tac-toe and the pet over real TLS, each served alone as its docstring says.

Every request is a real Gemini request from a real client certificate to the real
``jetforce-sesh`` launcher. The pet's slow side (falling ill after hours, getting
better after half an hour) cannot be reached here without waiting: it is pinned
on a Clock in tests/games/test_pet.py. Here the pet is fed, played with and named.

The players follow the links the pages give, as a person's client does: every
move is taken at a link the capsule made for that player and that board (or
pet), which no test (and no stranger) writes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.test_games_words import agunua, link
from tests.support import ClientCert, Reply, Server, serve

pytestmark = pytest.mark.e2e

MakeCert = Callable[[str], ClientCert]


@pytest.fixture(scope="module")
def board_server() -> Iterator[Server]:
    yield from serve(["--app", "jetforce_sesh.games.tictactoe:app"])


@pytest.fixture(scope="module")
def pet_server() -> Iterator[Server]:
    yield from serve(["--app", "jetforce_sesh.games.pet:app"])


def lines(reply: Reply) -> list[str]:
    assert (reply.status, reply.meta) == (20, "text/gemini"), reply
    return reply.body.splitlines()


def board(server: Server, cert: ClientCert) -> list[str]:
    page = lines(server.request("/tictactoe", cert))
    start = page.index("```Tic-tac-toe board") + 1
    return page[start : start + 5 : 2]


def free_cells(page: list[str]) -> list[str]:
    return [
        line.split()[1]
        for line in page
        if line.startswith("=> /tictactoe/move/") and line.split()[2] == "Cell"
        if not line.endswith(")")
    ]


def play(server: Server, cert: ClientCert, *cells: int) -> list[str]:
    """Play each of ``cells`` by its link on the page before; the last page."""
    page = lines(server.request("/tictactoe", cert))
    for cell in cells:
        page = lines(server.request(link(page, f"Cell {cell},"), cert))
    return page


# -- tic-tac-toe --------------------------------------------------------------


def test_tictactoe_scripted_player_loses(
    board_server: Server, make_cert: MakeCert
) -> None:
    cert = make_cert("ttt-loser")
    page = play(board_server, cert, 1, 2, 4)
    assert page[2] == "You played cell 4. I played cell 7."
    assert "I win: three in a row. Better luck next game." in page
    assert "Games: 1. Won 0, drawn 0, lost 1." in page
    assert board(board_server, cert) == [" X | X | O", " X | O | 6", " O | 8 | 9"]


def test_tictactoe_best_a_player_can_do_is_draw(
    board_server: Server, make_cert: MakeCert
) -> None:
    """There is no win to script: perfect play by the player ends in a draw."""
    cert = make_cert("ttt-drawer")
    page = play(board_server, cert, 1, 2, 7, 6, 9)
    assert "A draw. Nobody beats perfect play, but you did not lose." in page
    assert "Games: 1. Won 0, drawn 1, lost 0." in page
    page = lines(board_server.request(link(page, "Play again"), cert))
    assert page[2] == "New game: I start, in cell 1."


def test_tictactoe_random_players_never_win_over_tls(
    board_server: Server, make_cert: MakeCert
) -> None:
    """Two random legal players, their games interleaved move by move."""
    rng = random.Random(7)
    certs = [make_cert("ttt-random-a"), make_cert("ttt-random-b")]
    pages = {
        cert.name: lines(board_server.request("/tictactoe", cert)) for cert in certs
    }
    games = dict.fromkeys(pages, 0)
    while min(games.values()) < 6:
        for cert in certs:
            page = pages[cert.name]
            if any(
                line.split()[2:4] == ["Play", "again"]
                for line in page
                if line.startswith("=> ")
            ):
                games[cert.name] += 1
                page = lines(board_server.request(link(page, "Play again"), cert))
            else:
                page = lines(board_server.request(rng.choice(free_cells(page)), cert))
            pages[cert.name] = page
    for cert in certs:
        tally = next(line for line in pages[cert.name] if line.startswith("Games:"))
        assert tally.startswith(f"Games: {games[cert.name]}. Won 0,"), tally


def test_tictactoe_players_are_kept_apart(
    board_server: Server, make_cert: MakeCert
) -> None:
    alice, bob = make_cert("ttt-alice"), make_cert("ttt-bob")
    alice_page = play(board_server, alice, 5)
    bob_page = play(board_server, bob, 1)
    # A cell the capsule took on each board, by that board's own link: its
    # answer to alice's 5 (cell 1), and to bob's 1 (cell 5).
    reply = board_server.request(link(alice_page, "Cell 1,"), alice)
    assert (reply.status, reply.meta) == (10, "Cell 1 is taken: pick a free cell")
    reply = board_server.request(link(bob_page, "Cell 5,"), bob)
    assert (reply.status, reply.meta) == (10, "Cell 5 is taken: pick a free cell")
    assert board(board_server, alice) == [" O | 2 | 3", " 4 | X | 6", " 7 | 8 | 9"]
    assert board(board_server, bob) == [" X | 2 | 3", " 4 | O | 6", " 7 | 8 | 9"]


def test_tictactoe_a_move_in_a_link_from_elsewhere_plays_nothing(
    board_server: Server, make_cert: MakeCert
) -> None:
    """The old numbered cell link, the cell as the prompt's answer, and
    another player's own link, over real TLS: each shows the board, saying
    nothing was played."""
    victim, mallory = make_cert("ttt-victim"), make_cert("ttt-mallory")
    theirs = link(lines(board_server.request("/tictactoe", mallory)), "Cell 5,")
    nothing = (
        "Nothing was played: that link came from an older board, another device"
        " or somewhere else. Here is the board as it is now."
    )
    for path, query in (("/tictactoe/move/5", None), ("/tictactoe/move", "5")):
        page = lines(board_server.request(path, victim, query=query))
        assert page[2] == nothing, page
    page = lines(board_server.request(theirs, victim))
    assert page[2] == nothing, page
    assert board(board_server, victim) == [" 1 | 2 | 3", " 4 | 5 | 6", " 7 | 8 | 9"]


def test_tictactoe_played_to_its_end_by_an_independent_client(
    board_server: Server, make_cert: MakeCert
) -> None:
    """agunua plays by the links alone, no token typed: the cells' links
    (a token in the path, the cell as its query) play, game after game."""
    cert = make_cert("ttt-agunua")
    page = agunua(board_server, cert, "/tictactoe")
    for cell in (1, 2, 7, 6, 9):
        page = agunua(board_server, cert, link(page, f"Cell {cell},"))
    assert "A draw. Nobody beats perfect play, but you did not lose." in page
    page = agunua(board_server, cert, link(page, "Play again"))
    assert page[2] == "New game: I start, in cell 1."


@pytest.mark.parametrize(
    ("answer", "meta"),
    [
        ("0", "There is no cell '0': the cells are numbered 1 to 9"),
        ("10", "There is no cell '10': the cells are numbered 1 to 9"),
        ("x", "'x' is not a cell: pick a number from 1 to 9"),
        ("\x00\r\n", "'\\x00' is not a cell: pick a number from 1 to 9"),
        ("漢字", "'漢字' is not a cell: pick a number from 1 to 9"),
        (
            "9" * 400,
            "There is no cell '" + "9" * 24 + "…': the cells are numbered 1 to 9",
        ),
    ],
)
def test_tictactoe_bad_cells_over_tls_are_asked_again(
    board_server: Server, make_cert: MakeCert, answer: str, meta: str
) -> None:
    cert = make_cert("ttt-typo")
    at = link(lines(board_server.request("/tictactoe", cert)), "Type a cell number")
    reply = board_server.request(at, cert, query=answer)
    assert (reply.status, reply.meta) == (10, meta)


def test_tictactoe_typed_move_over_tls(
    board_server: Server, make_cert: MakeCert
) -> None:
    cert = make_cert("ttt-typist")
    at = link(lines(board_server.request("/tictactoe", cert)), "Type a cell number")
    reply = board_server.request(at, cert)
    assert (reply.status, reply.meta) == (
        10,
        "Which cell? 1 to 9, row by row from top left",
    )
    reply = board_server.request(at, cert, query="ten")
    assert (reply.status, reply.meta) == (
        10,
        "'ten' is not a cell: pick a number from 1 to 9",
    )
    page = lines(board_server.request(at, cert, query="5"))
    assert page[2] == "You played cell 5. I played cell 1."
    # A client that follows links by number: link [n] is cell n, taken or not.
    links = [line for line in page if line.startswith("=> ")]
    assert [f"Cell {n}," for n in range(1, 10)] == [
        line.split()[2] + " " + line.split()[3] for line in links[:9]
    ]
    taken = board_server.request(links[0].split()[1], cert)
    assert (taken.status, taken.meta) == (10, "Cell 1 is taken: pick a free cell")


def test_tictactoe_without_a_certificate_is_60(board_server: Server) -> None:
    reply = board_server.request("/tictactoe")
    assert reply.status == 60


# -- the pet ---------------------------------------------------------------------


def act(server: Server, cert: ClientCert, label: str) -> list[str]:
    """Look at the pet, then follow the page's link ``label`` (Feed, Play)."""
    page = lines(server.request("/pet", cert))
    return lines(server.request(link(page, label), cert))


def test_pet_fed_and_played_with_is_happy(
    pet_server: Server, make_cert: MakeCert
) -> None:
    """The pet's win: from hatching to happy in two actions."""
    cert = make_cert("pet-keeper")
    page = lines(pet_server.request("/pet", cert))
    assert page[2] == "An egg hatched! This little one is yours to look after."
    assert "Your pet is content." in page
    page = lines(pet_server.request(link(page, "Feed"), cert))
    assert page[2] == "Munch munch."
    page = lines(pet_server.request(link(page, "Play"), cert))
    assert page[2] == "You play chase."
    assert "Your pet is happy." in page
    assert "  (^_^)" in page
    assert "Hatched just now. Meals: 1. Games: 1. Times ill: 0." in page


def test_pet_fed_and_played_with_by_an_independent_client(
    pet_server: Server, make_cert: MakeCert
) -> None:
    cert = make_cert("pet-agunua")
    page = agunua(pet_server, cert, "/pet")
    page = agunua(pet_server, cert, link(page, "Feed"))
    assert page[2] == "Munch munch."
    page = agunua(pet_server, cert, link(page, "Play"))
    assert (page[2], True) == ("You play chase.", "Your pet is happy." in page)


def test_pet_refuses_a_second_meal(pet_server: Server, make_cert: MakeCert) -> None:
    cert = make_cert("pet-feeder")
    fed = act(pet_server, cert, "Feed")
    page = lines(pet_server.request(link(fed, "Feed"), cert))
    assert page[2] == "It is not hungry: it sniffs the food and walks off."


def test_pet_is_fed_by_no_link_from_elsewhere(
    pet_server: Server, make_cert: MakeCert
) -> None:
    """Feeding, playing and naming as any page can write them, over real TLS:
    the pet's page, saying nothing was done."""
    cert = make_cert("pet-victim")
    lines(pet_server.request("/pet", cert))
    for path, query in (("/pet/feed", None), ("/pet/play", None), ("/pet/name", "X")):
        page = lines(pet_server.request(path, cert, query=query))
        assert page[2] == (
            "Nothing was done: that link came from an older page, another device"
            " or somewhere else, not from your pet as it is now."
        ), page
    assert "Hatched just now. Meals: 0. Games: 0. Times ill: 0." in lines(
        pet_server.request("/pet", cert)
    )


def test_pet_naming_over_tls(pet_server: Server, make_cert: MakeCert) -> None:
    cert = make_cert("pet-namer")
    at = link(lines(pet_server.request("/pet", cert)), "Name your pet")
    reply = pet_server.request(at, cert)
    assert (reply.status, reply.meta) == (10, "What will you call your pet?")
    reply = pet_server.request(at, cert, query="a\x1b[31mred")
    assert (reply.status, reply.meta) == (
        10,
        "A name cannot hold control or invisible characters: try another",
    )
    reply = pet_server.request(at, cert, query="x" * 300)
    assert (reply.status, reply.meta) == (
        10,
        "That name is 300 characters long; the most is 20: try a shorter name",
    )
    page = lines(pet_server.request(at, cert, query="Mochi 🐱"))
    assert page[2] == "Your pet is called Mochi 🐱 now."
    assert "```Mochi 🐱, content" in page


def test_pet_players_are_kept_apart(pet_server: Server, make_cert: MakeCert) -> None:
    alice, bob = make_cert("pet-alice"), make_cert("pet-bob")
    at = link(lines(pet_server.request("/pet", alice)), "Name your pet")
    lines(pet_server.request(at, alice, query="Ada"))
    act(pet_server, bob, "Play")
    act(pet_server, alice, "Feed")
    alice_page = lines(pet_server.request("/pet", alice))
    bob_page = lines(pet_server.request("/pet", bob))
    assert "Ada is content." in alice_page
    assert "Hatched just now. Meals: 1. Games: 0. Times ill: 0." in alice_page
    assert "Your pet is content." in bob_page
    assert "Hatched just now. Meals: 0. Games: 1. Times ill: 0." in bob_page
