"""The ``capsule`` fixture of the SQLite store's tests (``test_sqlite_*.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stores.sqlite_support import Capsule


@pytest.fixture
def capsule(tmp_path: Path) -> Iterator[Capsule]:
    made = Capsule(tmp_path / "state")
    yield made
    made.stop_all()  # the checkpoint threads stop with their stores
