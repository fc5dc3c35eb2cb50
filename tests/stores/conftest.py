"""Fixtures of the store tests: ``maker`` runs a store contract test once per
store kind of :data:`tests.stores.contract_support.STORE_KINDS`; ``capsule`` is
the SQLite store's tests' capsule (``test_sqlite_*.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.redis_support import Cluster
from tests.stores.contract_support import STORE_KINDS, StoreMaker
from tests.stores.sqlite_support import Capsule

#: The stash key of how many tests this run left to the asyncio run.
LEFT_TO_ASYNCIO = pytest.StashKey[int]()


def pytest_collection_modifyitems(
    config: pytest.Config, items: list[pytest.Item]
) -> None:
    """On the default reactor, the tests marked ``asyncio_reactor`` are left
    out here (not skipped: a test of this run runs them all on the asyncio
    reactor, and fails if any fails)."""
    if config.getoption("reactor", "default") == "asyncio":
        return
    left = [item for item in items if item.get_closest_marker("asyncio_reactor")]
    if left:
        config.hook.pytest_deselected(items=left)
        ids = {id(item) for item in left}
        items[:] = [item for item in items if id(item) not in ids]
    config.stash[LEFT_TO_ASYNCIO] = len(left)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One real Valkey Cluster (three primaries, three replicas) for the
    session; tests keep apart by key prefix, and leave it as they found it."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=STORE_KINDS)
def maker(request: pytest.FixtureRequest) -> Iterator[StoreMaker]:
    kind: Callable[[pytest.FixtureRequest], StoreMaker] = request.param
    made = kind(request)
    yield made
    made.close_all()


@pytest.fixture
def capsule(tmp_path: Path) -> Iterator[Capsule]:
    made = Capsule(tmp_path / "state")
    yield made
    made.stop_all()  # the checkpoint threads stop with their stores
