"""@session_route: records handed in, changes kept, failures rolled back, statuses."""

from __future__ import annotations

import re
from typing import Any

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.logger import capturedLogs

from jetforce_sesh import (
    Abort,
    ConfigError,
    RecordInvalid,
    SessionApplication,
    Slab,
    StoreNotOpen,
    memory_stores,
    player_key,
)
from jetforce_sesh.records.codec import reset
from jetforce_sesh.session.visit import after_save
from jetforce_sesh.stores import ANY_VERSION, MemoryStore, StoreSpec, StoreStats
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of

FAILED = Page(42, "An unexpected error occurred; your previous state is kept", "")


@attrs.define
class Tally:
    count: int = 0
    note: str = ""


@attrs.define
class Other:
    count: int = 100


def tally_app(**slab_options: Any) -> tuple[SessionApplication, Slab[Tally]]:
    app = SessionApplication("Tally")
    slab = app.slab(Tally, record_size=64, **slab_options)

    @app.session_route("/inc", record=Tally)
    def inc(request: Request, record: Tally) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/look", record=Tally)
    def look(request: Request, record: Tally) -> Response:
        return Response(Status.SUCCESS, "text/plain", f"count {record.count}")

    @app.session_route("/note/(?P<text>[a-z]*)", record=Tally)
    def note(request: Request, record: Tally, text: str) -> Response:
        record.note = text * 100 if request.query == "long" else text
        return Response(Status.SUCCESS, "text/plain", f"note {record.note}")

    @app.session_route("/boom", record=Tally)
    def boom(request: Request, record: Tally) -> Response:
        record.count += 1000
        raise RuntimeError("handler bug")

    @app.session_route("/wrong", record=Tally)
    def wrong(request: Request, record: Tally) -> Any:
        record.count += 1000
        return "not a response"

    @app.session_route("/mistyped", record=Tally)
    def mistyped(request: Request, record: Tally) -> Response:
        record.count = "many"  # type: ignore[assignment]
        return Response(Status.SUCCESS, "text/plain", "stored?")

    @app.session_route("/refuse", record=Tally)
    def refuse(request: Request, record: Tally) -> Response:
        record.count += 1000
        raise Abort(Response(Status.BAD_REQUEST, "That is not a move"))

    @app.session_route("/reset", record=Tally)
    def restart(request: Request, record: Tally) -> Response:
        reset(record)
        return Response(Status.SUCCESS, "text/plain", "afresh")

    @app.session_route("/who", record=Tally)
    def who(request: Request, record: Tally) -> Response:
        return Response(Status.SUCCESS, "text/plain", player_key(request).hex())

    return app, slab


def stored(slab: Slab[Tally], player: str) -> Tally | None:
    return slab.peek_now(fingerprint_of(player))


def test_changes_are_saved_per_player() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    assert harness.get("/inc", player="alice").body == "count 1"
    assert harness.get("/inc", player="alice").body == "count 2"
    assert harness.get("/inc", player="bob").body == "count 1"
    assert Tally(count=2) == stored(slab, "alice")


def test_url_groups_reach_the_handler() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    assert Page(20, "text/plain", "note abc") == harness.get("/note/abc")
    assert Tally(note="abc") == stored(slab, "player")


def test_the_handler_knows_the_key_of_its_player() -> None:
    app, _ = tally_app()
    harness = SessionHarness(app)
    assert fingerprint_of("alice").hex() == harness.get("/who", player="alice").body


def test_player_key_outside_a_session_route_names_the_fix() -> None:
    request = Request({"GEMINI_URL": "gemini://localhost/"})
    with pytest.raises(LookupError) as raised:
        player_key(request)
    assert (
        "player_key() is for handlers of session routes: this request did not go"
        " through one"
    ) == str(raised.value)


def test_no_certificate_is_60_and_reads_no_record() -> None:
    app, slab = tally_app()
    page = SessionHarness(app).get("/inc", player=None)
    assert (
        Page(
            60,
            "This capsule remembers you by your client certificate: attach one and try"
            " again",
            "",
        )
        == page
    )
    assert StoreStats(in_use=0, capacity=10000) == slab.store.stats()


def test_expired_certificate_is_62_and_reads_no_record() -> None:
    app, slab = tally_app()
    page = SessionHarness(app).get("/inc", not_after="2025-06-30T12:00:00Z")
    assert Page(62, "Your certificate expired on 2025-06-30: make a new one", "") == (
        page
    )
    assert 0 == slab.store.stats().misses


def test_certificate_not_yet_valid_is_62() -> None:
    app, _ = tally_app()
    page = SessionHarness(app).get("/inc", not_before="2026-02-01T00:00:00Z")
    assert (
        Page(
            62,
            "Your certificate is not valid until 2026-02-01 00:00 UTC: use another one",
            "",
        )
        == page
    )


def test_a_look_creates_no_record_for_a_new_player() -> None:
    app, slab = tally_app()
    assert SessionHarness(app).get("/look").body == "count 0"
    assert 0 == slab.store.stats().in_use


class CountingStore(MemoryStore):
    saves = 0

    def save_now(self, key: bytes, data: bytes, expected: int) -> int:
        CountingStore.saves += 1
        return super().save_now(key, data, expected)


def counting_stores(spec: StoreSpec) -> MemoryStore:
    return CountingStore(
        spec.name,
        record_size=spec.record_size,
        capacity=spec.options.max_records,
        clock=spec.clock,
    )


def test_a_record_is_written_only_when_it_changed() -> None:
    app, _ = tally_app()
    CountingStore.saves = 0
    harness = SessionHarness(app, stores=counting_stores)
    harness.get("/inc")
    harness.get("/look")
    harness.get("/look")
    harness.get("/note/")  # sets note to "" again: same bytes
    assert 1 == CountingStore.saves


def test_handler_that_raises_saves_nothing_and_answers_42() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/inc")
    with capturedLogs() as events:
        page = harness.get("/boom")
    assert FAILED == page
    assert Tally(count=1) == stored(slab, "player")
    assert ["session route {name} failed"] == [e["log_format"] for e in events]
    assert "count 2" == harness.get("/inc").body  # the record is not left locked
    assert 1 == slab.stats.failures


def test_handler_returning_no_response_saves_nothing() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    with capturedLogs() as events:
        assert FAILED == harness.get("/wrong")
    assert stored(slab, "player") is None
    assert [
        "session route wrong returned 'not a response': return a jetforce Response"
    ] == [str(e["log_failure"].value) for e in events]


def test_a_value_of_the_wrong_type_is_not_stored_and_is_42() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/inc")
    with capturedLogs() as events:
        assert FAILED == harness.get("/mistyped")
    assert Tally(count=1) == stored(slab, "player")
    assert [
        "Tally.count holds 'many' (str), not an int: records keep only what their"
        " field types allow"
    ] == [str(e["log_failure"].value) for e in events]


def test_record_too_large_keeps_the_previous_one_and_is_50() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/note/ab")
    with capturedLogs() as events:
        page = harness.get("/note/ab", query="long")
    assert (
        Page(
            50,
            "Your progress no longer fits this game's records; your previous state"
            " is kept",
            "",
        )
        == page
    )
    assert Tally(note="ab") == stored(slab, "player")
    assert [
        "not saved: Tally encodes to 216 bytes but its slots hold 64: raise its"
        " record_size or store less"
    ] == ["not saved: " + e["error"] for e in events]
    assert 1 == slab.stats.too_large


def test_abort_answers_its_response_and_keeps_nothing() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/inc")
    with capturedLogs() as events:
        page = harness.get("/refuse")
    assert Page(59, "That is not a move", "") == page
    assert Tally(count=1) == stored(slab, "player")
    assert [] == events


def test_reset_puts_every_field_back_to_its_default_and_keeps_it() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/inc")
    harness.get("/note/abc")
    assert "afresh" == harness.get("/reset").body
    assert Tally() == stored(slab, "player")


def test_full_slab_that_refuses_answers_new_players_41_when_they_act() -> None:
    app, slab = tally_app(max_records=2, on_full="refuse")
    harness = SessionHarness(app)
    harness.get("/inc", player="a")
    harness.get("/inc", player="b")
    # A look keeps nothing, so it needs no room.
    assert "count 0" == harness.get("/look", player="c").body
    assert Page(
        41,
        "This game is full and is not taking new players right now; try again later",
        "",
    ) == harness.get("/inc", player="c")
    assert "count 2" == harness.get("/inc", player="a").body
    assert stored(slab, "c") is None
    assert 1 == slab.store.stats().refusals


def test_full_slab_that_evicts_forgets_the_least_recent_player() -> None:
    app, slab = tally_app(max_records=2)
    harness = SessionHarness(app)
    for player in ("a", "b", "a", "c"):
        harness.get("/inc", player=player)
    assert stored(slab, "b") is None
    assert Tally(count=2) == stored(slab, "a")


def test_each_record_type_has_its_own_slab() -> None:
    app, slab = tally_app()

    @app.session_route("/other", record=Other)
    def other(request: Request, record: Other) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", str(record.count))

    harness = SessionHarness(app)
    harness.get("/inc")
    assert "101" == harness.get("/other").body
    assert Tally(count=1) == stored(slab, "player")
    assert Other(count=101) == app.slabs[Other].peek_now(fingerprint_of("player"))


def test_conflicting_declarations_fail_at_import() -> None:
    app, _ = tally_app()
    with pytest.raises(ConfigError) as raised:
        app.slab(Tally, record_size=128)
    assert (
        "slab 'tests.session.test_route.Tally' is declared twice with different"
        " settings"
        " (record_size=64 and record_size=128): declare it once, with app.slab(),"
        " and pass only record= to session_route"
    ) == str(raised.value)


def test_a_session_route_needs_a_path() -> None:
    app = SessionApplication()
    with pytest.raises(TypeError) as raised:
        app.session_route(record=Tally)  # type: ignore[call-arg]
    assert "missing 1 required positional argument: 'path'" in str(raised.value)


def test_route_before_open_names_the_fix() -> None:
    app, _ = tally_app()
    request = Request(
        {
            "GEMINI_URL": "gemini://localhost/inc",
            "TLS_CLIENT_HASH": "SHA256:" + "A" * 64,
        }
    )
    route = next(r for p, r in app.routes if p.path == "/inc")
    with pytest.raises(StoreNotOpen) as raised:
        route(request)
    assert (
        "slab 'tests.session.test_route.Tally' is not open: start the capsule with"
        " jetforce-sesh, or call app.open(clock) before serving"
    ) == str(raised.value)


# -- after_save ----------------------------------------------------------------


def test_after_save_runs_once_the_change_is_kept_and_never_for_a_failure() -> None:
    app = SessionApplication()
    app.slab(Tally, record_size=64)
    said: list[str] = []

    @app.session_route("/shout/(?P<word>[a-z]+)", record=Tally)
    def shout(request: Request, record: Tally, word: str) -> Response:
        record.count += 1
        after_save(request, lambda: said.append(f"{word} {record.count}"))
        if word == "fail":
            raise RuntimeError("after registering")
        return Response(Status.SUCCESS, "text/plain", "ok")

    harness = SessionHarness(app)
    harness.get("/shout/hello")
    with capturedLogs():
        harness.get("/shout/fail")
    harness.get("/shout/again")
    assert ["hello 1", "again 2"] == said


def test_after_save_outside_a_session_route_names_the_fix() -> None:
    with pytest.raises(LookupError) as raised:
        after_save(Request({"GEMINI_URL": "gemini://localhost/"}), lambda: None)
    assert (
        "after_save() is for handlers of session routes: this request did not go"
        " through one"
    ) == str(raised.value)


def test_a_failing_after_save_callback_is_logged_and_the_answer_stands() -> None:
    app = SessionApplication()
    app.slab(Tally, record_size=64)

    def broken() -> None:
        raise RuntimeError("mail server down")

    @app.session_route("/inc", record=Tally)
    def inc(request: Request, record: Tally) -> Response:
        record.count += 1
        after_save(request, broken)
        return Response(Status.SUCCESS, "text/plain", str(record.count))

    harness = SessionHarness(app)
    with capturedLogs() as events:
        assert Page(20, "text/plain", "1") == harness.get("/inc")
    assert ["after_save callback {callback!r} of session route {name} failed"] == [
        e["log_format"] for e in events
    ]
    assert Tally(count=1) == app.slabs[Tally].peek_now(fingerprint_of("player"))


# -- records that cannot be read -------------------------------------------------


def garble(
    slab: Slab[Any], player: str, data: bytes = b"\x01\x81\xa5count\xa3two"
) -> None:
    """Store bytes under ``player`` that are no record of the slab's class."""
    store = slab.store
    assert isinstance(store, MemoryStore)
    store.save_now(fingerprint_of(player), data, ANY_VERSION)


RESET = "/sesh/reset/tests.session.test_route.Tally"


def unreadable_page(reset: str) -> str:
    return (
        "# Your saved game cannot be read\n\n"
        "Your saved state for Tally is kept as it is, but this version of the"
        " capsule cannot read it. Its owner has been told and can recover it.\n\n"
        "You can wait for the owner, or start this game afresh; that deletes the"
        " saved state and asks you to confirm first.\n\n"
        f"=> {reset} Start Tally afresh\n"
        "=> / Back to the capsule\n"
    )


def reset_link(page: Page) -> str:
    """The reset link an unreadable record's page shows: the reset path and a
    token of 16 base32 characters."""
    (line,) = [line for line in page.lines if line.startswith("=> /sesh/reset/")]
    path = line.split()[1]
    assert re.fullmatch(re.escape(RESET) + "/[a-z2-7]{16}", path), path
    return path


def test_an_unreadable_record_gets_a_page_and_is_kept_and_logged_once() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    garble(slab, "alice")
    with capturedLogs() as events:
        first = harness.get("/inc", player="alice")
        second = harness.get("/look", player="alice")
    reset = reset_link(first)
    assert Page(20, "text/gemini", unreadable_page(reset)) == first == second
    assert [
        "slab tests.session.test_route.Tally: the record of player"
        f" {fingerprint_of('alice')[:4].hex()} cannot be read (Tally.count was"
        " stored as 'two' (str) but is now an int: add __sesh_migrate__ to the"
        " class to carry old records over); it is kept as it is, version 1",
        "slab tests.session.test_route.Tally: the unreadable record of player"
        f" {fingerprint_of('alice')[:4].hex()}, version 1, is bytes"
        " 0181a5636f756e74a374776f",
    ] == [e["log_format"].format(**e) for e in events]
    assert ["warn", "debug"] == [e["log_level"].name for e in events]
    assert 2 == slab.stats.unreadable
    store = slab.store
    assert isinstance(store, MemoryStore)
    kept = store.peek_now(fingerprint_of("alice"))
    assert kept is not None and b"\x01\x81\xa5count\xa3two" == kept.data
    assert "count 1" == harness.get("/inc", player="bob").body


def test_reading_across_players_skips_unreadable_records_and_counts_them() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/inc", player="alice")
    garble(slab, "bob", b"junk")
    with capturedLogs():
        assert [(fingerprint_of("alice"), Tally(count=1))] == list(slab.records_now())
    assert 1 == slab.stats.unreadable


def test_the_reset_route_asks_at_its_own_link_then_deletes_an_unreadable_record() -> (
    None
):
    app, slab = tally_app()
    harness = SessionHarness(app)
    garble(slab, "alice")
    prompt = Page(
        10,
        "Type yes to delete your unreadable saved state for Tally and start afresh",
        "",
    )
    with capturedLogs():
        reset = reset_link(harness.get("/inc", player="alice"))
        assert prompt == harness.get(reset, player="alice")
        assert Page(
            20,
            "text/gemini",
            "# Nothing was deleted\n\n"
            "Your saved state for Tally is kept as it is: the answer was not"
            " yes.\n\n=> / Play Tally\n=> / Back to the capsule\n",
        ) == harness.get(reset, player="alice", query="no")
        assert Page(
            20,
            "text/gemini",
            "# Started afresh\n\n"
            "Your saved state for Tally is deleted; your next visit starts"
            " anew.\n\n=> / Play Tally\n=> / Back to the capsule\n",
        ) == harness.get(reset, player="alice", query="yes")
    assert stored(slab, "alice") is None
    assert "count 1" == harness.get("/inc", player="alice").body


def test_a_reset_link_from_elsewhere_deletes_nothing_and_asks_at_its_own() -> None:
    """``/sesh/reset/<slab>?yes`` on another capsule's page, a link with
    another player's token, and a token for another record: each is sent to a
    fresh link of the player's own, which asks; nothing is deleted."""
    app, slab = tally_app()
    harness = SessionHarness(app)
    garble(slab, "alice")
    garble(slab, "mallory")
    with capturedLogs():
        theirs = reset_link(harness.get("/inc", player="mallory"))
        for path in (RESET, RESET + "/", theirs, RESET + "/" + "a" * 16):
            page = harness.get(path, player="alice", query="yes")
            assert 30 == page.status, (path, page)
            assert page.meta != theirs
            assert re.fullmatch(re.escape(RESET) + "/[a-z2-7]{16}", page.meta)
            assert slab.store.peek_now(fingerprint_of("alice")) is not None  # type: ignore[attr-defined]
        mine = harness.get(RESET, player="alice").meta
        garble(slab, "alice", b"\x01\x81\xa5count\xa5three")  # the record changed
        stale = harness.get(mine, player="alice", query="yes")
        assert (30, True) == (stale.status, stale.meta != mine)
        assert slab.store.peek_now(fingerprint_of("alice")) is not None  # type: ignore[attr-defined]


def test_the_reset_route_leaves_a_readable_record_alone() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    harness.get("/inc")
    page = harness.get("/sesh/reset/tests.session.test_route.Tally", query="yes")
    assert (
        Page(
            20,
            "text/gemini",
            "# Nothing to reset\n\n"
            "Your saved state for Tally can be read (or there is none): nothing needs"
            " starting afresh here.\n\n=> / Play Tally\n=> / Back to the capsule\n",
        )
        == page
    )
    assert Tally(count=1) == stored(slab, "player")


def test_the_reset_route_of_an_unknown_slab_is_51() -> None:
    app, _ = tally_app()
    assert Page(51, "Not Found", "") == SessionHarness(app).get("/sesh/reset/nope")


def test_an_included_game_is_reset_through_the_capsule() -> None:
    game, slab = tally_app()
    capsule = SessionApplication("Capsule")
    capsule.include(game)
    harness = SessionHarness(capsule)
    garble(slab, "alice")
    with capturedLogs():
        reset = reset_link(harness.get("/inc", player="alice"))
        page = harness.get(reset, player="alice", query="yes")
    assert "# Started afresh" == page.lines[0]
    assert 1 == sum(1 for pattern, _ in capsule.routes if "sesh/reset" in pattern.path)


def test_a_route_may_wait_for_its_own_deferred_without_the_store() -> None:
    app = SessionApplication()
    app.slab(Tally, record_size=64)
    gate: Deferred[None] = Deferred()

    @app.session_route("/wait", record=Tally)
    async def wait(request: Request, record: Tally) -> Response:
        await gate
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", str(record.count))

    harness = SessionHarness(app, stores=memory_stores)
    pages: list[Page] = []
    harness.request("/wait").addCallback(pages.append)
    assert [] == pages
    gate.callback(None)
    assert [Page(20, "text/plain", "1")] == pages


def test_a_look_keeps_nothing_even_when_a_default_is_drawn_at_random() -> None:
    draws = iter(range(1, 1000))

    @attrs.define
    class Secret:
        number: int = attrs.Factory(lambda: next(draws))

    app = SessionApplication()
    app.slab(Secret, record_size=32)

    @app.session_route("/look", record=Secret)
    def look(request: Request, record: Secret) -> Response:
        return Response(Status.SUCCESS, "text/plain", "a look")

    harness = SessionHarness(app)
    assert "a look" == harness.get("/look").body
    assert StoreStats(in_use=0, capacity=10000, misses=1) == (
        app.slabs[Secret].store.stats()
    )


def test_a_wrong_typed_value_is_counted_apart_from_other_failures() -> None:
    app, slab = tally_app()
    harness = SessionHarness(app)
    with capturedLogs():
        harness.get("/mistyped")
        harness.get("/boom")
    assert (1, 1) == (slab.stats.invalid, slab.stats.failures)


@attrs.define
class Bag:
    items: list[str] = attrs.field(factory=list, validator=attrs.validators.max_len(3))


def bag_app() -> tuple[SessionApplication, Slab[Bag]]:
    app = SessionApplication("bag")
    slab = app.slab(Bag, record_size=64)

    @app.session_route("/add", record=Bag)
    def add(request: Request, record: Bag) -> Response:
        record.items.append(request.query or "x")  # in place: no validator runs
        return Response(Status.SUCCESS, "text/plain", f"{len(record.items)} items")

    return app, slab


def test_a_record_its_class_would_not_read_back_is_not_saved_and_is_42() -> None:
    """A list grown in place past its max_len passes attrs on the way in but not
    on the way out: saved, the player's next visit could not read it. It is
    refused at the save, the previous record kept and readable."""
    app, slab = bag_app()
    harness = SessionHarness(app)
    assert ["1 items", "2 items", "3 items"] == [
        harness.get("/add", query=f"i{n}").body for n in range(3)
    ]
    with capturedLogs() as events:
        assert FAILED == harness.get("/add", query="i3")
    assert Bag(["i0", "i1", "i2"]) == stored_bag(slab)
    assert [
        "Bag would not read back what was saved (Bag refused the stored values:"
        " ValueError: Length of 'items' must be <= 3: 4): nothing was stored; a"
        " record is kept only if its class reads it back"
    ] == [str(e["log_failure"].value) for e in events]
    assert 1 == slab.stats.invalid
    with capturedLogs():
        assert FAILED == harness.get("/add", query="i4")  # read, and refused again
    assert Bag(["i0", "i1", "i2"]) == stored_bag(slab)


def test_a_change_outside_a_route_its_class_would_not_read_back_is_refused() -> None:
    app, slab = bag_app()
    harness = SessionHarness(app)
    harness.get("/add")

    def grow(record: Bag | None) -> Bag:
        assert record is not None
        record.items.extend(["y", "z", "w"])
        return record

    failures: list[Any] = []
    slab.change(fingerprint_of("player"), grow).addErrback(failures.append)
    assert [RecordInvalid] == [failure.type for failure in failures]
    assert Bag(["x"]) == stored_bag(slab)


def stored_bag(slab: Slab[Bag]) -> Bag | None:
    return slab.peek_now(fingerprint_of("player"))
