"""The examples: each opens with a docstring, stays short, plays, and runs alone."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings

from examples import coin_flip
from jetforce_sesh.stores import StateDirectory
from jetforce_sesh.testing import SessionHarness
from tests.games.test_tictactoe import assert_tidy, opened
from tests.strategies import player_input
from tests.support import REPO, ClientCert, Server

EXAMPLES = sorted((REPO / "examples").glob("*.py"))


@pytest.fixture
def harness() -> Iterator[SessionHarness]:
    with opened(coin_flip.app) as opened_harness:
        yield opened_harness


@pytest.fixture
def landing(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Choose the side the coin lands on (the example calls random.choice)."""

    def land(side: str) -> None:
        monkeypatch.setattr("random.choice", lambda sides: side)

    return land


def test_there_is_an_example() -> None:
    assert [path.name for path in EXAMPLES] == ["coin_flip.py", "server_script.py"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_an_example_opens_with_a_docstring_that_says_what_it_demonstrates(
    path: Path,
) -> None:
    docstring = ast.get_docstring(ast.parse(path.read_text()))
    assert docstring is not None
    assert "demonstrates" in docstring
    # How to run it: with the launcher, or a server script on its own.
    assert (
        f"--app examples.{path.stem}:app" in docstring
        or f"python examples/{path.name}" in docstring
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_an_example_is_under_60_lines(path: Path) -> None:
    assert len(path.read_text().splitlines()) < 60


def test_a_new_player_has_called_nothing(harness: SessionHarness) -> None:
    page = harness.get("/coin")
    assert page.body == (
        "# Coin flip\n\n"
        "You called 0 of 0 right. Streak 0, best 0.\n\n"
        "=> /coin/call?heads Call heads\n"
        "=> /coin/call?tails Call tails\n"
        "=> /coin/call Type your call\n"
        "=> / Back to the capsule\n"
    )


def test_calls_keep_a_streak_and_the_best_one(
    harness: SessionHarness, landing: Callable[[str], None]
) -> None:
    landing("heads")
    assert harness.get("/coin/call", query="heads").lines[2] == (
        "It landed heads: right!"
    )
    harness.get("/coin/call", query="HEADS ")
    page = harness.get("/coin/call", query="tails")
    assert page.lines[2] == "It landed heads: wrong!"
    assert page.lines[4] == "You called 2 of 3 right. Streak 0, best 2."
    assert_tidy(page)


def test_the_call_prompts_then_reprompts_saying_why(harness: SessionHarness) -> None:
    page = harness.get("/coin/call")
    assert (page.status, page.meta) == (10, "Heads or tails?")
    page = harness.get("/coin/call", query="edge")
    assert (page.status, page.meta) == (10, "Only heads or tails will do")
    assert harness.get("/coin").lines[2] == "You called 0 of 0 right. Streak 0, best 0."


def test_two_players_keep_their_own_streaks(
    harness: SessionHarness, landing: Callable[[str], None]
) -> None:
    landing("tails")
    harness.get("/coin/call", player="alice", query="tails")
    harness.get("/coin/call", player="bob", query="heads")
    harness.get("/coin/call", player="alice", query="tails")
    alice = harness.get("/coin", player="alice").lines[2]
    bob = harness.get("/coin", player="bob").lines[2]
    assert alice == "You called 2 of 2 right. Streak 2, best 2."
    assert bob == "You called 0 of 1 right. Streak 0, best 0."


@settings(max_examples=100, deadline=None)
@given(answer=player_input)
def test_any_typed_call_gets_a_page_or_a_reprompt(answer: str) -> None:
    with opened(coin_flip.app) as harness:
        page = harness.get("/coin/call", query=answer)
        if answer.strip().lower() in ("heads", "tails"):
            assert_tidy(page)
        else:
            expected = "Only heads or tails will do" if answer.strip() else None
            assert (page.status, page.meta) == (10, expected or "Heads or tails?")


@pytest.mark.e2e
def test_the_example_runs_alone_from_the_repository_root(
    make_cert: Callable[[str], ClientCert],
) -> None:
    """The command its docstring gives, as a user types it, over real TLS."""
    launcher = shutil.which("jetforce-sesh", path=str(Path(sys.executable).parent))
    if launcher is None:
        pytest.skip("the jetforce-sesh script is not installed next to this Python")
    server = Server(["--app", "examples.coin_flip:app"], command=[launcher], cwd=REPO)
    try:
        alice = make_cert("alice")
        reply = server.request("/coin", alice)
        assert (reply.status, reply.meta) == (20, "text/gemini")
        assert reply.body.startswith("# Coin flip\n")
        reply = server.request("/coin/call", alice, query="sideways")
        assert (reply.status, reply.meta) == (10, "Only heads or tails will do")
        reply = server.request("/coin/call", alice, query="heads")
        assert reply.body.splitlines()[4] == (
            "You called 1 of 1 right. Streak 1, best 1."
            if "right!" in reply.body
            else "You called 0 of 1 right. Streak 0, best 0."
        )
        assert server.request("/coin").status == 60
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["1966", "{state}"], "state directory '{state}' is in use by another server"),
        (["a-port"], "the port must be a number from 0 to 65535 (got 'a-port')"),
    ],
)
def test_the_server_script_refuses_what_cannot_work_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    """A state directory another server holds (or a port that is no number)
    stops the script with one line, as the launcher says it, not a traceback."""
    state = tmp_path / "state"
    held = StateDirectory(state)  # as a server running on it holds it
    try:
        result = subprocess.run(
            [
                sys.executable,
                "examples/server_script.py",
                *(arg.format(state=state) for arg in args),
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
    finally:
        held.release()
    expected = "server_script.py: error: " + message.format(state=state)
    assert (2, "") == (result.returncode, result.stdout)
    assert [expected] == [
        line[: len(expected)] for line in result.stderr.splitlines()
    ], result.stderr
