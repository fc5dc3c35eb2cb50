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
    SlabOptions,
    fingerprint_of_request,
)
from jetforce_sesh.server.banner import banner
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
    assert ["/sesh/reset/(?P<slab_name>[^/]+)(?:/(?P<token>[^/]*))?", "/coins"] == [
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


def test_demo_capsule_links_every_game_and_the_account_pages() -> None:
    from jetforce_sesh import app

    page = SessionHarness(app).get("/", player=None)
    assert [
        "/counter",
        "/guess",
        "/hangman",
        "/tictactoe",
        "/pet",
        "/halloffame",
        "/account",
        "/account/help",
    ] == [line.split()[1] for line in page.lines if line.startswith("=> ")]


def test_the_demo_index_tells_a_certificate_near_its_end_to_link_a_new_one() -> None:
    from jetforce_sesh import app

    page = SessionHarness(app).get("/", not_after="2026-01-03T00:00:00Z")
    assert (
        "Your certificate expires in 2 days. Make a new one, then link it to your"
        " account from here, to keep your records."
    ) in page.lines


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


def test_the_banner_says_each_games_size_and_what_differs_from_the_defaults() -> None:
    app = SessionApplication("Coins")
    app.slab(Coins, name="coins", max_records=1, idle_timeout=2592000)

    @attrs.define
    class Notes:
        text: str = ""

    app.slab(Notes, name="notes", max_records=2000, on_full="refuse")
    SessionHarness(app)
    defaults = SlabOptions(idle_timeout=2592000)
    assert [
        "Games and the players' records they keep:",
        "  Coins: up to 1 player, 356 bytes",
        "  Coins: up to 2,000 players, 648.8 KiB (when a game is full, new players are"
        " turned away (41); players are never forgotten for being away)",
        "In all: 2 games, up to 2,001 records, 649.2 KiB reserved.",
        "When a game is full, the player away longest makes room; players away 30"
        " days are forgotten.",
    ] == banner(list(app.slabs.values()), defaults)


def test_the_index_of_a_capsule_that_includes_nothing_lists_its_routes() -> None:
    app = SessionApplication("My capsule")

    @app.session_route("/coins", record=Coins)
    def coins(request: Request, record: Coins) -> Response:
        """Count your coins"""
        return Response(Status.SUCCESS, "text/plain", str(record.coins))

    @app.route("/about")
    def about_me(request: Request) -> Response:
        return Response(Status.SUCCESS, "text/plain", "about")

    @app.route("/game/(?P<n>[0-9]+)")
    def pattern(request: Request, n: str) -> Response:
        return Response(Status.SUCCESS, "text/plain", n)

    page = SessionHarness(app).get("/", player=None)
    assert (
        Page(
            20,
            "text/gemini",
            "# My capsule\n\n=> /coins Count your coins\n=> /about about me\n",
        )
        == page
    )
