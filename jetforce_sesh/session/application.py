"""SessionApplication: a Jetforce application whose routes can have session records."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable, Iterable
from typing import Any, SupportsIndex, TypeVar

from jetforce.app.base import (
    ApplicationCallable,
    ApplicationResponse,
    DeferredResponse,
    EnvironDict,
    JetforceApplication,
    RateLimiter,
    Request,
    Response,
    RouteHandler,
    RoutePattern,
    Status,
    WriteStatusCallable,
)
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IReactorTime

from jetforce_sesh.errors import ConfigError
from jetforce_sesh.keys import FingerprintKeys, IPlayerKeys
from jetforce_sesh.options import OnFull, SlabOptions, check_grace
from jetforce_sesh.session import autostart, confirm
from jetforce_sesh.session.answers import reset_path
from jetforce_sesh.session.route import (
    DEFAULT_TIMEOUT,
    ENVIRON_SECRET,
    ResetRoute,
    SessionRoute,
)
from jetforce_sesh.session.slab import Slab, check_same
from jetforce_sesh.session.visit import Handler
from jetforce_sesh.stores.contract import StoreFactory
from jetforce_sesh.stores.memory import memory_stores

R = TypeVar("R")

Route = tuple[RoutePattern, RouteHandler]

#: Request paths whose route an application remembers, before it starts over.
ROUTE_MEMO_MAX = 1024


class Routes(list[Route]):
    """An application's routes: a list, as Jetforce keeps them, that counts its
    own changes, so that what was learnt of it (which route answers a path) is
    never used once it changed, whichever way it was changed."""

    changes = 0

    def _changed(self) -> None:
        self.changes += 1

    def append(self, route: Route) -> None:
        super().append(route)
        self._changed()

    def extend(self, routes: Iterable[Route]) -> None:
        super().extend(routes)
        self._changed()

    def insert(self, index: SupportsIndex, route: Route) -> None:
        super().insert(index, route)
        self._changed()

    def remove(self, route: Route) -> None:
        super().remove(route)
        self._changed()

    def pop(self, index: SupportsIndex = -1) -> Route:
        route = super().pop(index)
        self._changed()
        return route

    def clear(self) -> None:
        super().clear()
        self._changed()

    def reverse(self) -> None:
        super().reverse()
        self._changed()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        super().sort(*args, **kwargs)
        self._changed()

    def __setitem__(self, index: Any, value: Any) -> None:
        super().__setitem__(index, value)
        self._changed()

    def __delitem__(self, index: Any) -> None:
        super().__delitem__(index)
        self._changed()

    def __iadd__(self, routes: Iterable[Route]) -> Routes:  # type: ignore[override,misc]
        super().__iadd__(routes)
        self._changed()
        return self

    def __imul__(self, times: SupportsIndex) -> Routes:
        super().__imul__(times)
        self._changed()
        return self


class SessionApplication(JetforceApplication):
    """A :class:`jetforce.JetforceApplication` with per-certificate records.

    ``title`` and ``entry`` name the application on a capsule's index page when
    it is included in another one with :meth:`include`.
    """

    def __init__(
        self,
        title: str = "",
        *,
        entry: str = "/",
        description: str = "",
        rate_limiter: RateLimiter | None = None,
        defaults: SlabOptions | None = None,
        stores: StoreFactory = memory_stores,
        grace: float = 10.0,
    ) -> None:
        super().__init__(rate_limiter=rate_limiter)
        self.routes: list[Route] = Routes()
        # (hostname, path) -> the route that answers it and its URL groups, or
        # None for no route; learnt from ``_memo_of``, the routes as they were.
        self._memo: dict[tuple[str, str], tuple[Any, dict[str, Any]] | None] = {}
        self._memo_of: tuple[object, int] = (None, -1)
        self._memo_exact = False
        self.title = title
        self.entry = entry
        self.description = description
        #: What a server script opens the slabs with (the launcher passes its
        #: command line's instead): settings for slabs that set none, the kind
        #: of store, and the seconds requests in flight get at shutdown.
        self.defaults = defaults
        self.stores = stores
        self.grace = check_grace(grace)
        #: True once :meth:`open` was called, by whatever runs the application.
        self.started = False
        #: Counts requests to session routes by certificate (--rate-limit-cert).
        self.certificate_limiter: RateLimiter | None = None
        self.slabs: dict[type, Slab[Any]] = {}
        self.included: list[SessionApplication] = []
        self.fallback: ApplicationCallable | None = None
        #: The key step: which key a request's records are kept under.
        self.keys: IPlayerKeys = FingerprintKeys()
        self._open_callbacks: list[Callable[[IReactorTime], None]] = []
        self._close_callbacks: list[Callable[[], None]] = []
        self._resets: dict[str, ResetRoute[Any]] = {}
        # One route serves every slab of the capsule, included games' too.
        self.route(confirm.with_token(reset_path("(?P<slab_name>[^/]+)")))(self._reset)
        # A plain `GeminiServer(app).run()` script opens it when it starts.
        autostart.enrol(self)

    # -- declaring -------------------------------------------------------------

    def slab(
        self,
        record: type[R],
        *,
        name: str | None = None,
        layout: str | None = None,
        record_size: int | None = None,
        max_records: int | None = None,
        idle_timeout: float | None = None,
        on_full: OnFull | None = None,
        max_queued: int | None = None,
    ) -> Slab[R]:
        """Declare (or fetch) the slab that keeps ``record`` instances.

        Settings left as None take the launcher's defaults at start-up.
        ``layout`` stores records as a fixed binary layout (a C struct) instead.
        """
        settings: dict[str, Any] = {
            "layout": layout,
            "record_size": record_size,
            "max_records": max_records,
            "idle_timeout": idle_timeout,
            "on_full": on_full,
            "max_queued": max_queued,
        }
        existing = self.slabs.get(record)
        if existing is None:
            slab = Slab(
                record,
                name=name,
                title=self.title,
                home=self.entry,
                **settings,
            )
            self.slabs[record] = slab
            return slab
        check_same(existing, name=name, **settings)
        return existing

    def session_route(
        self,
        path: str,
        *,
        record: type[R],
        timeout: float | None = DEFAULT_TIMEOUT,
        secret: bool = False,
        **route_options: Any,
    ) -> Callable[[Handler], SessionRoute[R]]:
        """Like :meth:`route`, handing the handler ``(request, record, **groups)``.

        ``record`` is the attrs class of the player's record; its slab is
        declared with :meth:`slab` when it needs settings of its own. A handler
        that waits is cancelled after ``timeout`` seconds (None: never), so a
        lost callback cannot lock its player out. ``secret=True`` says the
        route's query is a secret (a code a player types): the access log
        shows ``?(hidden)`` for it, whatever spelling of the path reached it.
        """
        slab = self.slabs.get(record)
        if slab is None:
            slab = self.slab(record)
            slab.implicit = True

        def wrap(handler: Handler) -> SessionRoute[R]:
            wrapped = SessionRoute(slab, handler, timeout=timeout, secret=secret)
            self.route(path, **route_options)(wrapped)
            return wrapped

        return wrap

    def include(self, other: SessionApplication) -> None:
        """Serve ``other``'s routes and slabs here too (a game in a capsule).

        Including an application twice, directly or through another one that
        includes it, serves its routes once.
        """
        self.routes.extend(
            route
            for route in other.routes
            if route not in self.routes and route[1] != other._reset
        )
        for record, slab in other.slabs.items():
            mine = self.slabs.setdefault(record, slab)
            if mine is not slab:
                raise ConfigError(
                    f"two slabs hold {record.__qualname__} records, one from"
                    f" {other.title or 'an included app'!r}: records of one class"
                    f" live in one slab; declare it in one module and use that"
                    f" app's slab in both"
                )
        self._open_callbacks.extend(
            callback
            for callback in other._open_callbacks
            if callback not in self._open_callbacks
        )
        self._close_callbacks.extend(
            callback
            for callback in other._close_callbacks
            if callback not in self._close_callbacks
        )
        self.included.append(other)

    def use_accounts(self, accounts: Any = None) -> Any:
        """Deprecated since 0.3, gone in 0.4: ``jetforce_sesh.use_accounts(app)``.

        The accounts build on the application, not the other way round; this
        pass-through is the one place the session core names them.
        """
        warnings.warn(
            "app.use_accounts() is jetforce_sesh.use_accounts(app) since"
            " jetforce-sesh 0.3; the method goes in 0.4",
            DeprecationWarning,
            stacklevel=2,
        )
        from jetforce_sesh.accounts import use_accounts

        return use_accounts(self, accounts)

    def when_opened(
        self, callback: Callable[[IReactorTime], None]
    ) -> Callable[[IReactorTime], None]:
        """Call ``callback(clock)`` when the stores open (to start a periodic task)."""
        self._open_callbacks.append(callback)
        return callback

    def when_closed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` when the stores close (to stop that periodic task)."""
        self._close_callbacks.append(callback)
        return callback

    # -- running ---------------------------------------------------------------

    def open(
        self,
        clock: IReactorTime,
        defaults: SlabOptions | None = None,
        stores: StoreFactory | None = None,
    ) -> Deferred[list[Slab[Any]]]:
        """Open every slab's store on ``clock``, then run the :meth:`when_opened`
        callbacks; fires with the slabs once all serve. The launcher calls this,
        and a server script's reactor when it starts; ``defaults`` and ``stores``
        left out are the application's own.

        ConfigError at once if a record class or setting cannot work.
        """
        self.started = True
        defaults = defaults if defaults is not None else self.defaults
        stores = stores if stores is not None else self.stores
        slabs = list(self.slabs.values())
        opening = [slab.open(clock, defaults, stores, self.keys) for slab in slabs]
        # The secret confirmations are made under is the capsule's, kept in
        # the same store: it opens alike, when first needed.
        confirm.remember_stores(clock, defaults, stores)

        def opened(_: object) -> list[Slab[Any]]:
            for callback in self._open_callbacks:
                callback(clock)
            return slabs

        return gatherResults(opening, consumeErrors=True).addCallback(opened)

    def close(self, grace: float = 5.0) -> Deferred[None]:
        """Stop what :meth:`when_opened` started, then close every slab: requests
        waiting for a turn are answered ``41``, running ones get ``grace`` seconds
        to finish. Fires once every store is closed."""
        for callback in self._close_callbacks:
            callback()
        closing = [slab.close(grace) for slab in self.slabs.values()]
        closing.append(confirm.close_secret(grace))
        return gatherResults(closing, consumeErrors=True).addCallback(lambda _: None)

    def serve_unclaimed(self, fallback: ApplicationCallable) -> None:
        """Hand requests no route claims to ``fallback`` (static files, CGI)."""
        self.fallback = fallback

    def default_callback(self, request: Request, **_: Any) -> Response:
        """Answer paths no route claims: an index at the root, else ``51``.

        The index links the included applications, and this one if its entry is
        not ``/``: a game run on its own (``--app jetforce_sesh.games.guess:app``)
        has a home page. A capsule that includes nothing lists its own routes
        with a plain path, labelled by their docstrings, so a first capsule
        shows what it has without an index of its own.
        """
        if request.path.strip("/"):
            return Response(Status.NOT_FOUND, "Not Found")
        entries = [self, *self.included] if self.entry != "/" else self.included
        lines = links(entries) if entries else self._route_links()
        page = "\n".join([f"# {self.title or 'Capsule'}", "", *lines, ""])
        return Response(Status.SUCCESS, "text/gemini", page)

    def _route_links(self) -> list[str]:
        found = []
        for pattern, handler in self.routes:
            path = pattern.path
            if _PLAIN_PATH.fullmatch(path) and path.strip("/"):
                doc = (getattr(handler, "__doc__", None) or "").strip()
                name = getattr(handler, "__name__", path).replace("_", " ")
                found.append(f"=> {path} {doc.splitlines()[0] if doc else name}")
        return found

    def _reset(
        self, request: Request, slab_name: str, token: str | None = None
    ) -> Response | Any:
        for slab in self.slabs.values():
            if slab.name == slab_name:
                route = self._resets.get(slab_name)
                if route is None:
                    route = self._resets[slab_name] = ResetRoute(slab)
                return route(request, token=token)
        return Response(Status.NOT_FOUND, "Not Found")

    def _route_for(self, request: Request) -> tuple[Any, dict[str, Any]] | None:
        """The handler that answers ``request`` and its URL groups, as
        Jetforce picks it (the last route declared wins); None if none does.

        Once other_host() has let a request in, a stock RoutePattern's match
        depends only on the request's hostname and path (the scheme is gemini,
        the port the capsule's or none), so the answer is remembered per
        (hostname, path): a capsule of many routes (the demo has 27) does not
        try each pattern on every request. It is forgotten whenever the routes
        change (see Routes), or the list is replaced, and bounded by
        ROUTE_MEMO_MAX paths. Patterns of other classes are tried every time."""
        routes = self.routes
        changes = getattr(routes, "changes", None)
        if self._memo_of != (routes, changes) or changes is None:
            self._memo.clear()
            self._memo_of = (routes, -1 if changes is None else changes)
            # A replaced list that is no Routes cannot say when it changes.
            self._memo_exact = changes is not None and all(
                type(pattern) is RoutePattern for pattern, _ in routes
            )
        if self._memo_exact:
            key = (request.hostname, request.path)
            try:
                return self._memo[key]
            except KeyError:
                pass
        found: tuple[Any, dict[str, Any]] | None = None
        for pattern, callback in reversed(routes):
            match = pattern.match(request)
            if match is not None:
                found = (callback, match.groupdict())
                break
        if self._memo_exact:
            if len(self._memo) >= ROUTE_MEMO_MAX:
                self._memo.clear()
            self._memo[key] = found
        return found

    def claims(self, request: Request) -> bool:
        return any(pattern.match(request) for pattern, _ in self.routes)

    def __call__(
        self, environ: EnvironDict, send_status: WriteStatusCallable
    ) -> ApplicationResponse:
        # Jetforce's own routing, plus: requests for another host, port or
        # scheme are refused (53), and paths no route claims go to the fallback
        # (--dir), under the same rate limit. The URL is parsed once.
        try:
            request = self.request_class(environ)
        except Exception:
            send_status(Status.BAD_REQUEST, "Invalid URL")
            return
        elsewhere = other_host(request)
        if elsewhere is not None:
            send_status(elsewhere.status, elsewhere.meta)
            return
        found = self._route_for(request)
        if found is not None and getattr(found[0], "secret", False):
            # Marked before anything answers: a refusal is logged too.
            environ[ENVIRON_SECRET] = True
        if self.rate_limiter is not None:
            refusal = self.rate_limiter.check(request)
            if refusal is not None:
                send_status(refusal.status, refusal.meta)
                return
        response: Response | DeferredResponse
        if found is not None:
            callback, groups = found
            limited = (
                None
                if self.certificate_limiter is None
                else self._limited(callback, request)
            )
            # The groups are copied: a handler may change the dict it is given.
            response = limited or callback(request, **groups)
        else:
            if self.fallback is not None:
                yield from self.fallback(environ, send_status)
                return
            response = self.default_callback(request)
        if isinstance(response, Response):
            send_status(response.status, response.meta)
        elif isinstance(response, DeferredResponse):
            response.send_status.addCallback(lambda sent: send_status(*sent))
        else:
            raise TypeError(f"Invalid response type {type(response)}")
        body = response.body
        if isinstance(body, (bytes, str, Deferred)):
            yield body
        elif body:
            yield from body

    def _limited(self, callback: object, request: Request) -> Response | None:
        """``44`` if the request's certificate is over --rate-limit-cert for a
        session route, else None."""
        if self.certificate_limiter is None or not isinstance(callback, SessionRoute):
            return None
        return self.certificate_limiter.check(request)


#: A route path that is a plain path, not a pattern: it can be linked as it is.
_PLAIN_PATH = re.compile(r"/[\w\-./~]*")

#: The names of this machine's loopback interface: a capsule served on one of
#: them answers to all, since each reaches the very same server.
LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


def home_url(hostname: str, port: int | str) -> str:
    """The capsule's address as a player types it: the port only if not 1965."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    return f"gemini://{host}/" if int(port) == 1965 else f"gemini://{host}:{port}/"


def other_host(request: Request) -> Response | None:
    """``53`` if ``request`` is for another host, port or scheme than this
    capsule's; None if it is for this one.

    A capsule on a loopback name answers to every loopback name: the request is
    then routed as if it named the capsule's own hostname, so the index and
    every game look the same whichever way they are reached.
    """
    environ = request.environ
    hostname = environ["HOSTNAME"]
    port = environ["SERVER_PORT"]
    if request.hostname != hostname and {request.hostname, hostname} <= LOOPBACK:
        environ["HOSTNAME"] = hostname = request.hostname
    if (
        request.scheme == "gemini"
        and request.hostname == hostname
        and request.port in (None, port)
    ):
        return None
    return Response(
        Status.PROXY_REQUEST_REFUSED,
        f"This capsule is {home_url(environ['HOSTNAME'], port)}; it serves no other"
        f" host, port or scheme",
    )


def links(apps: Iterable[SessionApplication]) -> list[str]:
    """Gemtext link lines for ``apps``, for an index page."""
    return [
        f"=> {app.entry} {app.title}"
        + (f": {app.description}" if app.description else "")
        for app in apps
    ]
