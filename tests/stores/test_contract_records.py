"""The store contract, one record at a time: loading, saving and deleting it by
version (conflicts included), records too large, and keys that are not 32 bytes.

Run against every store kind (see ``tests/stores/contract_support.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from twisted.internet.defer import Deferred
from zope.interface.verify import verifyObject

from jetforce_sesh import BadKey, Conflict, RecordTooLarge
from jetforce_sesh.stores import (
    ABSENT,
    ANY_VERSION,
    ISessionStore,
    Stored,
    StoredRecord,
)
from tests.stores.contract_support import A, B, C, StoreMaker, conflict_message, listing

# -- the interface --------------------------------------------------------------


def test_provides_the_store_contract(maker: StoreMaker) -> None:
    store, _ = maker.make(capacity=3, idle_timeout=60, on_full="refuse")
    assert verifyObject(ISessionStore, store)
    assert ("test", 16, 3, "refuse", 60.0) == (
        store.name,
        store.record_size,
        store.capacity,
        store.on_full,
        store.idle_timeout,
    )


# -- loading, saving, versions --------------------------------------------------


def test_a_missing_key_loads_and_peeks_as_none(maker: StoreMaker) -> None:
    store, _ = maker.make()
    assert None is maker.settle(store.load(A))
    assert None is maker.settle(store.peek(A))


def test_saving_as_absent_creates_the_record(maker: StoreMaker) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"first", ABSENT))
    assert version > ABSENT
    assert Stored(b"first", version) == maker.settle(store.load(A))
    assert Stored(b"first", version) == maker.settle(store.peek(A))


def test_versions_only_go_up_and_are_never_given_twice(maker: StoreMaker) -> None:
    """Also across a delete and the re-making of the same key: a save that
    names the old record's version conflicts with the new record."""
    store, _ = maker.make()
    given = [maker.settle(store.save(A, b"1", ABSENT))]
    given.append(maker.settle(store.save(A, b"2", given[-1])))
    given.append(maker.settle(store.save(B, b"3", ABSENT)))
    assert maker.settle(store.delete(A, given[1]))
    given.append(maker.settle(store.save(A, b"4", ABSENT)))
    given.append(maker.settle(store.save(A, b"5", ANY_VERSION)))
    assert sorted(set(given)) == given
    assert ABSENT < given[0]
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"old", given[1]))
    assert conflict_message(A, f"at version {given[4]}", f"at version {given[1]}") == (
        str(raised.value)
    )
    assert Stored(b"5", given[4]) == maker.settle(store.peek(A))


def test_a_save_naming_a_stale_version_conflicts_and_changes_nothing(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make()
    first = maker.settle(store.save(A, b"first", ABSENT))
    second = maker.settle(store.save(A, b"second", first))
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"lost update", first))
    assert conflict_message(A, f"at version {second}", f"at version {first}") == (
        str(raised.value)
    )
    assert Stored(b"second", second) == maker.settle(store.peek(A))


def test_saving_as_absent_over_a_record_conflicts(maker: StoreMaker) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"mine", ABSENT))
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"also new", ABSENT))
    assert conflict_message(A, f"at version {version}", "absent") == str(raised.value)
    assert Stored(b"mine", version) == maker.settle(store.peek(A))


def test_naming_a_version_of_a_missing_record_conflicts(maker: StoreMaker) -> None:
    store, _ = maker.make()
    with pytest.raises(Conflict) as raised:
        maker.settle(store.save(A, b"x", 7))
    assert conflict_message(A, "absent", "at version 7") == str(raised.value)
    assert None is maker.settle(store.peek(A))


def test_any_version_overwrites_or_creates(maker: StoreMaker) -> None:
    store, _ = maker.make()
    created = maker.settle(store.save(A, b"made", ANY_VERSION))
    overwritten = maker.settle(store.save(A, b"over", ANY_VERSION))
    assert ABSENT < created < overwritten
    assert Stored(b"over", overwritten) == maker.settle(store.peek(A))


def test_a_record_too_large_leaves_the_previous_one(maker: StoreMaker) -> None:
    store, _ = maker.make(record_size=16)
    version = maker.settle(store.save(A, b"kept", ABSENT))
    assert maker.settle(store.save(B, bytes(16), ABSENT)) > version
    with pytest.raises(RecordTooLarge) as raised:
        maker.settle(store.save(A, bytes(17), version))
    assert (
        "record of 17 bytes does not fit slab 'test' (16-byte slots): raise its"
        " record_size or store less"
    ) == str(raised.value)
    assert Stored(b"kept", version) == maker.settle(store.peek(A))
    with pytest.raises(RecordTooLarge):
        maker.settle(store.save(C, bytes(17), ABSENT))
    assert None is maker.settle(store.peek(C))


# -- deleting -------------------------------------------------------------------


def test_delete_naming_the_stored_version_forgets_the_record(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"a", ABSENT))
    assert maker.settle(store.delete(A, version))
    assert None is maker.settle(store.peek(A))
    assert not maker.settle(store.delete(A, ABSENT))
    assert not maker.settle(store.delete(A))
    assert [] == listing(maker, store)


def test_delete_naming_another_version_conflicts_and_keeps_it(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make()
    version = maker.settle(store.save(A, b"a", ABSENT))
    for expected, text in [(version + 1, f"at version {version + 1}"), (0, "absent")]:
        with pytest.raises(Conflict) as raised:
            maker.settle(store.delete(A, expected))
        assert conflict_message(A, f"at version {version}", text) == str(raised.value)
    assert Stored(b"a", version) == maker.settle(store.peek(A))
    with pytest.raises(Conflict) as raised:
        maker.settle(store.delete(B, version))
    assert conflict_message(B, "absent", f"at version {version}") == str(raised.value)


def test_delete_with_any_version_forgets_whatever_is_there(
    maker: StoreMaker,
) -> None:
    store, _ = maker.make(capacity=1, on_full="refuse")
    maker.settle(store.save(A, b"a", ABSENT))
    assert maker.settle(store.delete(A, ANY_VERSION))
    assert None is maker.settle(store.load(A))
    # The slot is free again: a new player is let in, nobody is evicted.
    maker.settle(store.save(B, b"b", ABSENT))
    assert 0 == store.stats().evictions


# -- keys -----------------------------------------------------------------------

BAD_KEYS = [
    pytest.param(A[:31], "31 bytes", id="31-bytes"),
    pytest.param(A + b"\x00", "33 bytes", id="33-bytes"),
    pytest.param(A[:1], "1 bytes", id="1-byte"),
    pytest.param(b"", "0 bytes", id="empty"),
    pytest.param(A.hex(), "str", id="str"),
    pytest.param(bytearray(A), "bytearray", id="bytearray"),
]


CALLS = [
    pytest.param(lambda store, k: store.load(k), id="load"),
    pytest.param(lambda store, k: store.peek(k), id="peek"),
    pytest.param(lambda store, k: store.save(k, b"x", ANY_VERSION), id="save"),
    pytest.param(lambda store, k: store.save(k, b"x", ABSENT), id="save-new"),
    pytest.param(lambda store, k: store.delete(k), id="delete"),
]


@pytest.mark.parametrize("bad_key, got", BAD_KEYS)
@pytest.mark.parametrize("call", CALLS)
def test_a_key_that_is_not_32_bytes_is_refused_and_finds_nobody(
    maker: StoreMaker,
    bad_key: bytes,
    got: str,
    call: Callable[[ISessionStore, bytes], Deferred[object]],
) -> None:
    """Not even the record of the player whose key it is part of."""
    store, clock = maker.make()
    saved_at = clock.seconds()
    version = maker.settle(store.save(A, b"secret of a", ABSENT))
    before = store.stats()
    with pytest.raises(BadKey) as raised:
        maker.settle(call(store, bad_key))
    assert (
        f"keys are 32 bytes, a certificate fingerprint (got {got}): use"
        f" parse_fingerprint()"
    ) == str(raised.value)
    assert before == store.stats()
    assert [StoredRecord(A, b"secret of a", version, saved_at)] == listing(maker, store)
