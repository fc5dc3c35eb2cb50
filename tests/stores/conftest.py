"""The store contract's fixture: each test that asks for ``maker`` runs once per
store kind of :data:`tests.stores.contract_support.STORE_KINDS`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.stores.contract_support import STORE_KINDS, StoreMaker


@pytest.fixture(params=STORE_KINDS)
def maker(request: pytest.FixtureRequest) -> Iterator[StoreMaker]:
    kind: Callable[[pytest.FixtureRequest], StoreMaker] = request.param
    made = kind(request)
    yield made
    made.close_all()
