"""Fixtures shared by the suite: client certificates and a running demo capsule."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
