"""No URL a stranger can write changes a record of a player of the demo capsule.

In Gemini the answer to a prompt is the query of the URL, so a link on any
page, anywhere, can carry any answer. Here a stranger (mallory) plays the demo
capsule with accounts of her own, and crafts URLs from what she can see: every
route's path, filled with her own fingerprints and codes, the victim's
fingerprint prefixes (anyone may know a fingerprint), slab names, her own
valid tokens (from every page and prompt she was shown) and made-up ones, and
every plausible query. Each is sent as the victim's (alice's) request, and a
redirect it answers is followed as alice's client follows it.

What may change, by the model written out here (not the capsule's code): no
record of any slab, and no record is added, with exactly two exceptions, both a
visit of a page that says what it does:

- ``/counter`` (the visit counter's page, whatever query it carries: the page
  reads none) counts the visit: alice's ``visits`` record goes from
  ``(count, ever)`` to ``(count + 1, ever + 1)``, once for every request of the
  chain routed to ``/counter``, and nothing else changes;
- ``/account/code`` (with or without a last path segment, which the route takes
  for a token and reads no more than the query) shows alice a new link code that
  only she sees: it adds that code (and its count in ``accounts.limits``), and
  ends none of her three newest.

Every other page (a game's page, ``/``, ``/account``, ``/halloffame``) is a
look that changes nothing. (A first look at a game also starts it for a player
who has no record of it, as the hangman page picks a word and the pet's page
hatches the egg; alice has a record of every game here, so that never shows.
Nor does the account's note of when a certificate was last seen, which any
request refreshes once in a while: the clock does not move here.)
Every step of play (a guess, a letter, a cell, a new game, feeding, playing, a
name) is taken only at a link the capsule showed alice for the game as it
stands, which no stranger can write.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh.demo import app
from jetforce_sesh.games import counter, guess, hangman, tictactoe
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.strategies import player_input

#: The paths a stranger can write, one per route (and the old numbered cell
#: links), with {groups} to fill.
PATHS = [
    "/",
    "/counter",
    "/counter/reset",
    "/guess",
    "/guess/try",
    "/guess/new",
    "/guess/giveup",
    "/hangman",
    "/hangman/letter",
    "/hangman/new",
    "/hangman/giveup",
    "/tictactoe",
    "/tictactoe/new",
    "/tictactoe/move",
    "/tictactoe/move/{cell}",
    "/pet",
    "/pet/feed",
    "/pet/play",
    "/pet/name",
    "/halloffame",
    "/halloffame/name",
    "/account",
    "/account/help",
    "/account/code",
    "/account/link",
    "/account/join",
    "/account/recovery",
    "/account/revoke/{prefix}",
    "/sesh/reset/{slab}",
]
#: The one page whose visit changes a record: it counts the visit.
COUNTED = "/counter"
#: The page that makes the player a link code when visited, as it is routed.
MAKES_A_CODE = "/account/code(?:/[^/]*)?"
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz234567"
TOKEN = "[a-z2-7]{16}"
#: Redirects a client follows in a row before it gives up (as agunua does).
HOPS = 5


def test_the_model_names_every_route_of_the_demo() -> None:
    """Every route is in :data:`PATHS`: a new route gets a line here."""
    filled = [
        fill(path, {"cell": "5", "prefix": "0" * 16, "slab": "visits"})
        for path in PATHS
    ]
    for pattern, _ in app.routes:
        # Jetforce routes the path without its trailing slashes.
        assert any(re.fullmatch(pattern.path, path.rstrip("/")) for path in filled), (
            pattern.path
        )


def fill(path: str, groups: dict[str, str]) -> str:
    return path.format(**groups)


@contextmanager
def seeded() -> Iterator[None]:
    saved = guess.rng, hangman.rng
    guess.rng, hangman.rng = random.Random(7), random.Random(7)
    try:
        yield
    finally:
        guess.rng, hangman.rng = saved


def link_on(page: Page, label: str) -> str:
    found = re.search(rf"^=> (\S+) {re.escape(label)}", page.body, re.M)
    assert found is not None, (label, page.body)
    return found.group(1)


def get(
    harness: SessionHarness, url: str, player: str, query: str | None = None
) -> Page:
    """``url`` (a link's, which may carry its own query) as ``player`` sends it."""
    path, mark, carried = url.partition("?")
    if mark and query is None:
        query = carried
    return harness.get(path, player=player, query=query)


def play(
    harness: SessionHarness, player: str, page: str, label: str, answer: str
) -> Page:
    """Follow the link ``label`` of ``page`` as ``player``, answering ``answer``
    at the prompt it leads to (if it leads to one)."""
    url = link_on(harness.get(page, player=player), label)
    step = get(harness, url, player)
    if step.status == 30:
        url = step.meta
        step = get(harness, url, player)
    if step.status == 10:
        step = get(harness, url, player, answer)
    assert 20 == step.status, (page, label, step)
    return step


@attrs.frozen
class Scene:
    harness: SessionHarness
    #: Mallory's codes and her own valid tokens, by path.
    codes: list[str]
    tokens: dict[str, list[str]]


def stage() -> Scene:
    """Alice plays every game and has an account of two certificates, a live
    link code, recovery codes and a code she entered and has not confirmed;
    mallory has an account of her own and looks at every page."""
    harness = SessionHarness(app)
    alice = "alice"
    for _ in range(3):
        harness.get("/counter", player=alice)
    play(harness, alice, "/guess", "Guess a number", "50")
    play(harness, alice, "/hangman", "Guess a letter", "e")
    play(harness, alice, "/tictactoe", "Cell 5, centre", "5")
    play(harness, alice, "/pet", "Name your pet", "Mochi")
    play(harness, alice, "/halloffame", "Choose your name", "Alice")
    page = harness.get("/account", player=alice)
    code = re.search(
        r"^> (\S+)$",
        harness.get(link_on(page, "Make a link code"), player=alice).body,
        re.M,
    )
    assert code is not None
    laptop = harness.get("/account", player="alice-laptop")
    at = link_on(laptop, "Enter a code from another certificate")
    joined = harness.get(at, player="alice-laptop", query=code.group(1))
    assert (
        "Linked." in harness.get(joined.meta, player="alice-laptop", query="yes").body
    )
    harness.get(
        link_on(harness.get("/account", player=alice), "Make a link code"), player=alice
    )
    page = harness.get("/account", player=alice)
    at = link_on(page, "Print new recovery codes")
    assert "Your recovery codes" in harness.get(at, player=alice, query="yes").body
    # Mallory: an account of her own, a live code, recovery codes, and every
    # page she can see, with her own tokens.
    codes = []
    page = harness.get("/account", player="mallory")
    made = harness.get(link_on(page, "Make a link code"), player="mallory")
    codes += re.findall(r"^> (\S+)$", made.body, re.M)
    at = link_on(harness.get("/account", player="mallory"), "Print new recovery codes")
    recovery = harness.get(at, player="mallory", query="yes")
    codes += re.findall(r"^((?:[0-9A-Z]{4}-){3}[0-9A-Z]{4})$", recovery.body, re.M)
    # Alice entered mallory's code and stopped at the question.
    page = harness.get("/account", player=alice)
    at = link_on(page, "Enter a code from another certificate")
    assert 30 == harness.get(at, player=alice, query=codes[0]).status
    # A game of tic-tac-toe played to its end, for a "Play again" of her own,
    # and the next one begun.
    board = harness.get("/tictactoe", player="mallory")
    while "Play again" not in board.body:
        cell = re.search(r"^=> (\S+) Cell \d, [a-z ]+$", board.body, re.M)
        assert cell is not None, board.body
        board = get(harness, cell[1], "mallory")
    again = re.search(r"^=> (\S+) Play again", board.body, re.M)
    assert again is not None
    assert 20 == get(harness, again[1], "mallory").status
    # Every link mallory is shown, and every redirect she is sent, on every
    # path she can write: the tokens in them, by the path they are for.
    seen: list[str] = [again[1]]
    for path in PATHS:
        for groups in mallory_groups():
            page = harness.get(fill(path, groups), player="mallory")
            seen += [page.meta] if page.status == 30 else []
            seen += [line.split()[1] for line in page.lines if line.startswith("=> ")]
    tokens: dict[str, list[str]] = {}
    for url in seen:
        found = re.fullmatch(rf"(/\S*)/({TOKEN})(?:\?.*)?", url)
        if found and found[2] not in tokens.get(found[1], []):
            tokens.setdefault(found[1], []).append(found[2])
    return Scene(harness, codes, tokens)


def mallory_groups() -> list[dict[str, str]]:
    return [
        {"cell": "5", "prefix": fingerprint_of(who).hex()[:16], "slab": slab}
        for who, slab in (("alice-laptop", "visits"), ("alice", counter.slab.name))
    ]


def snapshot(scene: Scene) -> dict[str, dict[bytes, Any]]:
    """Every record of every slab, decoded, by key: what a request may not
    change (a record added or taken shows as a key more or less)."""
    return {
        slab.name: {key: attrs.asdict(record) for key, record in slab.records_now()}
        for slab in scene.harness.app.slabs.values()
    }


def counted(
    before: dict[str, dict[bytes, Any]],
    after: dict[str, dict[bytes, Any]],
    visits: int,
) -> None:
    """``visits`` visits of the counter's page: alice's count and her every
    visit ever up by that many, and nothing else of the slab changed."""
    alice = fingerprint_of("alice")
    expected = dict(before["visits"])
    was = expected[alice]
    expected[alice] = {"count": was["count"] + visits, "ever": was["ever"] + visits}
    assert expected == after["visits"]


def made_code(
    before: dict[str, dict[bytes, Any]], after: dict[str, dict[bytes, Any]]
) -> None:
    """A link code made: one new code, alice's; none of anyone else's gone or
    changed; and alice's live codes number what she had plus one, up to
    three (the account's limit: a code more ends her oldest)."""
    alice = fingerprint_of("alice")
    was, now = before["accounts.codes"], after["accounts.codes"]
    new = [key for key in now if key not in was]
    assert 1 == len(new) and alice == now[new[0]]["account"]
    for key, code in was.items():
        if key in now:
            assert code == now[key]
        else:
            assert alice == code["account"]
    live = sum(code["account"] == alice for code in was.values())
    assert min(3, live + 1) == sum(code["account"] == alice for code in now.values())


def routed(url: str) -> str:
    """The path a request for ``url`` is routed by: Jetforce strips trailing
    slashes, and the query is no part of it."""
    return url.partition("?")[0].rstrip("/") or "/"


QUERIES = st.one_of(
    st.none(),
    st.sampled_from(["yes", " YES ", "no", "5", "50", "e", "Mallory"]),
    player_input,
)


@settings(max_examples=120, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(PATHS),
            st.sampled_from([0, 1]),
            st.one_of(
                st.none(),
                st.just("mallory's"),
                st.just("/"),
                st.text(TOKEN_CHARS, min_size=16, max_size=16),
            ),
            st.one_of(QUERIES, st.just("code")),
        ),
        min_size=1,
        max_size=4,
    ),
    data=st.data(),
)
def test_no_url_a_stranger_can_write_changes_a_record(
    steps: list[tuple[str, int, str | None, str | None]], data: st.DataObject
) -> None:
    with seeded():
        scene = stage()
        harness = scene.harness
        for path, which, token, query in steps:
            url = fill(path, mallory_groups()[which])
            if token == "mallory's":
                mine = scene.tokens.get(url)
                if mine:
                    url += "/" + data.draw(st.sampled_from(mine))
            elif token == "/":
                url += "/"
            elif token is not None:
                url += "/" + token
            if query == "code":
                query = data.draw(st.sampled_from(scene.codes))
            before = snapshot(scene)
            # The link as alice's client takes it: its redirects followed (they
            # carry no query: whatever the link carried was dropped).
            chain = [url]
            page = harness.get(url, player="alice", query=query)
            while page.status == 30 and len(chain) <= HOPS:
                chain.append(page.meta)
                page = get(harness, page.meta, "alice")
            assert page.status in (10, 11, 20, 44, 51, 59), (chain, query, page)
            after = snapshot(scene)
            visits = sum(routed(hop) == COUNTED for hop in chain)
            codes = sum(bool(re.fullmatch(MAKES_A_CODE, routed(hop))) for hop in chain)
            assert codes <= 1, chain
            free = {"visits"} if visits else set()
            if codes:
                made_code(before, after)
                free |= {"accounts.codes", "accounts.limits"}
            for name in before:
                if name not in free:
                    assert before[name] == after[name], (chain, query, name)
            if visits:
                counted(before, after, visits)


def stranger_moves(harness: SessionHarness) -> list[tuple[str, str | None]]:
    """The links a stranger could write to make a move for alice, one for each
    step of play of each game (and the name the hall of fame shows everyone),
    in an order in which each would be a move the game takes as it stands:
    alice's number guessing won (a new game starts one, then a guess counts),
    her hangman lost, her board with free cells, her pet hungry and bored."""
    board = tictactoe_of("alice").cells
    free = [str(i + 1) for i, mark in enumerate(board) if mark == tictactoe.FREE]
    return [
        ("/guess/new", None),
        ("/guess/try", "50"),
        ("/hangman/new", None),
        ("/hangman/letter", "e"),
        # The old numbered cell link, and the cell as the prompt's answer.
        (f"/tictactoe/move/{free[0]}", None),
        ("/tictactoe/move", free[-1]),
        ("/pet/feed", None),
        ("/pet/play", None),
        ("/pet/name", "Rex"),
        ("/halloffame/name", "Mallory"),
    ]


def tictactoe_of(player: str) -> tictactoe.Board:
    board = tictactoe.app.slabs[tictactoe.Board].peek_now(fingerprint_of(player))
    assert board is not None
    return board


def changed_by(
    scene: Scene, moves: list[tuple[str, str | None]]
) -> list[tuple[str, str | None]]:
    """Which of ``moves``, sent as alice's and their redirects followed,
    changed a record."""
    harness = scene.harness
    before = snapshot(scene)
    changed = []
    for path, query in moves:
        page = harness.get(path, player="alice", query=query)
        for _ in range(HOPS):
            if page.status != 30:
                break
            page = get(harness, page.meta, "alice")
        if snapshot(scene) != before:
            changed.append((path, query))
            before = snapshot(scene)
    return changed


def test_no_move_of_any_game_is_made_by_a_link() -> None:
    """Each move as a stranger writes it, at a moment its game would take it
    (every step of play of every game, and giving up): alice's records are as
    they were after every one of them."""
    alice = fingerprint_of("alice")
    with seeded():
        scene = stage()
        harness = scene.harness
        record = guess.slab.peek_now(alice)
        assert record is not None
        while not record.won:
            number = (record.low + record.high) // 2
            play(harness, "alice", "/guess", "Guess again", str(number))
            record = guess.slab.peek_now(alice)
            assert record is not None
        game = hangman.slab.peek_now(alice)
        assert game is not None
        for letter in sorted(hangman.LETTERS - set(game.word) - set(game.tried)):
            if not game.over:
                play(harness, "alice", "/hangman", "Guess a letter", letter)
                game = hangman.slab.peek_now(alice)
                assert game is not None
        assert game.lost
        harness.clock.advance(3 * 3600)
        # A look first, as the player's own: the pet brought up to the clock,
        # and the account's note of when this certificate was last seen (which
        # any request of hers refreshes, once in a while) brought up to date.
        assert 20 == harness.get("/pet", player="alice").status
        assert [] == changed_by(scene, stranger_moves(harness))
        # Her board played to its end by her own links: "play again" would
        # start the next game.
        board = harness.get("/tictactoe", player="alice")
        while "Play again" not in board.body:
            cell = re.search(r"^=> (\S+) Cell \d, [a-z ]+$", board.body, re.M)
            assert cell is not None, board.body
            board = get(harness, cell[1], "alice")
        assert [] == changed_by(scene, [("/tictactoe/new", None)])
        # A game of each going again, by her own links, each one she could give
        # up: a give-up answered yes in a link gives up neither.
        play(harness, "alice", "/guess", "Play again", "")
        play(harness, "alice", "/guess", "Guess a number", "50")
        play(harness, "alice", "/hangman", "New game", "")
        record, game = guess.slab.peek_now(alice), hangman.slab.peek_now(alice)
        assert record is not None and record.going
        assert game is not None and game.going
        giving_up = [("/guess/giveup", "yes"), ("/hangman/giveup", "yes")]
        assert [] == changed_by(scene, giving_up)
