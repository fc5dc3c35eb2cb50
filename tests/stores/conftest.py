"""Fixtures of the store tests: ``maker`` runs a store contract test once per
store kind of :data:`tests.stores.contract_support.STORE_KINDS`; ``capsule`` is
the SQLite store's tests' capsule (``test_sqlite_*.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.stores.contract_support import STORE_KINDS, StoreMaker
from tests.stores.sqlite_support import Capsule


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
