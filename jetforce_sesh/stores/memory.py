"""The memory store: every record in one preallocated buffer, sized at start-up.

``capacity`` slots of ``record_size`` bytes are reserved when the store is made,
along with fixed-size arrays for the index, the recency list, the last-use times
and the versions. After that nothing grows: a new player takes a free slot, or the
least recently used one (``on_full="evict"``), or is turned away
(``on_full="refuse"``).

The index is an open-addressing hash table (linear probing, backward-shift deletion)
in an ``array``, not a dict: a dict of a million ``bytes`` keys costs about 150 bytes a
record and grows in jumps, where this costs a fixed 68 and is all allocated up front.
Slots are found by Python's own ``hash()`` of the key, which is keyed per process,
so a player who grinds certificates cannot aim them at one bucket.

Versions come from one counter per store that only goes up, so a version is never
given twice, even to a record that was dropped and made again: a save that names
an old version always conflicts. A slot's version is 0 while the slot is free.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Container, Iterable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from jetforce_sesh.errors import StoreFull, StoreUnavailable
from jetforce_sesh.options import (
    OnFull,
    check_idle_timeout,
    check_max_records,
    check_on_full,
    check_record_size,
)
from jetforce_sesh.stores.contract import (
    ABSENT,
    ANY_VERSION,
    KEY_SIZE,
    MAX_VERSION,
    IImmediateSessionStore,
    RecordPage,
    Stored,
    StoredRecord,
    StoreSpec,
    StoreStats,
    check_data,
    check_key,
    conflict,
    refused,
)
from jetforce_sesh.stores.support import DeferredMethods, HookMethods, Hooks, IdleSweep

_KEY = KEY_SIZE
_NONE = -1
_stored = tuple.__new__
#: Most idle records one sweep drops before it lets other work run.
SWEEP_BATCH = 2000
#: Most slots one page of records() looks at, found or not: a page of a sparse
#: store costs no more than a page of a full one.
SCAN_LIMIT = 4096


def _table_size(capacity: int) -> int:
    size = 8
    while size < 2 * capacity:
        size *= 2
    return size


@implementer(IImmediateSessionStore)
class MemoryStore(DeferredMethods, HookMethods):
    """Fixed-size records in one bytearray, with LRU eviction and idle expiry."""

    def __init__(
        self,
        name: str,
        *,
        record_size: int,
        capacity: int,
        clock: IReactorTime,
        idle_timeout: float = 0,
        on_full: OnFull = "evict",
        hash_key: Callable[[bytes], int] = hash,
        held: Container[bytes] = frozenset(),
    ) -> None:
        self.name = name
        #: Keys whose records requests are using: never expired nor evicted
        #: (see ``StoreSpec.held``). Looked at only when a record is idle or
        #: must make room, so it costs a request nothing.
        self.held = held
        self.record_size = check_record_size(record_size)
        self.capacity = check_max_records(capacity)
        self.idle_timeout = check_idle_timeout(idle_timeout)
        self.on_full: OnFull = check_on_full(on_full)
        self.clock = clock
        # Tests pass a weak hash to force collisions; production keeps hash().
        self._hash = hash_key

        self._data = bytearray(capacity * record_size)
        self._keys = bytearray(capacity * _KEY)
        self._hashes = array("q", [0]) * capacity
        self._lengths = array("I", [0]) * capacity
        self._seen = array("d", [0.0]) * capacity
        self._versions = array("Q", [0]) * capacity
        # Recency list: _head is the most recently used slot, _tail the least.
        # Free slots are chained through _next from _free.
        self._prev = array("i", [_NONE]) * capacity
        self._next = array("i", range(1, capacity + 1))
        self._next[capacity - 1] = _NONE
        self._free = 0
        self._head = _NONE
        self._tail = _NONE
        self._table = array("i", [_NONE]) * _table_size(capacity)
        self._mask = len(self._table) - 1
        self._count = 0
        self._version = 0

        self._hits = 0
        self._misses = 0
        self._creations = 0
        self._evictions = 0
        self._expirations = 0
        self._refusals = 0
        self._conflicts = 0
        self.hooks = Hooks()
        self._pending = self.hooks.pending
        self._sweeper = IdleSweep(clock, self.idle_timeout, self.sweep)

    # -- sizes -----------------------------------------------------------------

    @staticmethod
    def bytes_needed(record_size: int, capacity: int) -> int:
        """What a store of this shape reserves, known before it is made."""
        # key, hash, length, last use, version and two links per slot; 4-byte
        # index cells.
        per_slot = record_size + _KEY + 8 + 4 + 8 + 8 + 4 + 4
        return capacity * per_slot + 4 * _table_size(capacity)

    @property
    def reserved_bytes(self) -> int:
        """Bytes held for records and their bookkeeping, fixed for the store's life."""
        arrays = (
            self._hashes,
            self._lengths,
            self._seen,
            self._versions,
            self._prev,
            self._next,
            self._table,
        )
        return (
            len(self._data) + len(self._keys) + sum(a.itemsize * len(a) for a in arrays)
        )

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        return (
            type(key) is bytes
            and len(key) == _KEY
            and self._idle_or_slot(self._find(key)) != _NONE
        )

    # -- life cycle and expiry -------------------------------------------------

    def open(self) -> Deferred[None]:
        """Start the periodic sweep of idle records (none without a timeout)."""
        self._sweeper.start()
        return succeed(None)

    def close(self) -> Deferred[None]:
        """Stop sweeping; the records go with the store."""
        self._sweeper.stop()
        return succeed(None)

    def sweep(self) -> int:
        """Drop records idle for ``idle_timeout`` seconds; return how many.

        The recency list is also the order of last use, so the sweep reads from
        its old end and stops at the first live record: its cost is the number
        of records it drops, not the number the store holds. It drops at most
        :data:`SWEEP_BATCH` at once and comes back for the rest at once, after
        other work had its turn.
        """
        timeout = self.idle_timeout
        if timeout <= 0:
            return 0
        now = self.clock.seconds()
        seen = self._seen
        held = self.held
        dropped = 0
        slot = self._tail
        try:
            # Idle is ``now - seen >= timeout`` everywhere, never ``seen <= now -
            # timeout``: the two round differently, and a record must not be
            # alive to load yet dropped by the sweep (or left out of a listing).
            while slot != _NONE and now - seen[slot] >= timeout:
                older = self._prev[slot]
                if held and self._key_of(slot) in held:
                    slot = older  # in use: passed over, however long ago
                    continue
                if dropped == SWEEP_BATCH:
                    self._sweeper.more()
                    break
                self._expire(slot)
                dropped += 1
                slot = older
        finally:
            self.hooks.run()
        return dropped

    def _expire(self, slot: int) -> None:
        key = self._key_of(slot)
        self._drop(slot)
        self._expirations += 1
        self.hooks.queue(self.hooks.expired, key)

    def _idle_or_slot(self, slot: int) -> int:
        """``slot``, or _NONE if it is _NONE or its record is idle (left as is)."""
        if (
            slot != _NONE
            and self.idle_timeout > 0
            and self.clock.seconds() - self._seen[slot] >= self.idle_timeout
            and not self._is_held(slot)
        ):
            return _NONE
        return slot

    def _is_held(self, slot: int) -> bool:
        """Whether a request uses the record in ``slot`` (see :attr:`held`)."""
        held = self.held
        return bool(held) and self._key_of(slot) in held

    def _oldest_free(self) -> int:
        """The least recently used slot no request holds; _NONE if none."""
        slot = self._tail
        if self.held:
            while slot != _NONE and self._is_held(slot):
                slot = self._prev[slot]
        return slot

    # -- the index -------------------------------------------------------------

    def _key_of(self, slot: int) -> bytes:
        offset = slot * _KEY
        return bytes(self._keys[offset : offset + _KEY])

    def _find(self, key: bytes) -> int:
        table = self._table
        keys = self._keys
        mask = self._mask
        pos = self._hash(key) & mask
        while True:
            slot = table[pos]
            if slot == _NONE:
                return _NONE
            # startswith at an offset compares in place; a slice would copy. Keys
            # are all 32 bytes (checked on the way in), so a match is the key.
            if keys.startswith(key, slot * _KEY):
                return slot
            pos = (pos + 1) & mask

    def _unindex(self, slot: int) -> None:
        table = self._table
        mask = self._mask
        hashes = self._hashes
        hole = hashes[slot] & mask
        while table[hole] != slot:
            hole = (hole + 1) & mask
        # Backward-shift deletion: pull later members of the probe run into the
        # hole so lookups never need tombstones.
        probe = hole
        while True:
            probe = (probe + 1) & mask
            moving = table[probe]
            if moving == _NONE:
                break
            home = hashes[moving] & mask
            if (probe - home) & mask >= (probe - hole) & mask:
                table[hole] = moving
                hole = probe
        table[hole] = _NONE

    # -- the recency list ------------------------------------------------------

    def _unlink(self, slot: int) -> None:
        prev = self._prev[slot]
        nxt = self._next[slot]
        if prev == _NONE:
            self._head = nxt
        else:
            self._next[prev] = nxt
        if nxt == _NONE:
            self._tail = prev
        else:
            self._prev[nxt] = prev

    def _push_front(self, slot: int) -> None:
        self._prev[slot] = _NONE
        self._next[slot] = self._head
        if self._head == _NONE:
            self._tail = slot
        else:
            self._prev[self._head] = slot
        self._head = slot

    def _drop(self, slot: int) -> None:
        self._unindex(slot)
        self._unlink(slot)
        self._versions[slot] = 0
        self._next[slot] = self._free
        self._free = slot
        self._count -= 1

    def _allocate(self, key: bytes) -> int:
        slot = self._free
        self._free = self._next[slot]
        offset = slot * _KEY
        self._keys[offset : offset + _KEY] = key
        digest = self._hash(key)
        self._hashes[slot] = digest
        pos = digest & self._mask
        while self._table[pos] != _NONE:
            pos = (pos + 1) & self._mask
        self._table[pos] = slot
        self._push_front(slot)
        self._count += 1
        return slot

    # -- IImmediateSessionStore -------------------------------------------------

    def _use(self, key: bytes) -> int:
        """The key's live slot, marked as just used; _NONE if absent or idle.

        One clock reading serves the expiry check and the new last-use time:
        this is the path of every request. An idle record is expired here.
        """
        if type(key) is not bytes or len(key) != _KEY:
            check_key(key)
        slot = self._find(key)
        if slot == _NONE:
            return _NONE
        now = self.clock.seconds()
        if (
            self.idle_timeout > 0
            and now - self._seen[slot] >= self.idle_timeout
            and key not in self.held
        ):
            self._expire(slot)
            return _NONE
        self._seen[slot] = now
        if slot != self._head:
            self._unlink(slot)
            self._push_front(slot)
        return slot

    def _read(self, slot: int) -> Stored:
        offset = slot * self.record_size
        # tuple.__new__ skips NamedTuple's own __new__: half the cost, same tuple.
        return _stored(
            Stored,
            (
                bytes(self._data[offset : offset + self._lengths[slot]]),
                self._versions[slot],
            ),
        )

    def load_now(self, key: bytes) -> Stored | None:
        slot = self._use(key)
        if slot == _NONE:
            self._misses += 1
            if self._pending:
                self.hooks.run()  # the player's idle record expired just now
            return None
        self._hits += 1
        return self._read(slot)

    def peek_now(self, key: bytes) -> Stored | None:
        check_key(key)
        slot = self._idle_or_slot(self._find(key))
        return None if slot == _NONE else self._read(slot)

    def save_now(self, key: bytes, data: bytes, expected: int) -> int:
        # Everything that can refuse the save is checked before the first
        # change: a failed save leaves no half-made record behind.
        check_key(key)
        check_data(data, self.name, self.record_size)
        if self._version >= MAX_VERSION:
            raise StoreUnavailable(
                f"slab {self.name!r} has given every version up to {MAX_VERSION}:"
                f" it keeps its records but can save no more"
            )
        size = len(data)
        try:
            slot = self._use(key)
            if slot != _NONE:
                if expected != ANY_VERSION and expected != self._versions[slot]:
                    self._conflict(key, self._versions[slot], expected)
            else:
                if expected != ANY_VERSION and expected != ABSENT:
                    self._conflict(key, ABSENT, expected)
                self._make_room()
                slot = self._allocate(key)
                self._seen[slot] = self.clock.seconds()
                self._creations += 1
                self.hooks.queue(self.hooks.created, key)
            offset = slot * self.record_size
            self._data[offset : offset + size] = data
            self._lengths[slot] = size
            self._version += 1
            self._versions[slot] = self._version
            return self._version
        finally:
            if self._pending:
                self.hooks.run()

    def _conflict(self, key: bytes, stored: int, expected: int) -> None:
        self._conflicts += 1
        raise conflict(self.name, key, stored, expected)

    def _reclaim_idle(self, oldest: int) -> bool:
        """Expire the record in slot ``oldest`` (the least recently used one no
        request holds) if it is idle; True if it was."""
        if (
            oldest == _NONE
            or self.idle_timeout <= 0
            or self.clock.seconds() - self._seen[oldest] < self.idle_timeout
        ):
            return False
        self._expire(oldest)
        return True

    def _make_room(self) -> None:
        """Free a slot if none is: an idle record first, else by the policy.
        Records requests hold are neither: if all are held, none makes room."""
        if self._count < self.capacity:
            return
        victim = self._oldest_free()
        if self._reclaim_idle(victim):
            return
        if self.on_full == "refuse":
            self._refusals += 1
            raise refused(self.name, self.capacity)
        if victim == _NONE:
            self._refusals += 1
            raise StoreFull(
                f"slab {self.name!r} is full ({self.capacity} records) and every"
                f" record is in use by a request: try again in a moment"
            )
        victim_key = self._key_of(victim)
        self._drop(victim)
        self._evictions += 1
        self.hooks.queue(self.hooks.evicted, victim_key)

    def restore_now(
        self,
        key: bytes,
        data: bytes,
        version: int,
        last_used: float,
        oldest: bool = False,
    ) -> None:
        """Put back a record kept elsewhere (a file read at start-up), as it was.

        It becomes the most recently used record (or, with ``oldest``, the least),
        so records restored oldest first keep their order. No hook fires, no
        version is made (later ones follow the highest restored), and there must
        be room: restoring more records than ``capacity``, or a key twice, is a
        ValueError.
        """
        check_key(key)
        if len(data) > self.record_size or not 1 <= version <= MAX_VERSION:
            raise ValueError(
                f"cannot restore a record of {len(data)} bytes at version {version}"
                f" into slab {self.name!r} ({self.record_size}-byte slots)"
            )
        if self._count >= self.capacity or self._find(key) != _NONE:
            raise ValueError(f"no room to restore a record into slab {self.name!r}")
        slot = self._allocate(key)
        if oldest and slot != self._tail:
            self._unlink(slot)
            self._prev[slot] = self._tail
            self._next[slot] = _NONE
            self._next[self._tail] = slot
            self._tail = slot
        offset = slot * self.record_size
        self._data[offset : offset + len(data)] = data
        self._lengths[slot] = len(data)
        self._seen[slot] = last_used
        self._versions[slot] = version
        self._version = max(self._version, version)

    def version_floor(self, version: int) -> None:
        """Give only versions above ``version`` from now on (versions a file
        once gave to records since dropped); at most :data:`MAX_VERSION`."""
        self._version = max(self._version, min(version, MAX_VERSION))

    @property
    def last_version(self) -> int:
        """The highest version this store has given; the next save gets more."""
        return self._version

    def take_back(self, creations: int = 0, evictions: int = 0) -> None:
        """Uncount creations and evictions that were undone (a store built on this
        one could not keep them)."""
        self._creations -= creations
        self._evictions -= evictions

    def restore_many(self, rows: Iterable[tuple[bytes, bytes, int, float]]) -> None:
        """:meth:`restore_now` for many records, oldest first, from a source whose
        keys are unique (a file's primary key): a million at start-up."""
        record_size = self.record_size
        data_of, keys_of = self._data, self._keys
        lengths, seen, versions = self._lengths, self._seen, self._versions
        hashes, table, mask = self._hashes, self._table, self._mask
        prev, nxt = self._prev, self._next
        digest_of = self._hash
        for key, data, version, last_used in rows:
            if (
                type(key) is not bytes
                or len(key) != _KEY
                or len(data) > record_size
                or not 1 <= version <= MAX_VERSION
                or self._count >= self.capacity
            ):
                raise ValueError(
                    f"cannot restore a record of {len(data)} bytes at version"
                    f" {version} into slab {self.name!r}"
                )
            slot = self._free
            self._free = nxt[slot]
            keys_of[slot * _KEY : slot * _KEY + _KEY] = key
            digest = digest_of(key)
            hashes[slot] = digest
            pos = digest & mask
            while table[pos] != _NONE:
                pos = (pos + 1) & mask
            table[pos] = slot
            # To the front of the recency list: the newest restored is the head.
            prev[slot] = _NONE
            nxt[slot] = self._head
            if self._head == _NONE:
                self._tail = slot
            else:
                prev[self._head] = slot
            self._head = slot
            self._count += 1
            offset = slot * record_size
            data_of[offset : offset + len(data)] = data
            lengths[slot] = len(data)
            seen[slot] = last_used
            versions[slot] = version
            if version > self._version:
                self._version = version

    def tell_expired(self, keys: list[bytes]) -> None:
        """Fire the expire hooks for ``keys``: records found idle too long
        elsewhere (in a file read at start-up) that never made it in here."""
        for key in keys:
            self.hooks.queue(self.hooks.expired, key)
        self.hooks.run()

    def last_used(self, key: bytes) -> float | None:
        """When ``key``'s record was last used (epoch seconds), or None."""
        check_key(key)
        slot = self._find(key)
        return None if slot == _NONE else self._seen[slot]

    def delete_now(self, key: bytes, expected: int = ANY_VERSION) -> bool:
        check_key(key)
        slot = self._idle_or_slot(self._find(key))
        if slot == _NONE:
            if expected not in (ANY_VERSION, ABSENT):
                self._conflict(key, ABSENT, expected)
            return False
        if expected != ANY_VERSION and expected != self._versions[slot]:
            self._conflict(key, self._versions[slot], expected)
        self._drop(slot)
        return True

    def records_now(self, cursor: str | None = None, limit: int = 256) -> RecordPage:
        # Slots in index order: a record stays in its slot for its whole life,
        # so one that lives through the listing is met exactly once, however
        # the recency list moves meanwhile.
        start = _cursor(cursor, self.capacity)
        if type(limit) is not int or limit < 1:
            # A page of no records would hand back its own cursor: a caller
            # paging until None would never get there.
            raise ValueError(f"limit must be 1 or more records (got {limit!r})")
        stop = min(self.capacity, start + max(limit, SCAN_LIMIT))
        now = self.clock.seconds()
        # An idle timeout of 0 keeps every record: no age reaches infinity.
        timeout = self.idle_timeout if self.idle_timeout > 0 else float("inf")
        found: list[StoredRecord] = []
        slot = start
        versions = self._versions
        seen = self._seen
        while slot < stop and len(found) < limit:
            if versions[slot] and (now - seen[slot] < timeout or self._is_held(slot)):
                data, version = self._read(slot)
                found.append(
                    StoredRecord(self._key_of(slot), data, version, seen[slot])
                )
            slot += 1
        return RecordPage(found, None if slot >= self.capacity else str(slot))

    # -- ISessionStore -----------------------------------------------------------

    def stats(self) -> StoreStats:
        return StoreStats(
            in_use=self._count,
            capacity=self.capacity,
            hits=self._hits,
            misses=self._misses,
            creations=self._creations,
            evictions=self._evictions,
            expirations=self._expirations,
            refusals=self._refusals,
            conflicts=self._conflicts,
        )


def _cursor(cursor: str | None, capacity: int) -> int:
    if cursor is None:
        return 0
    # isdigit() alone lets through digits int() does not read, such as "²".
    if (
        type(cursor) is not str
        or not (cursor.isascii() and cursor.isdigit())
        or int(cursor) > capacity
    ):
        raise ValueError(f"cursor {cursor!r} is not one this store gave")
    return int(cursor)


def memory_stores(spec: StoreSpec) -> MemoryStore:
    """The default store factory: a :class:`MemoryStore` sized by the slab."""
    options = spec.options
    return MemoryStore(
        spec.name,
        record_size=spec.record_size,
        capacity=options.max_records,
        clock=spec.clock,
        idle_timeout=options.idle_timeout,
        on_full=options.on_full,
        held=spec.held,
    )
