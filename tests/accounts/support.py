"""A capsule with accounts and one counting game, and the steps a player takes
on its pages: each follows the links the pages show, as a person would."""

from __future__ import annotations

import re

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.internet.task import deferLater

from jetforce_sesh import SessionApplication, use_accounts
from jetforce_sesh.accounts import SWEEP_EVERY, AccountOptions, Accounts
from jetforce_sesh.testing import Page, SessionHarness, fingerprint_of
from tests.confirming import TOKEN

__all__ = [
    "SWEEP_EVERY",
    "Visits",
    "accounts",
    "app",
    "code_from",
    "enter",
    "evict_link",
    "fingerprint_of",
    "link",
    "link_at",
    "links_to",
    "make_code",
    "revoke",
    "visits",
]

app = SessionApplication("accounts test")


@attrs.define
class Visits:
    count: int = 0


visits = app.slab(Visits, name="visits", record_size=32)


@app.session_route("/visit", record=Visits)
def visit(request: Request, record: Visits) -> Response:
    record.count += 1
    return Response(Status.SUCCESS, "text/plain", str(record.count))


@app.session_route("/slow", record=Visits)
async def slow(request: Request, record: Visits) -> Response:
    seen = record.count
    await deferLater(visits.clock, 1, lambda: None)
    record.count = seen + 1
    return Response(Status.SUCCESS, "text/plain", str(record.count))


accounts = use_accounts(app, Accounts(AccountOptions(code_ttl=600.0)))


def code_from(page: Page) -> str:
    found = re.search(r"^> ([0-9A-Z]{4}-[0-9A-Z]{4})$", page.body, re.M)
    assert found is not None, page.body
    return found.group(1)


def link_at(page: Page, label: str) -> str:
    """The path of the link labelled ``label`` on ``page``."""
    found = re.search(rf"^=> (\S+) {re.escape(label)}$", page.body, re.M)
    assert found is not None, (label, page.body)
    return found.group(1)


def links_to(page: Page, start: str) -> list[str]:
    """The paths of ``page``'s links that start with ``start``."""
    return [line.split()[1] for line in page.lines if line.startswith(f"=> {start}")]


def make_code(harness: SessionHarness, player: str) -> str:
    """Make a link code as ``player`` does: its account page's link; when a
    code is live already, the question whether to end it, answered yes."""
    page = harness.get("/account", player=player)
    made = harness.get(link_at(page, "Make a link code"), player=player)
    if "Your link code:" not in made.body:
        at = link_at(made, "Make a new link code (you are asked first)")
        assert re.fullmatch("/account/code/" + TOKEN, at), at
        assert 10 == harness.get(at, player=player).status
        made = harness.get(at, player=player, query="yes")
    return code_from(made)


def enter(
    harness: SessionHarness, player: str, code: str, *, confirm: str | None = "yes"
) -> Page:
    """Enter ``code`` as ``player`` does, at its account page's prompt link,
    and answer the confirmation with ``confirm`` (None: stop at the question)."""
    page = harness.get("/account", player=player)
    at = link_at(page, "Enter a code from another certificate")
    assert re.fullmatch("/account/link/" + TOKEN, at), at
    asked = harness.get(at, player=player)
    if asked.status != 11:
        return asked  # 44: wait before guessing again
    answered = harness.get(at, player=player, query=code)
    if answered.status != 30 or confirm is None:
        return answered
    assert re.fullmatch("/account/join/" + TOKEN, answered.meta), answered
    question = harness.get(answered.meta, player=player)
    assert 10 == question.status, question
    return harness.get(answered.meta, player=player, query=confirm)


def link(harness: SessionHarness, maker: str, joiner: str) -> Page:
    """Link ``joiner`` into ``maker``'s account, the whole way."""
    return enter(harness, joiner, make_code(harness, maker))


def revoke(
    harness: SessionHarness, player: str, *, by: str, answer: str = "yes"
) -> Page:
    """Revoke ``player`` from ``by``'s account page, answering ``answer``."""
    page = harness.get("/account", player=by)
    short = fingerprint_of(player).hex()[:16]
    links = re.findall(rf"^=> (/account/revoke/{short}/\S+) ", page.body, re.M)
    assert 1 == len(links), page.body
    asked = harness.get(links[0], player=by)
    assert 10 == asked.status, asked
    return harness.get(links[0], player=by, query=answer)


def evict_link(player: str) -> None:
    """Drop ``player``'s link record, as an idle expiry would."""
    store = accounts.members.opened.immediate
    assert store is not None
    assert store.delete_now(fingerprint_of(player))
