"""Following a confirmation as a player does: the bare link of a page answers a
``30`` to the same path with a token, where the question is asked."""

from __future__ import annotations

import re

from jetforce_sesh.testing import Page, SessionHarness

#: A token as confirm_path() spells it: 16 characters of lower-case base32.
TOKEN = "[a-z2-7]{16}"


def asked_at(harness: SessionHarness, path: str, *, player: str = "player") -> str:
    """Where ``path`` asks its question: the ``30`` its bare link answers."""
    page = harness.get(path, player=player)
    assert 30 == page.status, (path, page)
    assert re.fullmatch(re.escape(path) + "/" + TOKEN, page.meta), page.meta
    return page.meta


def confirm(
    harness: SessionHarness, path: str, answer: str = "yes", *, player: str = "player"
) -> Page:
    """Follow ``path``'s link, then type ``answer`` at the prompt it leads to."""
    at = asked_at(harness, path, player=player)
    prompt = harness.get(at, player=player)
    assert 10 == prompt.status, (at, prompt)
    return harness.get(at, player=player, query=answer)
