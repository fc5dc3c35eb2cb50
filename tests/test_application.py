"""SessionApplication: including games, the root index, unclaimed paths, life cycle."""

from __future__ import annotations

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.interfaces import IReactorTime

from jetforce_sesh import (
    BadFingerprint,
    ConfigError,
    SessionApplication,
    fingerprint_of_request,
)
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
    assert Page(51, "Not Found", "") == SessionHarness(game()).get("/nowhere")


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
    # The game's route, and the capsule's own route for unreadable records.
    assert ["/sesh/reset/(?P<slab_name>[^/]+)", "/coins"] == [
        pattern.path for pattern, _ in capsule.routes
    ]
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


def test_a_route_may_name_its_record_before_the_slab_is_declared() -> None:
    app = SessionApplication("late")

    @app.session_route("/coins", record=Coins)
    def coins(request: Request, record: Coins) -> Response:
        return Response(Status.SUCCESS, "text/plain", str(record.coins))

    slab = app.slab(Coins, record_size=32, name="coins")
    SessionHarness(app)
    assert ("coins", 32) == (slab.name, slab.store.record_size)


def test_a_slab_named_twice_differently_is_refused() -> None:
    app = SessionApplication("twice")
    app.slab(Coins, name="coins")
    with pytest.raises(ConfigError) as raised:
        app.slab(Coins, name="money")
    assert (
        "slab 'coins' is declared twice with different settings (name='coins',"
        " launcher defaults and name='money', launcher defaults): declare it once,"
        " with app.slab(), and pass only record= to session_route"
    ) == str(raised.value)


def test_the_fingerprint_of_a_request_without_certificate_is_refused() -> None:
    request = Request({"GEMINI_URL": "gemini://localhost/"})
    with pytest.raises(BadFingerprint) as raised:
        fingerprint_of_request(request)
    assert (
        "this request has no client certificate: ask for the fingerprint in a session"
        " route, which answers 60 before the handler runs"
    ) == str(raised.value)


def test_the_banner_line_says_size_capacity_memory_and_policies() -> None:
    app = SessionApplication("banner")
    slab = app.slab(Coins, name="coins", max_records=1, idle_timeout=2592000)
    SessionHarness(app)
    assert (
        "slab coins: up to 1 records of 256 bytes, 356 bytes reserved; when full:"
        " evict; idle records expire after 2592000 s"
    ) == slab.describe()
