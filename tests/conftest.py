"""Fixtures shared by the suite: client certificates and a running demo capsule."""

from __future__ import annotations

import datetime
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.redis_support import RedisServer
from tests.support import ClientCert, Server, make_client_cert, serve


@pytest.fixture(scope="session")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


@pytest.fixture(scope="session")
def make_cert(cert_dir: Path) -> Callable[..., ClientCert]:
    """Make a named client certificate (optionally with chosen validity dates)."""
    made: dict[str, ClientCert] = {}

    def make(
        name: str,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> ClientCert:
        if name not in made:
            made[name] = make_client_cert(
                cert_dir, name, not_before=not_before, not_after=not_after
            )
        return made[name]

    return make


@pytest.fixture(scope="session")
def demo_server() -> Iterator[Server]:
    """The demo capsule, ``jetforce_sesh:app``, as a user starts it."""
    yield from serve([])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One real valkey-server for the session; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run plain tests as pytest does, outside the reactor.

    pytest-twisted (for the Redis tests) would otherwise run every test inside
    the reactor's greenlet, where nothing can wait for a socket; a plain test
    that talks to Redis waits with ``pytest_twisted.blockon`` from here. Tests
    written for pytest-twisted (``ensureDeferred``, ``inlineCallbacks``) are
    left to it.
    """
    function = pyfuncitem.obj
    if getattr(function, "_pytest_twisted_mark", None) is not None:
        return None
    if inspect.iscoroutinefunction(function):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    function(**{name: pyfuncitem.funcargs[name] for name in names})
    return True
