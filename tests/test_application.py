"""SessionApplication: including games, the root index, unclaimed paths, life cycle."""

from __future__ import annotations

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.internet.interfaces import IReactorTime

from jetforce_sesh import SessionApplication, fingerprint_of_request
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of


@attrs.define
class Coins:
    coins: int = 0


def game() -> SessionApplication:
    app = SessionApplication("Coins", entry="/coins", description="count coins")

    @app.session_route("/coins", record=Coins)
    def coins(request: Request, record: Coins) -> Response:
        record.coins += 1
        me = fingerprint_of_request(request).hex()[:8]
        return Response(Status.SUCCESS, "text/plain", f"{me} has {record.coins}")

    return app


def test_a_game_run_alone_has_an_index_at_the_root() -> None:
    page = SessionHarness(game()).get("/", player=None)
    assert Page(20, "text/gemini", "# Coins\n\n=> /coins Coins: count coins\n") == page


def test_paths_nobody_claims_are_51() -> None:
    assert Page(51, "Not found", "") == SessionHarness(game()).get("/nowhere")


def test_handlers_can_learn_who_is_asking() -> None:
    page = SessionHarness(game()).get("/coins", player="zoe")
    assert f"{fingerprint_of('zoe').hex()[:8]} has 1" == page.body


def test_including_a_game_twice_serves_it_once() -> None:
    coins = game()
    middle = SessionApplication("middle")
    middle.include(coins)
    capsule = SessionApplication("capsule")
    capsule.include(coins)
    capsule.include(middle)
    assert 1 == len(capsule.routes)
    assert [coins, middle] == capsule.included
    assert "has 1" in SessionHarness(capsule).get("/coins").body


def test_open_and_close_callbacks_follow_the_capsule() -> None:
    coins = game()
    calls: list[str] = []

    @coins.when_opened
    def opened(clock: IReactorTime) -> None:
        calls.append(f"open at {clock.seconds():.0f}")

    @coins.when_closed
    def closed() -> None:
        calls.append("close")

    capsule = SessionApplication("capsule")
    capsule.include(coins)
    harness = SessionHarness(capsule)
    capsule.close()
    assert ["close", "open at 1767225600", "close"] == calls
    assert harness.clock.getDelayedCalls() == []


def test_demo_capsule_links_every_game() -> None:
    from jetforce_sesh import app

    page = SessionHarness(app).get("/", player=None)
    assert ["/counter", "/guess", "/hangman", "/tictactoe", "/pet", "/halloffame"] == [
        line.split()[1] for line in page.lines if line.startswith("=> ")
    ]
