"""The store contract: what every place that keeps session records provides.

Records travel through it as bytes already encoded by :mod:`jetforce_sesh.codec`,
keyed by the 32-byte certificate fingerprint, so a store knows nothing of attrs
classes or of Jetforce. The memory slab, and later the persistent, bridged and
Redis stores, all answer through :class:`ISessionStore`; the route decorator and
the games never see which one they got.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import attrs
from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

OnFull = Literal["evict", "refuse"]
Hook = Callable[[bytes], None]


@attrs.frozen
class StoreStats:
    """Counters a store keeps about itself since it was opened."""

    in_use: int
    capacity: int
    hits: int
    misses: int
    evictions: int
    expirations: int


class ISessionStore(Interface):
    """Fixed-size session records keyed by certificate fingerprint.

    Every method answers with a Deferred so that stores which talk to another
    process fit the same contract as the in-memory slab.
    """

    name: str = Attribute("Name of the store, shown in the start-up banner.")
    record_size: int = Attribute("Largest encoded record, in bytes, a slot takes.")
    capacity: int = Attribute("Most records the store holds at once.")
    on_full: OnFull = Attribute("What a new player meets when the store is full.")

    def load(key: bytes) -> Deferred[bytes | None]:
        """The record stored under ``key``, or None; counts as use of it."""

    def save(key: bytes, data: bytes) -> Deferred[None]:
        """Store ``data`` under ``key``, replacing what was there.

        Fails with :class:`~jetforce_sesh.errors.RecordTooLarge` when ``data``
        exceeds ``record_size`` and with :class:`~jetforce_sesh.errors.StoreFull`
        when ``key`` is new, the store is full and its policy is ``refuse``; in
        both cases the previous record is left as it was.
        """

    def delete(key: bytes) -> Deferred[bool]:
        """Forget ``key``; True if it was there."""

    def admits(key: bytes) -> Deferred[bool]:
        """Whether a record for ``key`` could be kept now (False: refuse it)."""

    def records() -> Deferred[list[tuple[bytes, bytes]]]:
        """Every live record as (key, data), without counting as use."""

    def stats() -> StoreStats:
        """The store's counters, as of now."""

    def on_created(hook: Hook) -> None:
        """Call ``hook(key)`` when a record is stored for a new key."""

    def on_evicted(hook: Hook) -> None:
        """Call ``hook(key)`` when a record is dropped to make room."""

    def on_expired(hook: Hook) -> None:
        """Call ``hook(key)`` when a record is dropped for being idle."""


class IImmediateSessionStore(ISessionStore):
    """A store in this process that can answer without waiting.

    The route decorator prefers these methods when a store provides them: a
    request to the memory slab then costs no Deferred at all.
    """

    def load_now(key: bytes) -> bytes | None:
        """As :meth:`ISessionStore.load`, answered at once."""

    def save_now(key: bytes, data: bytes) -> None:
        """As :meth:`ISessionStore.save`, raising instead of failing a Deferred."""

    def peek_now(key: bytes) -> bytes | None:
        """The record stored under ``key``, or None, without counting as use."""

    def admits_now(key: bytes) -> bool:
        """As :meth:`ISessionStore.admits`, answered at once."""

    def iter_records() -> Iterator[tuple[bytes, bytes]]:
        """As :meth:`ISessionStore.records`, lazily."""
