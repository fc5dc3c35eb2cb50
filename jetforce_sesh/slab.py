"""A record type's slab: declared at import time, opened by the launcher.

Declaring a :class:`RecordSlab` costs nothing; memory is reserved in :meth:`open`,
when the launcher knows the command line's defaults and has a reactor. One
capsule holds one slab per record type, so a player's records in different games
live in different slabs and can never collide.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from twisted.internet.interfaces import IReactorTime

from jetforce_sesh.codec import RecordCodec
from jetforce_sesh.errors import ConfigError, StoreNotOpen
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.slab import MemorySlab
from jetforce_sesh.store import Hook, IImmediateSessionStore, ISessionStore, OnFull
from jetforce_sesh.turns import Turns

R = TypeVar("R")

StoreFactory = Callable[[str, SlabOptions, IReactorTime], ISessionStore]


def memory_store(name: str, options: SlabOptions, clock: IReactorTime) -> MemorySlab:
    """The default store: a :class:`MemorySlab` sized by ``options``."""
    return MemorySlab(
        name,
        record_size=options.record_size,
        capacity=options.max_records,
        clock=clock,
        idle_timeout=options.idle_timeout,
        on_full=options.on_full,
    )


class RecordSlab(Generic[R]):
    """The session records of one attrs class, and the store that keeps them."""

    def __init__(
        self,
        record_type: type[R],
        *,
        name: str | None = None,
        record_size: int | None = None,
        max_records: int | None = None,
        idle_timeout: float | None = None,
        on_full: OnFull | None = None,
    ) -> None:
        self.record_type = record_type
        self.name = ""
        self.overrides: dict[str, Any] = {}
        #: True while only session_route(record=...) has named this slab: a
        #: later app.slab() call may still give it settings.
        self.implicit = False
        self.declare(
            name=name,
            record_size=record_size,
            max_records=max_records,
            idle_timeout=idle_timeout,
            on_full=on_full,
        )
        self.options: SlabOptions | None = None
        self.clock: IReactorTime | None = None
        self._store: ISessionStore | None = None
        #: The store, when it answers at once (the memory slab); else None.
        self.immediate: IImmediateSessionStore | None = None
        #: The codec while the slab is open (the route's fast path reads it).
        self.open_codec: RecordCodec[R] | None = None
        self._hooks: list[tuple[str, Hook]] = []
        #: Whose request holds each player's record, and who waits for it.
        self.turns = Turns()

    def declare(self, *, name: str | None = None, **overrides: Any) -> None:
        """Set the slab's name and settings; None leaves a setting to the launcher."""
        # Check the slab's own values now, at import, rather than at start-up.
        SlabOptions().with_overrides(**overrides)
        record_type = self.record_type
        self.name = name or f"{record_type.__module__}.{record_type.__qualname__}"
        self.overrides = overrides
        self.implicit = False

    def same_declaration(self, *, name: str | None = None, **overrides: Any) -> bool:
        return (name is None or name == self.name) and all(
            value is None or self.overrides.get(key) == value
            for key, value in overrides.items()
        )

    # -- life cycle ------------------------------------------------------------

    def open(
        self,
        clock: IReactorTime,
        defaults: SlabOptions | None = None,
        store_factory: StoreFactory = memory_store,
    ) -> ISessionStore:
        """Reserve the slab's memory and start its expiry sweep."""
        if self._store is not None:
            return self._store
        options = self.resolve(defaults)
        codec = RecordCodec(self.record_type, options.record_size)
        store = store_factory(self.name, options, clock)
        for kind, hook in self._hooks:
            getattr(store, kind)(hook)
        start = getattr(store, "start", None)
        if start is not None:
            start()
        self.options, self.clock, self.open_codec, self._store = (
            options,
            clock,
            codec,
            store,
        )
        # Asked once here rather than on every request.
        self.immediate = store if IImmediateSessionStore.providedBy(store) else None
        return store

    def resolve(self, defaults: SlabOptions | None = None) -> SlabOptions:
        """The settings the slab opens with: its own, else ``defaults``."""
        return (defaults or SlabOptions()).with_overrides(**self.overrides)

    def close(self) -> None:
        """Stop the expiry sweep; the records are dropped with the slab."""
        stop = getattr(self._store, "stop", None)
        if stop is not None:
            stop()
        self._store = None
        self.immediate = None
        self.open_codec = None
        self.clock = None
        self.turns.clear()

    @property
    def store(self) -> ISessionStore:
        if self._store is None:
            raise StoreNotOpen(
                f"slab {self.name!r} is not open: start the capsule with"
                f" jetforce-sesh, or call app.open(clock) before serving"
            )
        return self._store

    def opened_clock(self) -> IReactorTime:
        """The clock the slab was opened with; StoreNotOpen before that."""
        if self.clock is None:
            self.store  # noqa: B018 - raises StoreNotOpen with the fix in its message
        assert self.clock is not None
        return self.clock

    def now(self) -> float:
        """Seconds since the epoch on the slab's clock (a Clock in tests)."""
        clock = self.clock
        return (clock or self.opened_clock()).seconds()

    @property
    def codec(self) -> RecordCodec[R]:
        self.store  # noqa: B018 - raises StoreNotOpen with the fix in its message
        assert self.open_codec is not None
        return self.open_codec

    # -- hooks -----------------------------------------------------------------

    def _hook(self, kind: str, hook: Hook) -> Hook:
        self._hooks.append((kind, hook))
        if self._store is not None:
            getattr(self._store, kind)(hook)
        return hook

    def on_created(self, hook: Hook) -> Hook:
        """Call ``hook(fingerprint)`` when a new player's record is first stored."""
        return self._hook("on_created", hook)

    def on_evicted(self, hook: Hook) -> Hook:
        """Call ``hook(fingerprint)`` when a record is dropped to make room."""
        return self._hook("on_evicted", hook)

    def on_expired(self, hook: Hook) -> Hook:
        """Call ``hook(fingerprint)`` when a record is dropped for being idle."""
        return self._hook("on_expired", hook)

    # -- reading across players ---------------------------------------------------

    def _immediate(self) -> IImmediateSessionStore:
        store = self.store
        if not IImmediateSessionStore.providedBy(store):
            raise TypeError(
                f"slab {self.name!r} is kept in another process: use"
                f" store.records(), which answers with a Deferred"
            )
        return store

    def records(self) -> Iterator[tuple[bytes, R]]:
        """Every live record with its player's fingerprint, without touching them.

        For pages that read across players (a hall of fame). Records are
        decoded afresh: changing them changes nothing in the slab.
        """
        decode = self.codec.decode
        for key, data in self._immediate().iter_records():
            yield key, decode(data)

    def peek(self, fingerprint: bytes) -> R | None:
        """One player's record, or None, without touching it (for another game's
        route to read, as a hall of fame reads names)."""
        data = self._immediate().peek_now(fingerprint)
        return None if data is None else self.codec.decode(data)

    def describe(self) -> str:
        """One banner line: the record size, the capacity and the memory reserved."""
        store = self.store
        options = self.options
        assert options is not None
        reserved = getattr(store, "reserved_bytes", None)
        memory = "" if reserved is None else f", {_bytes(reserved)} reserved"
        idle = (
            f"idle records expire after {_seconds(options.idle_timeout)}"
            if options.idle_timeout
            else "idle records kept"
        )
        return (
            f"slab {self.name}: up to {options.max_records} records of"
            f" {options.record_size} bytes{memory}; when full: {options.on_full};"
            f" {idle}"
        )


def _bytes(size: int) -> str:
    if size < 1 << 10:
        return f"{size} bytes"
    if size < 1 << 20:
        return f"{size / (1 << 10):.1f} KiB"
    return f"{size / (1 << 20):.1f} MiB"


def _seconds(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole} s" if whole == seconds else f"{seconds} s"


def check_same(slab: RecordSlab[Any], **overrides: Any) -> None:
    if not slab.same_declaration(**overrides):
        name = overrides.pop("name", None)
        mine, theirs = _settings(slab.overrides), _settings(overrides)
        if name is not None and name != slab.name:
            mine, theirs = f"name={slab.name!r}, {mine}", f"name={name!r}, {theirs}"
        raise ConfigError(
            f"slab {slab.name!r} is declared twice with different settings"
            f" ({mine} and {theirs}): declare it once, with app.slab(), and pass"
            f" only record= to session_route"
        )


def _settings(overrides: dict[str, Any]) -> str:
    given = [f"{k}={v!r}" for k, v in overrides.items() if v is not None]
    return ", ".join(given) or "launcher defaults"
