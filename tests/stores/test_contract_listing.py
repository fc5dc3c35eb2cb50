"""The store contract's listing: ``records()`` pages through every live record
once, even while other records come and go between the pages.

Run against every store kind (see ``tests/stores/contract_support.py``).
"""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jetforce_sesh.stores import ABSENT, ANY_VERSION, StoredRecord
from tests.stores.contract_support import StoreMaker, key, listing

# -- listing --------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 256])
def test_records_lists_every_live_record_once_across_pages(
    maker: StoreMaker, limit: int
) -> None:
    store, clock = maker.make(capacity=8)
    expected = []
    for n in range(5):
        when = clock.seconds()
        version = maker.settle(store.save(key(n), bytes([n]), ABSENT))
        expected.append(StoredRecord(key(n), bytes([n]), version, when))
    maker.settle(store.delete(key(2)))
    del expected[2]
    used_at = clock.seconds()
    maker.settle(store.load(key(3)))
    expected[2] = expected[2]._replace(last_used=used_at)
    listed = listing(maker, store, limit)
    assert sorted(expected) == sorted(listed)


def test_an_empty_store_lists_nothing(maker: StoreMaker) -> None:
    store, _ = maker.make()
    assert [] == listing(maker, store)


# Strategies of the listing test: what happens to the other records between two
# pages. Survivors are keys 0-7, the others 8-15.
others = st.integers(8, 15)


between_pages = st.lists(
    st.one_of(
        st.tuples(st.just("save"), others),
        st.tuples(st.just("delete"), others),
        st.tuples(st.just("load"), st.integers(0, 15)),
    ),
    max_size=4,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    survivors=st.sets(st.integers(0, 7), min_size=1),
    before=st.lists(others, unique=True),
    order=st.randoms(use_true_random=False),
    limit=st.integers(1, 3),
    meanwhile=st.lists(between_pages, max_size=8),
)
def test_a_record_living_through_a_listing_appears_in_it_once(
    maker: StoreMaker,
    survivors: set[int],
    before: list[int],
    order: Random,
    limit: int,
    meanwhile: list[list[tuple[str, int]]],
) -> None:
    """Other records are made, saved, loaded and deleted between the pages."""
    store, _ = maker.make(capacity=16)
    first = [*survivors, *before]
    order.shuffle(first)
    for n in first:
        maker.settle(store.save(key(n), b"v", ANY_VERSION))
    listed: list[bytes] = []
    cursor: str | None = None
    for page_number in range(10_000):
        page = maker.settle(store.records(cursor, limit))
        listed.extend(record.key for record in page.records)
        if page.cursor is None:
            break
        cursor = page.cursor
        for action, n in meanwhile[page_number] if page_number < len(meanwhile) else []:
            if action == "save":
                maker.settle(store.save(key(n), b"w", ANY_VERSION))
            elif action == "delete":
                maker.settle(store.delete(key(n)))
            else:
                maker.settle(store.load(key(n)))
    assert [1] * len(survivors) == [listed.count(key(n)) for n in sorted(survivors)]
