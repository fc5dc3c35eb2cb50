"""The tutorial, run as written: its install line in a fresh venv made from a clean
copy of the checkout, its files, its tests, its server and its agunua session.

A step the tutorial forgets (a package it never installs, a file it never shows)
fails here. The one change made to what it says: the server listens on a free
port rather than 1965, and the URLs typed at it say so.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.machine import blocks as blocks_of
from tests.docs.machine import run
from tests.support import REPO, Server

pytestmark = pytest.mark.e2e

TUTORIAL = REPO / "docs" / "tutorial.md"


def blocks(language: str) -> list[str]:
    return blocks_of(TUTORIAL, language)


def write_files(game: Path) -> list[str]:
    """Each Python block goes to the file its first line names, or after the
    previous block in the same file."""
    written: list[str] = []
    for body in blocks("python"):
        named = re.match(r"# (\w+\.py)\n", body)
        if named:
            written.append(named.group(1))
            (game / named.group(1)).write_text(body)
        else:
            with (game / written[-1]).open("a") as out:
                out.write("\n\n" + body)
    return written


def test_the_tutorial_runs_as_written(reader: dict[str, Path]) -> None:
    game = reader["game"]
    env: dict[str, str] = reader["env"]  # type: ignore[assignment]
    assert ["pig.py", "test_pig.py"] == write_files(game)
    shells = blocks("sh")
    assert "python -m pytest -q test_pig.py\n" == shells[1]
    tested = run(shells[1], game, env)
    assert 0 == tested.returncode, tested.stdout + tested.stderr
    assert "8 passed" in tested.stdout.splitlines()[-1]

    assert "jetforce-sesh --app pig:app\n" == shells[2]
    command = [str(reader["venv"] / "bin" / "jetforce-sesh"), "--app", "pig:app"]
    server = Server([], command=command, cwd=game)
    try:
        port = server.port
        shown = (
            blocks("text")[0]
            .replace("1965", str(port))
            .replace("gemini://localhost/", f"gemini://localhost:{port}/")
        )
        printed = "".join(server.output)
        assert shown in printed[printed.index("Games and the players'") :]
        session = shells[3].replace(
            "gemini://localhost/", f"gemini://localhost:{port}/"
        )
        commands = session.replace("\\\n", " ").splitlines()
        played = [run(command, game, env) for command in commands]
    finally:
        server.stop()
    made, index, pig, ask, again, fed, anonymous = played
    assert 0 == made.returncode, made.stderr
    assert (0, True) == (
        index.returncode,
        "=> /pig Piggy bank: fill it, smash it" in index.stdout,
    )
    assert (0, True) == (pig.returncode, "The pig holds 0 of 100 coins." in pig.stdout)
    # agunua shows a 10 prompt and exits 0; on 60 it says what it got, exits 1.
    assert 'Input requested ("How many coins? (1 to 10)")' in ask.stdout
    assert (
        'Input requested ("That is not a number from 1 to 10: how many coins?")'
        in again.stdout
    )
    assert (0, True) == (fed.returncode, "Clink! 7 coins go in." in fed.stdout)
    assert (1, True) == (
        anonymous.returncode,
        "Problem, Client certificate request" in anonymous.stderr,
    )
