"""Playing a game as a player does: by the links its pages give.

Every step of play is taken at a link only the capsule could have shown the
player (a token in its path), so a test reads the link off the page, as a
client does, rather than writing it.
"""

from __future__ import annotations

import re

from jetforce_sesh.testing import Page, SessionHarness

#: A token as the capsule spells it: 16 characters of lower-case base32.
TOKEN = "[a-z2-7]{16}"


def link_to(page: Page, label: str) -> str:
    """The URL of ``page``'s link whose label starts with ``label``."""
    found = re.search(rf"^=> (\S+) {re.escape(label)}", page.body, re.M)
    assert found is not None, (label, page.body)
    return found.group(1)


def tokened(path: str, url: str) -> bool:
    """Whether ``url`` is ``path`` with a token (and maybe a query)."""
    return re.fullmatch(rf"{re.escape(path)}/{TOKEN}(\?.*)?", url) is not None


def masked(body: str) -> str:
    """``body`` with each token written ``<token>``, to compare whole pages."""
    return re.sub(rf"/{TOKEN}\b", "/<token>", body)


def visit(
    harness: SessionHarness,
    url: str,
    *,
    player: str = "player",
    query: str | None = None,
) -> Page:
    """Open ``url`` (a link's: it may carry a query of its own) as ``player``,
    or answer ``query`` there."""
    path, mark, carried = url.partition("?")
    if mark and query is None:
        query = carried
    return harness.get(path, player=player, query=query)


def follow(
    harness: SessionHarness,
    page: Page,
    label: str,
    answer: str | None = None,
    *,
    player: str = "player",
) -> Page:
    """Follow ``page``'s link ``label`` as ``player``; where it asks (``10``),
    answer ``answer``."""
    url = link_to(page, label)
    step = visit(harness, url, player=player)
    if step.status == 10 and answer is not None:
        step = visit(harness, url, player=player, query=answer)
    return step
