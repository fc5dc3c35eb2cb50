"""The store contract: what every place that keeps session records provides.

Records travel through it as bytes already encoded by the slab's codec, keyed by
32 bytes (a certificate fingerprint, or whatever the key step maps a certificate
to), so a store knows nothing of attrs classes or of Jetforce. The memory store,
and the persistent, bridged and Redis stores, all answer through
:class:`ISessionStore`; the route and the games never see which one they got.

Every stored record has a **version**, a number the store gives it on each save and
never gives again. A save names the version it read (:data:`ABSENT` for a record
that did not exist) and fails with :class:`~jetforce_sesh.errors.Conflict` if the
record has moved since: two writers can never both overwrite what they read. The
store also decides, in the same step, whether a new record may be kept at all
(room, refusal, eviction), so no check-then-act race is left to its callers.
"""

from __future__ import annotations

from collections.abc import Callable, Container
from typing import NamedTuple

import attrs
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from zope.interface import Attribute, Interface

from jetforce_sesh.errors import BadKey, Conflict, RecordTooLarge, StoreFull
from jetforce_sesh.options import OnFull, SlabOptions

Hook = Callable[[bytes], None]

#: The version a save names when it read no record: "create it, if still absent".
ABSENT = 0
#: The version a save or delete names to act whatever is stored (imports, tools).
ANY_VERSION = -1
#: Bytes in every key.
KEY_SIZE = 32
#: The highest version any store gives: versions are exact in a double up to
#: here (Redis's Lua compares them as numbers), and well inside SQLite's
#: integers. A store that has given it refuses further saves
#: (:class:`~jetforce_sesh.errors.StoreUnavailable`) rather than give one twice.
MAX_VERSION = 2**53 - 1


class Stored(NamedTuple):
    """A record as a store holds it: its bytes and their version."""

    data: bytes
    version: int


class StoredRecord(NamedTuple):
    """One record of a listing: its key, bytes, version and last use (epoch s)."""

    key: bytes
    data: bytes
    version: int
    last_used: float


class RecordPage(NamedTuple):
    """Part of a listing, and the cursor of the next part (None: the last one)."""

    records: list[StoredRecord]
    cursor: str | None


@attrs.frozen
class StoreStats:
    """Counters a store keeps about itself since it was opened."""

    in_use: int
    capacity: int
    hits: int = 0
    misses: int = 0
    creations: int = 0
    evictions: int = 0
    expirations: int = 0
    refusals: int = 0
    conflicts: int = 0


@attrs.frozen
class StoreSpec:
    """What a store factory is told about the slab it makes a store for."""

    #: The slab's name: stores that share a place (a file, a Redis) keep slabs apart
    #: by it.
    name: str
    options: SlabOptions
    clock: IReactorTime
    #: The most bytes a record takes: the codec's slot size.
    record_size: int
    #: What the bytes are (the codec's ``format``), for stores that keep them
    #: between runs and must not read one slab's bytes as another's.
    codec_format: str
    #: Keys whose record a request of this process is using right now: it has
    #: read the record and not yet let go of the player's turn. The slab keeps
    #: it up to date; a store reads it, live, whenever it decides to drop a
    #: record. While a key is in it, its record is in use: the store must
    #: neither expire it (the sweep passes over it, and a load, save, peek,
    #: delete or listing finds it alive, whatever its last use) nor evict it
    #: (eviction takes the least recently used record *not* held; if every
    #: record is held, a new one is refused with StoreFull, whatever
    #: ``on_full`` says). Its idle time still counts from its last load or
    #: save, so a record its request only read may expire at the next sweep
    #: after the request ends. A store shared by several processes must keep
    #: the records held in any of them (by refreshing their last use while
    #: they are held, say); one that cannot yet ignores this, and a record it
    #: drops under a request is met by the route as "vanished": the player is
    #: answered ``40`` and nothing is kept, never a fresh record in its place.
    held: Container[bytes] = frozenset()


#: Makes the store of one slab. Settings of a store kind (a directory, a URL) are
#: bound into the factory: ``memory_stores``, or an instance of another kind's.
StoreFactory = Callable[[StoreSpec], "ISessionStore"]


class ISessionStore(Interface):
    """Fixed-size, versioned session records keyed by 32 bytes.

    Every method that may need another process answers with a Deferred, so that
    stores in Redis or behind a socket fit the same contract as the memory store.
    Keys that are not 32 bytes are refused with
    :class:`~jetforce_sesh.errors.BadKey`.
    """

    name: str = Attribute("Name of the slab the store keeps, for messages.")
    record_size: int = Attribute("Largest encoded record, in bytes, a slot takes.")
    capacity: int = Attribute("Most records the store holds at once.")
    on_full: OnFull = Attribute("What a new record meets when the store is full.")
    idle_timeout: float = Attribute(
        "Seconds unused before a record expires (0: never)."
    )

    def open() -> Deferred[None]:
        """Get ready to serve (start the idle sweep, connect, read files)."""

    def close() -> Deferred[None]:
        """Stop serving; fires once everything the store owes is written."""

    def load(key: bytes) -> Deferred[Stored | None]:
        """The record under ``key``, or None; counts as use of it."""

    def peek(key: bytes) -> Deferred[Stored | None]:
        """The record under ``key``, or None, without counting as use."""

    def save(key: bytes, data: bytes, expected: int) -> Deferred[int]:
        """Store ``data`` under ``key`` if its version is still ``expected``.

        ``expected`` is the version read, :data:`ABSENT` if there was no record,
        or :data:`ANY_VERSION` to overwrite whatever is there. Fires with the new
        version. Fails, leaving the stored record as it was, with
        :class:`~jetforce_sesh.errors.Conflict` if the version moved,
        :class:`~jetforce_sesh.errors.RecordTooLarge` if ``data`` exceeds
        ``record_size``, and :class:`~jetforce_sesh.errors.StoreFull` if the record
        is new, the store is full, no idle record can give up its slot and
        ``on_full`` is ``refuse`` (with ``evict``, the least recently used record
        makes room). Counts as use.
        """

    def delete(key: bytes, expected: int = ANY_VERSION) -> Deferred[bool]:
        """Forget ``key``; True if it was there. Conflict if its version is not
        ``expected`` (unless that is :data:`ANY_VERSION`)."""

    def records(cursor: str | None = None, limit: int = 256) -> Deferred[RecordPage]:
        """Up to ``limit`` live records, without counting as use.

        Start with ``cursor=None`` and pass each page's cursor to the next call
        until it is None. A record that lives through the whole listing appears in
        it exactly once; one saved, made or dropped meanwhile may or may not.
        """

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

    The route prefers these methods when a store provides them: a request to the
    memory store then makes no Deferred at all. Each answers as its Deferred
    counterpart does, raising instead of failing.
    """

    def load_now(key: bytes) -> Stored | None:
        """As :meth:`ISessionStore.load`."""

    def peek_now(key: bytes) -> Stored | None:
        """As :meth:`ISessionStore.peek`."""

    def save_now(key: bytes, data: bytes, expected: int) -> int:
        """As :meth:`ISessionStore.save`."""

    def delete_now(key: bytes, expected: int = ANY_VERSION) -> bool:
        """As :meth:`ISessionStore.delete`."""

    def records_now(cursor: str | None = None, limit: int = 256) -> RecordPage:
        """As :meth:`ISessionStore.records`."""


def check_key(key: object) -> bytes:
    """``key`` if it is 32 bytes; BadKey otherwise (a prefix must find nothing)."""
    if type(key) is not bytes or len(key) != KEY_SIZE:
        size = f"{len(key)} bytes" if isinstance(key, bytes) else type(key).__name__
        raise BadKey(
            f"keys are 32 bytes, a certificate fingerprint (got {size}): use"
            f" parse_fingerprint()"
        )
    return key


def check_data(data: object, name: str, record_size: int) -> None:
    """Refuse what a save must not store: not bytes, or more than a slot."""
    if type(data) is not bytes:
        raise TypeError(
            f"record data must be bytes (got {type(data).__name__}): encode"
            f" the record with the slab's codec"
        )
    if len(data) > record_size:
        raise RecordTooLarge(
            f"record of {len(data)} bytes does not fit slab {name!r}"
            f" ({record_size}-byte slots): raise its record_size or store less"
        )


def conflict(name: str, key: bytes, stored: int, expected: int) -> Conflict:
    """The Conflict of a save or delete that named ``expected`` where the
    record of ``key`` in slab ``name`` is at ``stored`` (ABSENT: none)."""
    return Conflict(
        f"record {key[:4].hex()}… of slab {name!r} is {_version_text(stored)},"
        f" not {_version_text(expected)}: load it again and redo the change"
    )


def _version_text(version: int) -> str:
    return "absent" if version == ABSENT else f"at version {version}"


def refused(name: str, capacity: int) -> StoreFull:
    """The StoreFull of a new record in a full slab that refuses newcomers."""
    return StoreFull(
        f"slab {name!r} is full ({capacity} records) and refuses new players:"
        f" raise max_records or use on_full='evict'"
    )
