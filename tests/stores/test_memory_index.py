"""The memory store's index and pages: colliding keys stay findable through
deletes, what is not a key or not bytes is refused before any change, and
``records()`` pages through the slots with cursors it gave."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest

from jetforce_sesh import BadKey
from jetforce_sesh.stores import ABSENT, Stored, StoreStats
from jetforce_sesh.stores.memory import SCAN_LIMIT
from tests.stores.memory_support import A, all_records, failure_type, key, make_store

# -- the index --------------------------------------------------------------------

COLLIDING_HASHES = [
    pytest.param(lambda k: 0, id="all-in-cell-0"),
    pytest.param(lambda k: -1, id="all-in-the-last-cell-wrapping"),
    pytest.param(lambda k: k[0] % 3, id="three-runs"),
]


@pytest.mark.parametrize("hash_key", COLLIDING_HASHES)
def test_colliding_keys_stay_findable_through_deletes(
    hash_key: Callable[[bytes], int],
) -> None:
    """Backward-shift deletion keeps every probe run whole."""
    store, _ = make_store(capacity=12, hash_key=hash_key)
    players = [key(n) for n in range(12)]
    versions = {p: store.save_now(p, p[:4], ABSENT) for p in players}
    gone: set[bytes] = set()
    for n in (0, 5, 11, 6, 1, 10):
        assert store.delete_now(players[n])
        gone.add(players[n])
        for player in players:
            expected = None if player in gone else Stored(player[:4], versions[player])
            assert expected == store.peek_now(player)
            assert (player not in gone) == (player in store)
    for n in (5, 0):  # made again, into the holes
        versions[players[n]] = store.save_now(players[n], b"again", ABSENT)
        gone.discard(players[n])
    assert sorted(set(players) - gone) == sorted(r.key for r in all_records(store))
    assert Stored(b"again", versions[players[5]]) == store.load_now(players[5])


def test_a_prefix_of_a_colliding_key_finds_nothing() -> None:
    store, _ = make_store(hash_key=lambda k: 0)
    store.save_now(A, b"secret of a", ABSENT)
    for prefix in (A[:5], A[:1], b""):
        assert prefix not in store
        for call in (store.load_now, store.peek_now, store.delete_now):
            with pytest.raises(BadKey):
                call(prefix)
    assert Stored(b"secret of a", 1) == store.peek_now(A)
    assert StoreStats(in_use=1, capacity=3, creations=1) == store.stats()


def test_data_that_is_not_bytes_is_refused_before_any_change() -> None:
    store, _ = make_store()
    created: list[bytes] = []
    store.on_created(created.append)
    with pytest.raises(TypeError) as raised:
        store.save_now(A, "text", ABSENT)  # type: ignore[arg-type]
    assert (
        "record data must be bytes (got str): encode the record with the slab's codec"
    ) == str(raised.value)
    assert (0, None, [], []) == (
        len(store),
        store.peek_now(A),
        all_records(store),
        created,
    )
    assert TypeError is failure_type(store.save(A, "text", ABSENT))  # type: ignore[arg-type]


def test_a_bad_key_is_reported_before_a_record_too_large() -> None:
    store, _ = make_store(record_size=4)
    with pytest.raises(BadKey):
        store.save_now(A[:31], bytes(5), ABSENT)


# -- paging -----------------------------------------------------------------------


def test_a_sparse_store_pages_through_at_most_scan_limit_slots_a_page() -> None:
    """Pages may come back empty; each moves the cursor on, and all 3 records
    are found, each once."""
    capacity = 100_000
    store, _ = make_store(capacity=capacity, record_size=1)
    players = [n.to_bytes(32, "big") for n in range(capacity)]
    for player in players:
        store.save_now(player, b"", ABSENT)
    kept = [players[0], players[50_000], players[-1]]
    for player in players:
        if player not in kept:
            store.delete_now(player)
    found: list[bytes] = []
    starts: list[int] = []
    cursor: str | None = None
    while True:
        starts.append(0 if cursor is None else int(cursor))
        page = store.records_now(cursor)
        found.extend(record.key for record in page.records)
        if page.cursor is None:
            break
        cursor = page.cursor
    assert kept == found
    assert math.ceil(capacity / SCAN_LIMIT) == len(starts)
    assert [SCAN_LIMIT] * (len(starts) - 1) == [
        b - a for a, b in itertools.pairwise(starts)
    ]


def test_a_page_stops_at_its_limit() -> None:
    store, _ = make_store(capacity=5)
    for n in range(5):
        store.save_now(key(n), b"", ABSENT)
    page = store.records_now(None, 2)
    assert (2, "2") == (len(page.records), page.cursor)


@pytest.mark.parametrize("cursor", ["x", "-1", "²", "1.5", "", "4"], ids=repr)
def test_a_cursor_the_store_did_not_give_is_refused(cursor: str) -> None:
    store, _ = make_store(capacity=3)
    with pytest.raises(ValueError) as raised:
        store.records_now(cursor)
    assert f"cursor {cursor!r} is not one this store gave" == str(raised.value)
    assert ValueError is failure_type(store.records(cursor))


@pytest.mark.parametrize("limit", [0, -1])
def test_a_page_of_no_records_is_refused(limit: int) -> None:
    """It would hand its own cursor back, and the listing would never end."""
    store, _ = make_store()
    with pytest.raises(ValueError) as raised:
        store.records_now(None, limit)
    assert f"limit must be 1 or more records (got {limit})" == str(raised.value)
