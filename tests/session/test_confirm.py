"""Confirmation tokens on their own: who, what, which state and when a token of
:mod:`jetforce_sesh.session.confirm` is good for, driven on the harness's Clock.

The oracles do not ask confirm.py: a token is judged by what a player sees (a
``10`` prompt at a good link, a ``30`` to a fresh one at any other, the record
unchanged), and one test recomputes a token from the construction the module
documents, with hashlib and hmac, from the secret read out of its slab.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred

from jetforce_sesh import (
    SessionApplication,
    ask_for,
    ask_yes,
    confirm_path,
    is_confirmed,
    ready,
    with_token,
)
from jetforce_sesh.session.confirm import SECRETS
from jetforce_sesh.stores.sqlite.store import SQLiteStores
from jetforce_sesh.testing import (
    START,
    Page,
    SessionHarness,
    fingerprint_of,
    later_stores,
)

#: The docs' promise: a token is good for 15 to 30 minutes, in quarter hours.
QUARTER = 15 * 60
#: A token as the docs spell it: 80 bits, 16 characters of lower-case base32.
TOKEN = re.compile(r"[a-z2-7]{16}")

SPEND_PROMPT = "Spend every coin? Type yes to spend"
NAME_PROMPT = "Name your purse"
PIN_PROMPT = "Your PIN"


@attrs.define
class Purse:
    coins: int = 0
    name: str = ""


app = SessionApplication("Purses", entry="/coins")
purses = app.slab(Purse, record_size=128)


def page(text: str) -> Response:
    return Response(Status.SUCCESS, "text/gemini", text)


@app.session_route("/coins", record=Purse)
def show(request: Request, record: Purse) -> Response:
    return page(f"{record.coins} {record.name}\n")


@app.session_route("/coins/earn", record=Purse)
def earn(request: Request, record: Purse) -> Response:
    # A plain link that changes the record: here only to make tokens stale.
    record.coins += 1
    return page(f"{record.coins}\n")


@app.session_route(with_token("/coins/spend"), record=Purse)
def spend(request: Request, record: Purse, token: str | None = None) -> Response:
    answer = ask_yes(request, token, "/coins/spend", record, SPEND_PROMPT)
    if isinstance(answer, Response):
        return answer
    if not answer:
        return page("Nothing spent.\n")
    record.coins = 0
    return page("All spent.\n")


def told(link: str) -> Response:
    return page(f"A link asked to give; nothing was given.\n=> {link} Give\n")


@app.session_route(with_token("/coins/give/(?P<to>[a-z]+)"), record=Purse)
def give(
    request: Request, record: Purse, to: str, token: str | None = None
) -> Response:
    answer = ask_yes(
        request, token, f"/coins/give/{to}", record, f"Give to {to}?", elsewhere=told
    )
    if isinstance(answer, Response):
        return answer
    if answer:
        record.coins -= 1
    return page(f"{record.coins}\n")


@app.session_route(with_token("/coins/name"), record=Purse)
def name(request: Request, record: Purse, token: str | None = None) -> Response:
    answer = ask_for(request, token, "/coins/name", record, NAME_PROMPT)
    if isinstance(answer, Response):
        return answer
    if not answer.isalpha():
        return Response(Status.INPUT, "Letters only: " + NAME_PROMPT)
    record.name = answer
    return page(f"Named {answer}.\n")


@app.session_route(with_token("/coins/pin"), record=Purse)
def pin(request: Request, record: Purse, token: str | None = None) -> Response:
    answer = ask_for(request, token, "/coins/pin", record, PIN_PROMPT, sensitive=True)
    if isinstance(answer, Response):
        return answer
    return page("PIN taken.\n")


@app.route(with_token("/plain/double"))
def double(request: Request, token: str | None = None) -> Response:
    # Outside a session route, with no state: the token follows only the player,
    # the path and the time.
    if is_confirmed(request, token, "/plain/double"):
        return page("doubled\n")
    return page(f"=> {confirm_path(request, '/plain/double')} Double\n")


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app)


def token_at(harness: SessionHarness, path: str, *, player: str = "player") -> str:
    """The token of the link ``path``'s bare link sends ``player`` to (with a
    ``30``, or on the page that says a link asked)."""
    bare = harness.get(path, player=player)
    if bare.status == 20:
        link = re.search("^=> (\\S+) ", bare.body, re.MULTILINE)
        assert link is not None, bare
        at = link[1]
    else:
        assert 30 == bare.status, bare
        at = bare.meta
    assert at.startswith(path + "/"), bare
    return at[len(path) + 1 :]


def asks(harness: SessionHarness, at: str, *, player: str = "player") -> bool:
    """True if ``at`` is a good link (it asks the question), False if it sends
    the player to a fresh one; anything else fails."""
    answer = harness.get(at, player=player)
    if (10, SPEND_PROMPT) == (answer.status, answer.meta):
        return True
    assert 30 == answer.status, answer
    assert answer.meta != at, answer
    return False


def coins(player: str = "player") -> Purse:
    """The player's purse as kept (a default record is not kept)."""
    return purses.peek_now(fingerprint_of(player)) or Purse()


def move_to(harness: SessionHarness, when: float) -> None:
    harness.clock.advance(when - harness.clock.seconds())
    assert when == harness.clock.seconds()


# -- the window ------------------------------------------------------------------


def test_harness_starts_on_a_quarter_hour() -> None:
    # The windows below are counted from START: it must be a window's start.
    assert 0 == START % QUARTER


@pytest.mark.parametrize("made_at", [0.0, 0.001, 1.0, 450.0, 899.0, 899.999])
def test_good_in_its_quarter_hour_and_the_next_refused_exactly_after(
    harness: SessionHarness, made_at: float
) -> None:
    move_to(harness, START + made_at)
    at = "/coins/spend/" + token_at(harness, "/coins/spend")
    assert asks(harness, at)
    # At least 15 minutes, whenever in its quarter hour it was made.
    move_to(harness, START + made_at + QUARTER - 0.001)
    assert asks(harness, at)
    # The last moment of the next quarter hour: still good.
    move_to(harness, START + 2 * QUARTER - 0.001)
    assert asks(harness, at)
    # The next quarter hour's first moment: refused, and from then on.
    move_to(harness, START + 2 * QUARTER)
    assert not asks(harness, at)
    move_to(harness, START + made_at + 2 * QUARTER)
    assert not asks(harness, at)
    assert Purse() == coins()


def test_an_expired_token_is_answered_with_a_good_one(harness: SessionHarness) -> None:
    at = "/coins/spend/" + token_at(harness, "/coins/spend")
    harness.clock.advance(2 * QUARTER)
    stale = harness.get(at, query="yes")
    assert 30 == stale.status
    assert asks(harness, stale.meta)
    assert Purse() == coins()


# -- who, what, which state -------------------------------------------------------


def test_another_players_token_is_refused(harness: SessionHarness) -> None:
    harness.get("/coins/earn", player="bob")
    alices = "/coins/spend/" + token_at(harness, "/coins/spend", player="alice")
    assert asks(harness, alices, player="alice")  # the control
    refused = harness.get(alices, player="bob", query="yes")
    assert 30 == refused.status
    bobs = refused.meta
    assert bobs != alices
    assert re.fullmatch("/coins/spend/" + TOKEN.pattern, bobs)
    assert Purse(1) == coins("bob")
    # Bob's own token is one for Bob alone.
    assert asks(harness, bobs, player="bob")
    assert not asks(harness, bobs, player="alice")


def test_another_paths_token_is_refused(harness: SessionHarness) -> None:
    harness.get("/coins/earn")
    token = token_at(harness, "/coins/give/bob")
    assert Page(10, "Give to bob?", "") == harness.get("/coins/give/bob/" + token)
    # The same token on another target, and on another action.
    assert 20 == harness.get("/coins/give/eve/" + token, query="yes").status
    assert not asks(harness, "/coins/spend/" + token)
    assert Purse(1) == coins()
    # And a token of the action, on another action.
    spend_token = token_at(harness, "/coins/spend")
    assert "nothing was given" in harness.get("/coins/give/bob/" + spend_token).body
    assert Purse(1) == coins()


def test_another_states_token_is_refused(harness: SessionHarness) -> None:
    at = "/coins/spend/" + token_at(harness, "/coins/spend")
    assert asks(harness, at)
    harness.get("/coins/earn")
    assert not asks(harness, at)
    # The record as it is now gets a token of its own.
    fresh = "/coins/spend/" + token_at(harness, "/coins/spend")
    assert fresh != at
    assert asks(harness, fresh)


def test_used_once_per_value_of_the_record(harness: SessionHarness) -> None:
    harness.get("/coins/earn")
    at = "/coins/spend/" + token_at(harness, "/coins/spend")
    assert Page(20, "text/gemini", "All spent.\n") == harness.get(at, query="yes")
    assert Purse(0) == coins()
    # The same link again (a client's Back key): the record changed.
    again = harness.get(at, query="yes")
    assert 30 == again.status
    harness.get("/coins/earn")
    harness.get("/coins/earn")
    assert 30 == harness.get(at, query="yes").status
    assert Purse(2) == coins()
    # A token covers the record's value, not its history: once the record is
    # as it was when the link was shown, within the window, the link is good
    # again (as the docs say).
    harness.get("/coins/spend/" + token_at(harness, "/coins/spend"), query="yes")
    harness.get("/coins/earn")
    assert Purse(1) == coins()
    assert asks(harness, at)


def test_without_state_the_token_follows_player_path_and_time(
    harness: SessionHarness,
) -> None:
    offered = harness.get("/plain/double")
    link = offered.body.split()[1]
    assert re.fullmatch("/plain/double/" + TOKEN.pattern, link)
    assert "doubled\n" == harness.get(link).body
    assert "doubled\n" == harness.get(link).body  # no state: good twice
    assert "doubled\n" != harness.get(link, player="bob").body
    harness.clock.advance(2 * QUARTER)
    assert "doubled\n" != harness.get(link).body


# -- the secret ------------------------------------------------------------------


def test_a_token_made_under_another_secret_is_refused() -> None:
    first = SessionHarness(app)
    at = "/coins/spend/" + token_at(first, "/coins/spend")
    assert asks(first, at)
    # A new harness: the same clock time, the same (empty) record, a fresh
    # secret slab in fresh memory stores.
    second = SessionHarness(app)
    assert first.clock.seconds() == second.clock.seconds()
    assert not asks(second, at)
    assert Purse() == coins()


def on_sqlite(state: Path) -> tuple[SessionHarness, SQLiteStores]:
    stores = SQLiteStores(state)
    return SessionHarness(app, stores=stores), stores


def stop(stores: SQLiteStores) -> None:
    closed = app.close(grace=0)
    assert closed.called
    stores.directory.release()


def test_the_secret_and_its_tokens_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    first, stores = on_sqlite(tmp_path / "state")
    at = "/coins/spend/" + token_at(first, "/coins/spend")
    stop(stores)
    # The same state directory, as after a restart: the same secret.
    again, stores = on_sqlite(tmp_path / "state")
    assert asks(again, at)
    stop(stores)
    # Another state directory: another capsule, another secret.
    other, stores = on_sqlite(tmp_path / "other")
    assert not asks(other, at)
    stop(stores)


def test_a_token_is_the_documented_mac(harness: SessionHarness) -> None:
    harness.get("/coins/earn")
    token = token_at(harness, "/coins/spend")
    key = hashlib.sha256(b"jetforce-sesh: the capsule's secret").digest()
    kept = SECRETS.peek_now(key)
    assert kept is not None
    assert 32 == len(kept.secret)
    player = fingerprint_of("player")
    # The record as the slab's codec writes it: the state the token covers.
    state = purses.opened.codec.encode(Purse(1))
    message = (
        b"jetforce-sesh confirmation 1\x00"
        + player
        + bytes([32])
        + player  # the key the records are kept under: the fingerprint here
        + int(START // QUARTER).to_bytes(8, "big")
        + hashlib.sha256(b"/coins/spend").digest()
        + hashlib.sha256(state).digest()
    )
    mac = hmac.new(kept.secret, message, hashlib.sha256).digest()[:10]
    assert base64.b32encode(mac).decode().lower() == token


# -- not guessable by its form -------------------------------------------------------


def test_tokens_are_sixteen_characters_of_base32(harness: SessionHarness) -> None:
    made = set()
    for player in ("alice", "bob", "carol"):
        for path in ("/coins/spend", "/coins/name", "/coins/give/bob"):
            token = token_at(harness, path, player=player)
            assert TOKEN.fullmatch(token), token
            assert 10 == len(base64.b32decode(token.upper()))
            made.add(token)
    assert 9 == len(made)


def test_near_misses_are_refused(harness: SessionHarness) -> None:
    token = token_at(harness, "/coins/spend")
    assert asks(harness, "/coins/spend/" + token)
    flipped = ("b" if token[0] == "a" else "a") + token[1:]
    for near in (
        token[:-1],
        token + "a",
        token + "=",
        token[:8],
        flipped,
        "a" * 16,
        "2" * 16,
        "é" * 16,
        "%00" * 16,
        " ",
    ):
        assert not asks(harness, "/coins/spend/" + near), near
    assert Purse() == coins()


# -- what a stale or missing token is answered with -----------------------------------


def test_a_strangers_yes_is_a_redirect_to_the_question(
    harness: SessionHarness,
) -> None:
    harness.get("/coins/earn")
    for link in ("/coins/spend", "/coins/spend/" + "a" * 16, "/coins/spend/"):
        answer = harness.get(link, query="yes")
        assert 30 == answer.status
        assert "" == answer.body
        assert Page(10, SPEND_PROMPT, "") == harness.get(answer.meta)
    assert Purse(1) == coins()


def test_a_stale_token_gets_the_elsewhere_page(harness: SessionHarness) -> None:
    harness.get("/coins/earn")
    at = "/coins/give/bob/" + token_at(harness, "/coins/give/bob")
    harness.get("/coins/earn")
    answer = harness.get(at, query="yes")
    fresh = "/coins/give/bob/" + token_at(harness, "/coins/give/bob")
    assert (
        Page(
            20,
            "text/gemini",
            f"A link asked to give; nothing was given.\n=> {fresh} Give\n",
        )
        == answer
    )
    assert Purse(2) == coins()


def test_ask_for_reads_no_answer_without_a_good_token(
    harness: SessionHarness,
) -> None:
    at = "/coins/name/" + token_at(harness, "/coins/name")
    assert Page(10, NAME_PROMPT, "") == harness.get(at)
    harness.get("/coins/earn")
    stale = harness.get(at, query="Mallory")
    assert 30 == stale.status
    assert Purse(1) == coins()
    assert Page(10, NAME_PROMPT, "") == harness.get(stale.meta)
    # A bad answer at a good link is asked again; the token stays good.
    assert Page(10, "Letters only: " + NAME_PROMPT, "") == harness.get(
        stale.meta, query="4"
    )
    assert Page(20, "text/gemini", "Named Ann.\n") == harness.get(
        stale.meta, query="Ann"
    )
    assert Purse(1, "Ann") == coins()


def test_ask_for_a_secret_asks_with_11(harness: SessionHarness) -> None:
    bare = harness.get("/coins/pin", query="1234")
    assert 30 == bare.status
    assert "1234" not in bare.meta
    assert Page(11, PIN_PROMPT, "") == harness.get(bare.meta)


def test_while_the_secret_is_read_the_player_is_asked_to_try_again() -> None:
    # A store in another process (Redis) answers later: the first confirmation
    # is a 41 that changes nothing, as the how-to says, until the secret is read.
    harness = SessionHarness(app, stores=later_stores(0.5))
    settle(harness)
    assert harness.opened.called
    waiting = harness.request("/coins/earn")
    settle(harness)
    assert waiting.called
    starting = harness.request("/coins/spend", query="yes")
    settle(harness)
    assert [
        Page(41, "The capsule is starting; nothing changed: try again in a moment", "")
    ] == done(starting)
    secret = ready()
    settle(harness)
    assert [None] == done(secret)
    bare = harness.request("/coins/spend", query="yes")
    settle(harness)
    (redirect,) = done(bare)
    assert 30 == redirect.status
    prompt = harness.request(redirect.meta)
    settle(harness)
    assert [Page(10, SPEND_PROMPT, "")] == done(prompt)
    shown = harness.request("/coins")
    settle(harness)
    assert [Page(20, "text/gemini", "1 \n")] == done(shown)


def settle(harness: SessionHarness) -> None:
    """Let the later store answer whatever it was asked (a few round trips)."""
    for _ in range(20):
        harness.clock.advance(0.5)


def done(result: Deferred[Any]) -> list[Any]:
    """What ``result`` fired with, if it has (an empty list if not)."""
    fired: list[Any] = []
    result.addCallback(fired.append)
    return fired
