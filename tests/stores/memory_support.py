"""What the memory store's tests share: keys, a store on a Clock, its listing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from jetforce_sesh.options import OnFull
from jetforce_sesh.stores import MemoryStore, StoredRecord
from jetforce_sesh.testing import START, fingerprint_of


def key(name: object) -> bytes:
    return fingerprint_of(f"player {name}")


A, B, C = key("a"), key("b"), key("c")


def make_store(
    capacity: int = 3,
    *,
    idle_timeout: float = 0,
    on_full: OnFull = "evict",
    record_size: int = 16,
    hash_key: Callable[[bytes], int] = hash,
) -> tuple[MemoryStore, Clock]:
    clock = Clock()
    clock.advance(START)
    store = MemoryStore(
        "test",
        record_size=record_size,
        capacity=capacity,
        clock=clock,
        idle_timeout=idle_timeout,
        on_full=on_full,
        hash_key=hash_key,
    )
    return store, clock


def all_records(store: MemoryStore, limit: int = 256) -> list[StoredRecord]:
    found: list[StoredRecord] = []
    cursor: str | None = None
    while True:
        page = store.records_now(cursor, limit)
        found.extend(page.records)
        if page.cursor is None:
            return found
        cursor = page.cursor


def failure_type(deferred: Deferred[Any]) -> object:
    """The type of the error ``deferred`` failed with (at once), else None."""
    failures: list[Failure] = []
    deferred.addErrback(failures.append)
    return failures[0].type if failures else None
