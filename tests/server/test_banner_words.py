"""The banner of the demo capsule, in the owner's words (issue 21): the account
slabs are counted as they are, not as a number the docs once gave, and said in
their own units, not "when a game is full"."""

from __future__ import annotations

import re

from jetforce_sesh.demo import accounts, app
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.server.banner import banner
from jetforce_sesh.testing import SessionHarness


def demo_banner() -> list[str]:
    SessionHarness(app)
    return banner(list(app.slabs.values()), SlabOptions())


def test_the_banner_counts_the_account_slabs_there_are() -> None:
    slabs = list(app.slabs.values())
    account_slabs = list(accounts.app.slabs.values())
    games = [slab for slab in slabs if slab not in account_slabs]
    assert all(slab.unit == "players" for slab in games)
    assert all(slab.unit != "players" for slab in account_slabs)
    lines = demo_banner()
    (total,) = [line for line in lines if line.startswith("In all: ")]
    assert total.startswith(
        f"In all: {len(games)} games and {len(account_slabs)} more slabs, up to"
    ), total


def test_account_slab_lines_say_full_in_their_own_units() -> None:
    lines = demo_banner()
    by_title = {
        line.split(": up to ")[0].strip(): line for line in lines if ": up to " in line
    }
    for slab in accounts.app.slabs.values():
        line = by_title.pop(slab.title or slab.name)
        assert "game" not in line and "player" not in line, line
        found = re.fullmatch(
            rf"  .+: up to [\d,]+ {slab.unit}, [\d.]+ (?:bytes|KiB|MiB) \(when full,"
            rf" (?:the {slab.unit} unused longest make room|new {slab.unit} are"
            rf" refused); (?:{slab.unit} unused for \d+ \w+ are forgotten|never"
            rf" forgotten for being unused)\)",
            line,
        )
        assert found is not None, line
    # What is left are the games: players, and a game's words if any.
    assert all(" players" in line for line in by_title.values()), by_title
