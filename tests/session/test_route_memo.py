"""The route memo: SessionApplication remembers which route answers a path, and
must answer exactly as a full scan of its routes would, however the routes
change (declared later, included, mutated as a list, replaced) and whatever
patterns they hold; and it holds a bounded number of paths."""

from __future__ import annotations

import re

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from jetforce.app.base import Request, Response, RoutePattern, Status

from jetforce_sesh import SessionApplication
from jetforce_sesh.session.application import ROUTE_MEMO_MAX
from jetforce_sesh.testing import SessionHarness, make_environ


def answer(name: str) -> object:
    def handler(request: Request, **groups: str) -> Response:
        shown = ",".join(f"{k}={v}" for k, v in sorted(groups.items()))
        return Response(Status.SUCCESS, "text/plain", f"{name} {shown}".strip())

    handler.__name__ = name
    return handler


def scanned(app: SessionApplication, path: str) -> tuple[object, dict[str, str]] | None:
    """The oracle: Jetforce's own choice, every pattern tried, last one first."""
    request = Request(make_environ(path))
    for pattern, callback in reversed(app.routes):
        found = pattern.match(request)
        if found is not None:
            return callback, found.groupdict()
    return None


def chosen(app: SessionApplication, path: str) -> tuple[object, dict[str, str]] | None:
    return app._route_for(Request(make_environ(path)))


def test_a_route_declared_after_a_path_was_served_answers_it() -> None:
    app = SessionApplication("late")
    harness = SessionHarness(app)
    assert 51 == harness.get("/late").status
    app.route("/late")(answer("late"))
    assert "late" == harness.get("/late").body
    app.route("/l.*")(answer("wider"))
    assert "wider" == harness.get("/late").body  # the last declared wins


def name_of(app: SessionApplication, path: str) -> str | None:
    """The name of the handler the memo picks for ``path``, checked against
    the oracle's pick."""
    found = chosen(app, path)
    assert scanned(app, path) == found
    return None if found is None else getattr(found[0], "__name__", None)


def test_routes_changed_as_a_list_or_replaced_are_seen() -> None:
    app = SessionApplication("listy")
    app.routes.append((RoutePattern("/a"), answer("first")))
    assert "first" == name_of(app, "/a")
    app.routes.insert(0, (RoutePattern("/a"), answer("under")))
    assert "first" == name_of(app, "/a")  # still the last one
    del app.routes[-1]
    assert "under" == name_of(app, "/a")
    app.routes[0] = (RoutePattern("/b"), answer("b"))
    assert (None, "b") == (name_of(app, "/a"), name_of(app, "/b"))
    app.routes = [(RoutePattern("/a"), answer("replaced"))]
    assert "replaced" == name_of(app, "/a")
    app.routes.append((RoutePattern("/a"), answer("appended")))
    assert "appended" == name_of(app, "/a")
    app.routes += [(RoutePattern("/a"), answer("added"))]
    assert "added" == name_of(app, "/a")
    app.routes.pop()
    assert "appended" == name_of(app, "/a")


class ByQuery(RoutePattern):
    """A pattern that also reads the query: what the memo's key cannot see."""

    def match(self, request: Request) -> re.Match[str] | None:
        return super().match(request) if request.query == "yes" else None


def test_a_pattern_of_another_class_is_tried_every_time() -> None:
    app = SessionApplication("custom")
    app.routes.append((ByQuery("/ask"), answer("asked")))
    harness = SessionHarness(app)
    assert 51 == harness.get("/ask").status
    assert "asked" == harness.get("/ask", query="yes").body
    assert 51 == harness.get("/ask", query="no").status


def test_the_memo_holds_a_bounded_number_of_paths() -> None:
    app = SessionApplication("many")
    app.route("/p/(?P<n>[0-9]+)")(answer("p"))
    for n in range(5 * ROUTE_MEMO_MAX):
        assert (app.routes[-1][1], {"n": str(n)}) == chosen(app, f"/p/{n}")
    assert len(app._memo) <= ROUTE_MEMO_MAX


def test_a_handler_that_changes_its_groups_changes_nothing_remembered() -> None:
    app = SessionApplication("groups")

    def greedy(request: Request, **groups: str) -> Response:
        groups["name"] = "changed"
        return Response(Status.SUCCESS, "text/plain", "ok")

    app.route("/g/(?P<name>[a-z]+)")(greedy)
    harness = SessionHarness(app)
    harness.get("/g/abc")
    assert (greedy, {"name": "abc"}) == chosen(app, "/g/abc")


PATHS = ["/", "/a", "/a/", "/a/b", "/b", "/ab", "/x/1", "/x/22", "/A", "/a//"]
PATTERNS = ["/a", "/a.*", "/b", "/x/(?P<n>[0-9])", "/x/(?P<n>[0-9]+)", ".*", "/A", ""]


class RoutesAgainstAScan(RuleBasedStateMachine):
    """Any sequence of route changes and requests: the memo's choice is the
    scan's, every time."""

    def __init__(self) -> None:
        super().__init__()
        self.app = SessionApplication("machine")
        self.names = 0

    def route(self, pattern: str, strict: bool) -> tuple[RoutePattern, object]:
        self.names += 1
        return (
            RoutePattern(pattern, strict_trailing_slash=strict),
            answer(f"r{self.names}"),
        )

    @rule(pattern=st.sampled_from(PATTERNS), strict=st.booleans())
    def declare(self, pattern: str, strict: bool) -> None:
        self.app.route(pattern, strict_trailing_slash=strict)(answer("declared"))

    @rule(pattern=st.sampled_from(PATTERNS), strict=st.booleans(), at=st.integers(0, 9))
    def insert(self, pattern: str, strict: bool, at: int) -> None:
        self.app.routes.insert(at, self.route(pattern, strict))

    @rule(at=st.integers(0, 9))
    def delete(self, at: int) -> None:
        if self.app.routes:
            del self.app.routes[at % len(self.app.routes)]

    @rule(pattern=st.sampled_from(PATTERNS), at=st.integers(0, 9))
    def replace_one(self, pattern: str, at: int) -> None:
        if self.app.routes:
            self.app.routes[at % len(self.app.routes)] = self.route(pattern, False)

    @rule()
    def reverse(self) -> None:
        self.app.routes.reverse()

    @rule(other=st.sampled_from(PATTERNS))
    def include(self, other: str) -> None:
        game = SessionApplication("game")
        game.route(other)(answer("included"))
        self.app.include(game)

    @rule(path=st.sampled_from(PATHS))
    def request(self, path: str) -> None:
        assert scanned(self.app, path) == chosen(self.app, path)

    @invariant()
    def every_path_as_scanned(self) -> None:
        for path in PATHS:
            assert scanned(self.app, path) == chosen(self.app, path)


RoutesAgainstAScan.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
test_routes_against_a_scan = RoutesAgainstAScan.TestCase
