"""What the demo capsule's pages say once accounts make several certificates one
player (issue 21): the home page speaks of "you", not of "this certificate", and
the account page shows no date of a certificate's first visit that is only the
first visit to /account."""

from __future__ import annotations

import datetime
import re

from jetforce_sesh.demo import app
from jetforce_sesh.testing import START, SessionHarness, fingerprint_of
from tests.accounts.support import link


def shown(stamp: float) -> str:
    """A moment as a person reads it on the page, to the minute."""
    return datetime.datetime.fromtimestamp(stamp, datetime.UTC).strftime(
        "%Y-%m-%d %H:%M UTC"
    )


def section(body: str, title: str) -> list[str]:
    """The lines of the page's ``## title`` section, up to the next blank line."""
    lines = body.splitlines()
    start = lines.index(f"## {title}")
    end = lines.index("", start)
    return lines[start:end]


def test_the_home_page_with_accounts_speaks_of_you() -> None:
    harness = SessionHarness(app)
    for player in (None, "ann"):
        home = harness.get("/", player=player)
        assert 20 == home.status
        assert "this certificate" not in home.body.lower(), home.body
        assert "Small games that remember you by your client certificate." in (
            home.lines
        )
        counter = [line for line in home.lines if line.startswith("=> /counter ")]
        assert ["=> /counter Visit counter: how many times you have been here"] == (
            counter
        )


def test_a_first_certificate_shows_no_first_seen_of_its_first_account_page() -> None:
    harness = SessionHarness(app)
    assert 20 == harness.get("/counter", player="ann").status
    harness.clock.advance(3 * 86400 + 3600)
    page = harness.get("/account", player="ann")
    assert 20 == page.status
    later = START + 3 * 86400 + 3600
    assert shown(later) not in page.body, page.body
    assert "First seen" not in page.body
    assert [
        "## ann (this certificate)",
        f"Fingerprint {fingerprint_of('ann').hex()[:16]}…",
        "The account's first certificate",
    ] == section(page.body, "ann (this certificate)")


def test_a_linked_certificate_shows_when_it_was_linked_and_last_seen() -> None:
    # Ben plays before he is linked, is linked an hour later, plays a day
    # later; Ann looks at the account page after that. Ben's lines say when he
    # was linked and when he last played: neither is Ann's visit to /account.
    harness = SessionHarness(app)
    harness.get("/counter", player="ben")
    harness.clock.advance(3600)
    linked_at = harness.clock.seconds()
    link(harness, "ann", "ben")
    harness.clock.advance(86400)
    played_at = harness.clock.seconds()
    assert 20 == harness.get("/counter", player="ben").status
    harness.clock.advance(7200)
    page = harness.get("/account", player="ann")
    ben = section(page.body, "ben")
    assert f"Fingerprint {fingerprint_of('ben').hex()[:16]}…" == ben[1]
    assert f"Linked on {shown(linked_at)}" == ben[2]
    assert f"Last seen {shown(played_at)}" == ben[3]
    assert re.fullmatch(r"Valid from \S+ until \S+", ben[4]), ben
    assert "First seen" not in page.body
