"""The memory slab: every record in one preallocated buffer, sized at start-up.

``capacity`` slots of ``record_size`` bytes are reserved when the slab is made, along
with fixed-size arrays for the index, the recency list and the last-use times. After
that nothing grows: a new player takes a free slot, or the least recently used one
(``on_full="evict"``), or is turned away (``on_full="refuse"``).

The index is an open-addressing hash table (linear probing, backward-shift deletion)
in an ``array``, not a dict: a dict of a million ``bytes`` keys costs about 150 bytes a
record and grows in jumps, where this costs a fixed 60 and is all allocated up front.
Slots are found by Python's own ``hash()`` of the fingerprint, which is keyed per
process, so a player who grinds certificates cannot aim them at one bucket.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from zope.interface import implementer

from jetforce_sesh.errors import RecordTooLarge, StoreFull
from jetforce_sesh.identity import FINGERPRINT_SIZE
from jetforce_sesh.options import (
    check_idle_timeout,
    check_max_records,
    check_on_full,
    check_record_size,
)
from jetforce_sesh.store import (
    Hook,
    IImmediateSessionStore,
    OnFull,
    StoreStats,
)

_log = Logger()
_KEY = FINGERPRINT_SIZE
_NONE = -1


def _notify(hooks: list[Hook], key: bytes) -> None:
    """Call every hook; one that raises is logged and does not undo the change
    it was told about, nor stop the others or the sweep that called it."""
    for hook in hooks:
        try:
            hook(key)
        except Exception:
            _log.failure("slab hook {hook!r} failed", hook=hook)


def _table_size(capacity: int) -> int:
    size = 8
    while size < 2 * capacity:
        size *= 2
    return size


@implementer(IImmediateSessionStore)
class MemorySlab:
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
    ) -> None:
        check_record_size(record_size)
        check_max_records(capacity)
        check_idle_timeout(idle_timeout)
        check_on_full(on_full)
        self.name = name
        self.record_size = record_size
        self.capacity = capacity
        self.idle_timeout = idle_timeout
        self.on_full: OnFull = on_full
        self.clock = clock
        # Tests pass a weak hash to force collisions; production keeps hash().
        self._hash = hash_key

        self._data = bytearray(capacity * record_size)
        self._keys = bytearray(capacity * _KEY)
        self._hashes = array("q", [0]) * capacity
        self._lengths = array("I", [0]) * capacity
        self._seen = array("d", [0.0]) * capacity
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

        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._expirations = 0
        self._created_hooks: list[Hook] = []
        self._evicted_hooks: list[Hook] = []
        self._expired_hooks: list[Hook] = []
        self._sweeper: LoopingCall | None = None

    # -- sizes -----------------------------------------------------------------

    @staticmethod
    def bytes_needed(record_size: int, capacity: int) -> int:
        """What a slab of this shape reserves, known before it is made."""
        # key, hash, length, last use and two links per slot; 4-byte index cells.
        per_slot = record_size + _KEY + 8 + 4 + 8 + 4 + 4
        return capacity * per_slot + 4 * _table_size(capacity)

    @property
    def reserved_bytes(self) -> int:
        """Bytes held for records and their bookkeeping, fixed for the slab's life."""
        arrays = (self._hashes, self._lengths, self._seen, self._prev, self._next)
        return (
            len(self._data)
            + len(self._keys)
            + sum(a.itemsize * len(a) for a in arrays)
            + self._table.itemsize * len(self._table)
        )

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: object) -> bool:
        return isinstance(key, bytes) and self._live_slot(key) != _NONE

    # -- expiry ----------------------------------------------------------------

    def start(self) -> None:
        """Begin the periodic sweep of idle records (no-op without a timeout)."""
        if self.idle_timeout > 0 and self._sweeper is None:
            self._sweeper = LoopingCall(self.sweep)
            self._sweeper.clock = self.clock
            interval = max(1.0, min(60.0, self.idle_timeout / 2))
            self._sweeper.start(interval, now=False)

    def stop(self) -> None:
        """Stop sweeping; records stay where they are."""
        if self._sweeper is not None:
            if self._sweeper.running:
                self._sweeper.stop()
            self._sweeper = None

    def sweep(self) -> int:
        """Drop every record idle for ``idle_timeout`` seconds; return how many.

        The recency list is also the order of last use, so the sweep reads from
        its old end and stops at the first live record: its cost is the number
        of records it drops, not the number the slab holds.
        """
        if self.idle_timeout <= 0:
            return 0
        deadline = self.clock.seconds() - self.idle_timeout
        dropped = 0
        while self._tail != _NONE and self._seen[self._tail] <= deadline:
            self._expire(self._tail)
            dropped += 1
        return dropped

    def _expire(self, slot: int) -> None:
        key = self._key_of(slot)
        self._drop(slot)
        self._expirations += 1
        _notify(self._expired_hooks, key)

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
            # startswith at an offset compares in place; a slice would copy.
            if keys.startswith(key, slot * _KEY):
                return slot
            pos = (pos + 1) & mask

    def _live_slot(self, key: bytes) -> int:
        """The key's slot, or _NONE if absent; an idle record is expired here."""
        slot = self._find(key)
        if (
            slot != _NONE
            and self.idle_timeout > 0
            and self.clock.seconds() - self._seen[slot] >= self.idle_timeout
        ):
            self._expire(slot)
            return _NONE
        return slot

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
        self._next[slot] = self._free
        self._free = slot
        self._count -= 1

    # -- IImmediateSessionStore ----------------------------------------------------

    def _use(self, key: bytes) -> int:
        """The key's live slot, marked as just used; _NONE if absent or idle.

        One clock reading serves the expiry check and the new last-use time:
        this is the path of every request.
        """
        slot = self._find(key)
        if slot == _NONE:
            return _NONE
        now = self.clock.seconds()
        if self.idle_timeout > 0 and now - self._seen[slot] >= self.idle_timeout:
            self._expire(slot)
            return _NONE
        self._seen[slot] = now
        if slot != self._head:
            self._unlink(slot)
            self._push_front(slot)
        return slot

    def load_now(self, key: bytes) -> bytes | None:
        slot = self._use(key)
        if slot == _NONE:
            self._misses += 1
            return None
        self._hits += 1
        offset = slot * self.record_size
        return bytes(self._data[offset : offset + self._lengths[slot]])

    def peek_now(self, key: bytes) -> bytes | None:
        slot = self._find(key)
        if slot == _NONE or (
            self.idle_timeout > 0
            and self.clock.seconds() - self._seen[slot] >= self.idle_timeout
        ):
            return None
        offset = slot * self.record_size
        return bytes(self._data[offset : offset + self._lengths[slot]])

    def admits_now(self, key: bytes) -> bool:
        return (
            self.on_full == "evict"
            or self._count < self.capacity
            or self._live_slot(key) != _NONE
            or self._reclaim_idle()
        )

    def save_now(self, key: bytes, data: bytes) -> None:
        size = len(data)
        if size > self.record_size:
            raise RecordTooLarge(
                f"record of {size} bytes does not fit slab {self.name!r}"
                f" ({self.record_size}-byte slots): raise its record_size or"
                f" store less"
            )
        if len(key) != _KEY:
            raise ValueError(
                f"keys are 32-byte certificate fingerprints (got {len(key)} bytes):"
                f" use parse_fingerprint()"
            )
        slot = self._use(key)
        if slot != _NONE:
            offset = slot * self.record_size
            self._data[offset : offset + size] = data
            self._lengths[slot] = size
            return
        victim_key = self._make_room()
        slot = self._allocate(key)
        offset = slot * self.record_size
        self._data[offset : offset + size] = data
        self._lengths[slot] = size
        self._seen[slot] = self.clock.seconds()
        # Hooks run once the slab is whole again: they may read or write it.
        if victim_key is not None:
            _notify(self._evicted_hooks, victim_key)
        _notify(self._created_hooks, key)

    def _reclaim_idle(self) -> bool:
        """Expire the least recently used record if it is idle; True if it was."""
        tail = self._tail
        if (
            tail == _NONE
            or self.idle_timeout <= 0
            or self.clock.seconds() - self._seen[tail] < self.idle_timeout
        ):
            return False
        self._expire(tail)
        return True

    def _make_room(self) -> bytes | None:
        """Free a slot if none is; return the key evicted for it, if any."""
        if self._count < self.capacity or self._reclaim_idle():
            return None
        if self.on_full == "refuse":
            raise StoreFull(
                f"slab {self.name!r} is full ({self.capacity} records) and"
                f" refuses new players: raise max_records or use on_full='evict'"
            )
        victim = self._tail
        victim_key = self._key_of(victim)
        self._drop(victim)
        self._evictions += 1
        return victim_key

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

    def delete_now(self, key: bytes) -> bool:
        slot = self._live_slot(key)
        if slot == _NONE:
            return False
        self._drop(slot)
        return True

    def iter_records(self) -> Iterator[tuple[bytes, bytes]]:
        # Copy everything first: a caller may save or delete while iterating,
        # and must still see the records as they were when it began.
        deadline = (
            self.clock.seconds() - self.idle_timeout if self.idle_timeout > 0 else None
        )
        records = []
        slot = self._head
        while slot != _NONE:
            if deadline is None or self._seen[slot] > deadline:
                offset = slot * self.record_size
                records.append(
                    (
                        self._key_of(slot),
                        bytes(self._data[offset : offset + self._lengths[slot]]),
                    )
                )
            slot = self._next[slot]
        return iter(records)

    # -- ISessionStore -----------------------------------------------------------

    def load(self, key: bytes) -> Deferred[bytes | None]:
        return succeed(self.load_now(key))

    def save(self, key: bytes, data: bytes) -> Deferred[None]:
        try:
            self.save_now(key, data)
        except (RecordTooLarge, StoreFull) as error:
            return fail(error)
        return succeed(None)

    def delete(self, key: bytes) -> Deferred[bool]:
        return succeed(self.delete_now(key))

    def admits(self, key: bytes) -> Deferred[bool]:
        return succeed(self.admits_now(key))

    def records(self) -> Deferred[list[tuple[bytes, bytes]]]:
        return succeed(list(self.iter_records()))

    def stats(self) -> StoreStats:
        return StoreStats(
            in_use=self._count,
            capacity=self.capacity,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
            expirations=self._expirations,
        )

    def on_created(self, hook: Hook) -> None:
        self._created_hooks.append(hook)

    def on_evicted(self, hook: Hook) -> None:
        self._evicted_hooks.append(hook)

    def on_expired(self, hook: Hook) -> None:
        self._expired_hooks.append(hook)
