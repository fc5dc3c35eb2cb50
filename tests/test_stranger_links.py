"""No URL a stranger can write acts for a player of the demo capsule.

In Gemini the answer to a prompt is the query of the URL, so a link on any
page, anywhere, can carry any answer. Here a stranger (mallory) plays the demo
capsule with accounts of her own, and crafts URLs from what she can see: every
route's path, filled with her own fingerprints and codes, the victim's
fingerprint prefixes (anyone may know a fingerprint), slab names, her own
valid confirmation tokens and made-up ones, and every plausible query. Each is
sent as the victim's (alice's) request, as a victim following the link would.

What may change, by the model written out here (not the capsule's code):

- a route that is not a move of play changes no record of any slab;
- a move (a visit counted, a guess, a letter, a cell, feeding the pet, a name)
  changes only its own game's record, as one step of play the page offers to
  anyone, and never takes anything away: no game in progress is given up,
  swapped or reset, no count is lowered, and nothing of the account moves;
- ``/account/code`` makes the player a link code that only they see: it adds
  that code (and its count), and ends none of the player's three newest.
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

#: The paths a stranger can write, one per route, with {groups} to fill.
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
#: The routes of play: one step of a game, as its page offers it to anyone.
MOVES = {
    "/counter": "visits",
    "/guess/try": "jetforce_sesh.games.guess.GuessRecord",
    "/guess/new": "jetforce_sesh.games.guess.GuessRecord",
    "/hangman": "jetforce_sesh.games.hangman.HangmanRecord",
    "/hangman/letter": "jetforce_sesh.games.hangman.HangmanRecord",
    "/hangman/new": "jetforce_sesh.games.hangman.HangmanRecord",
    "/tictactoe/new": "jetforce_sesh.games.tictactoe.Board",
    "/tictactoe/move": "jetforce_sesh.games.tictactoe.Board",
    "/tictactoe/move/{cell}": "jetforce_sesh.games.tictactoe.Board",
    "/pet/feed": "jetforce_sesh.games.pet.Pet",
    "/pet/play": "jetforce_sesh.games.pet.Pet",
    "/pet/name": "jetforce_sesh.games.pet.Pet",
    "/halloffame/name": "jetforce_sesh.games.halloffame.FameRecord",
}
TOKEN_CHARS = "abcdefghijklmnopqrstuvwxyz234567"
TOKEN = "[a-z2-7]{16}"


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


def follow(
    harness: SessionHarness, player: str, path: str, query: str | None = None
) -> Page:
    """``path`` as ``player``'s client takes it: a redirect is followed."""
    page = harness.get(path, player=player, query=query)
    if page.status == 30:
        page = harness.get(page.meta, player=player)
    return page


def link_on(page: Page, label: str) -> str:
    found = re.search(rf"^=> (\S+) {re.escape(label)}", page.body, re.M)
    assert found is not None, (label, page.body)
    return found.group(1)


@attrs.frozen
class Scene:
    harness: SessionHarness
    #: Mallory's codes and her own valid tokens, by path.
    codes: list[str]
    tokens: dict[str, list[str]]
    #: The key of every record there is once the scene is set, by slab.
    known: dict[str, list[bytes]]


def stage() -> Scene:
    """Alice plays every game and has an account of two certificates, a live
    link code, recovery codes and a code she entered and has not confirmed;
    mallory has an account of her own and looks at every page."""
    harness = SessionHarness(app)
    alice = "alice"
    for _ in range(3):
        harness.get("/counter", player=alice)
    harness.get("/guess/try", player=alice, query="50")
    harness.get("/hangman", player=alice)
    harness.get("/hangman/letter", player=alice, query="e")
    harness.get("/tictactoe/move/5", player=alice)
    harness.get("/pet", player=alice)
    harness.get("/pet/name", player=alice, query="Mochi")
    harness.get("/halloffame/name", player=alice, query="Alice")
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
    tokens: dict[str, list[str]] = {}
    for path in PATHS:
        for groups in mallory_groups():
            bare = fill(path, groups)
            page = harness.get(bare, player="mallory")
            seen = [page.meta] if page.status == 30 else []
            seen += [line.split()[1] for line in page.lines if line.startswith("=> ")]
            for url in seen:
                token = url[len(bare) + 1 :]
                if url.startswith(bare + "/") and re.fullmatch(TOKEN, token):
                    tokens.setdefault(path, []).append(token)
    for page_path in ("/account",):
        page = harness.get(page_path, player="mallory")
        for line in page.lines:
            found = re.fullmatch(rf"=> (/account/[a-z]+)/({TOKEN}) .*", line)
            if found:
                tokens.setdefault(found[1], []).append(found[2])
    known = {
        slab.name: [key for key, _ in slab.records_now()] for slab in app.slabs.values()
    }
    return Scene(harness, codes, tokens, known)


def mallory_groups() -> list[dict[str, str]]:
    return [
        {"cell": "5", "prefix": fingerprint_of(who).hex()[:16], "slab": slab}
        for who, slab in (("alice-laptop", "visits"), ("alice", counter.slab.name))
    ]


def snapshot(scene: Scene) -> dict[str, tuple[int, dict[bytes, Any]]]:
    """Every record of every slab, decoded, and how many each holds: what a
    request may not change (a new record shows in the count)."""
    found: dict[str, tuple[int, dict[bytes, Any]]] = {}
    for slab in app.slabs.values():
        records = {}
        for key in scene.known[slab.name]:
            record = slab.peek_now(key)
            records[key] = None if record is None else attrs.asdict(record)
        if slab.name == "accounts.codes":
            # Codes are kept under the hash of a code nobody here knows: read
            # them all, so that codes made by earlier steps are counted too.
            records |= {k: attrs.asdict(r) for k, r in slab.records_now()}
        found[slab.name] = (slab.in_use(), records)
    return found


def nothing_taken(slab: str, before: dict[str, Any], after: dict[str, Any]) -> None:
    """One step of play: the game's history only grows, and a game in
    progress is never given up, swapped or reset."""
    if slab == "visits":
        assert after["count"] >= before["count"] and after["ever"] >= before["ever"]
    elif slab.endswith("GuessRecord"):
        assert after["forfeits"] == before["forfeits"]
        assert after["played"] >= before["played"]
        going = before["tries"] > 0 and before["last"] != before["secret"]
        if going:
            assert after["secret"] == before["secret"]
    elif slab.endswith("HangmanRecord"):
        over = (
            set(before["word"]) <= set(before["tried"])
            or sum(letter not in before["word"] for letter in before["tried"])
            >= hangman.LIVES
        )
        if before["word"] and not over:
            assert after["word"] == before["word"]
            assert after["tried"].startswith(before["tried"])
            assert len(after["tried"]) <= len(before["tried"]) + 1
    elif slab.endswith("Board"):
        for tally in ("wins", "draws", "losses"):
            assert after[tally] >= before[tally]
        if not tictactoe.is_over(before["cells"]):
            kept = [
                b
                for b, a in zip(before["cells"], after["cells"], strict=True)
                if b != tictactoe.FREE
            ]
            assert kept == [
                a
                for b, a in zip(before["cells"], after["cells"], strict=True)
                if b != tictactoe.FREE
            ]


def made_code(
    before: dict[str, tuple[int, dict[bytes, Any]]],
    after: dict[str, tuple[int, dict[bytes, Any]]],
) -> None:
    """A link code made: one new code, alice's; no code of anyone else's gone;
    and alice's live codes number what she had plus one, up to three."""
    alice = fingerprint_of("alice")
    was, now = before["accounts.codes"][1], after["accounts.codes"][1]

    def alices(codes: dict[bytes, Any]) -> set[bytes]:
        return {k for k, c in codes.items() if c is not None and c["account"] == alice}

    live = {k for k, c in was.items() if c is not None}
    gone = {k for k in live if now.get(k) is None}
    new = {k for k, c in now.items() if c is not None and was.get(k) is None}
    assert gone <= alices(was)
    assert len(new) == 1 and new <= alices(now)
    assert after["accounts.codes"][0] == before["accounts.codes"][0] + 1 - len(gone)
    assert len(alices(now)) >= min(3, len(alices(was)) + 1)


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
def test_no_url_a_stranger_can_write_acts_for_the_player(
    steps: list[tuple[str, int, str | None, str | None]], data: st.DataObject
) -> None:
    with seeded():
        scene = stage()
        harness = scene.harness
        for path, which, token, query in steps:
            url = fill(path, mallory_groups()[which])
            if token == "mallory's":
                mine = scene.tokens.get(path)
                if mine:
                    url += "/" + data.draw(st.sampled_from(mine))
            elif token == "/":
                url += "/"
            elif token is not None:
                url += "/" + token
            if query == "code":
                query = data.draw(st.sampled_from(scene.codes))
            before = snapshot(scene)
            page = harness.get(url, player="alice", query=query)
            assert page.status in (10, 11, 20, 30, 44, 51, 59), (url, page)
            after = snapshot(scene)
            game = MOVES.get(path)
            if path == "/account/code":
                made_code(before, after)
                game = "accounts.codes"
            for name in before:
                if name == game or (
                    path == "/account/code" and name == "accounts.limits"
                ):
                    continue
                assert before[name] == after[name], (url, query, name)
            if game is not None:
                key = fingerprint_of("alice")
                mine_before = before[game][1].get(key)
                mine_after = after[game][1].get(key)
                if mine_before is not None:
                    assert mine_after is not None, (url, query)
                    nothing_taken(game, mine_before, mine_after)
