"""A slab: the records of one attrs class, declared at import, opened at start-up.

Declaring a :class:`Slab` with ``app.slab(Record)`` costs nothing; its store is made
in :meth:`Slab.open`, when the launcher knows the command line's defaults, the
store kind and the reactor. One capsule holds one slab per record class, so a
player's records in different games live apart and can never collide.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import attrs
from jetforce.app.base import Response
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import ConfigError, Conflict, RecordUnreadable, StoreNotOpen
from jetforce_sesh.keys import FingerprintKeys, IPlayerKeys
from jetforce_sesh.options import OnFull, SlabOptions
from jetforce_sesh.records.codec import Codec
from jetforce_sesh.records.layout import LayoutCodec
from jetforce_sesh.records.msgpack import MsgpackCodec
from jetforce_sesh.session.answers import SHUTTING_DOWN
from jetforce_sesh.session.turns import Running, Turns, Waiter
from jetforce_sesh.stores.contract import (
    ABSENT,
    ANY_VERSION,
    Hook,
    IImmediateSessionStore,
    ISessionStore,
    Stored,
    StoredRecord,
    StoreFactory,
    StoreSpec,
)
from jetforce_sesh.stores.memory import memory_stores

R = TypeVar("R")

_log = Logger()

#: Records read across players between two turns of the reactor: reading more
#: at once would make every other request wait for it.
SLICE = 256
#: Runs of an edit in :meth:`Slab.change` when its saves keep conflicting.
CHANGE_ATTEMPTS = 5
#: Unreadable records remembered as already logged, so each is logged once.
_LOGGED_MAX = 4096


class _NoCall:
    """Stands for a delayed call never made (close() without grace)."""

    def active(self) -> bool:
        return False

    def cancel(self) -> None:
        pass


_NO_CALL = _NoCall()


class _Closing:
    """A slab's close while its running requests finish: fires
    :attr:`finished` once none is left, cutting them off when the grace
    period ends."""

    def __init__(self, opened: OpenSlab[Any]) -> None:
        self.opened = opened
        self.finished: Deferred[None] = Deferred()
        self._late: IDelayedCall | _NoCall = _NO_CALL
        self._deadline = float("inf")
        for visit in opened.running:
            visit.when_done(self.check)

    def hurry(self, grace: float) -> None:
        """Cut the running requests off ``grace`` seconds from now, unless an
        earlier close set a sooner time already."""
        if self.finished.called:
            return
        clock = self.opened.clock
        if grace <= 0:
            self.cut_off()
            return
        deadline = clock.seconds() + grace
        if deadline < self._deadline:
            self._deadline = deadline
            if self._late.active():
                self._late.cancel()
            self._late = clock.callLater(grace, self.cut_off)

    def check(self) -> None:
        if not self.opened.running and not self.finished.called:
            if self._late.active():
                self._late.cancel()
            self.finished.callback(None)

    def cut_off(self) -> None:
        for visit in list(self.opened.running):
            visit.stop(SHUTTING_DOWN)
        self.check()


class _Change:
    """A slab's store opening or closing: any number of callers wait for it."""

    def __init__(self, change: Deferred[Any], slab: Slab[Any]) -> None:
        self._slab = slab
        self._done = False
        self._result: object = None
        self._waiters: list[Deferred[None]] = []
        slab._change = self  # before it may settle, at once
        change.addBoth(self._settle)

    def _settle(self, result: object) -> None:
        self._done, self._result = True, result
        if self._slab._change is self:
            self._slab._change = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._tell(waiter)

    def _tell(self, waiter: Deferred[None]) -> None:
        if isinstance(self._result, Failure):
            waiter.errback(self._result)
        else:
            waiter.callback(None)

    def wait(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        if self._done:
            self._tell(waiter)
        else:
            self._waiters.append(waiter)
        return waiter


@attrs.define(eq=False)
class OpenSlab(Generic[R]):
    """What an open slab serves with: its store, codec, key step, clock and
    turns. Made by :meth:`Slab.open`, let go of by :meth:`Slab.close`; the
    route reads it on every request (:meth:`Slab.admit`)."""

    store: ISessionStore
    #: The store again when it is immediate (the memory store), else None.
    immediate: IImmediateSessionStore | None
    codec: Codec[R]
    keys: IPlayerKeys
    clock: IReactorTime
    options: SlabOptions
    #: Whose turn it is per player: in-process visits and bridge LOOKUPs alike.
    turns: Turns[Waiter]
    #: Requests that are waiting on something, for close() to see through.
    running: set[Running] = attrs.Factory(set)
    closing: bool = False


@attrs.define
class SlabStats:
    """What the slab's routes met, beyond what its store counts."""

    too_large: int = 0
    invalid: int = 0
    unreadable: int = 0
    failures: int = 0
    timeouts: int = 0
    conflicts_given_up: int = 0
    queue_full: int = 0
    #: Requests whose record went away while they held it (deleted, or
    #: dropped by a store that does not keep held records): answered 40.
    vanished: int = 0


class Slab(Generic[R]):
    """The session records of one attrs class, and the store that keeps them."""

    def __init__(
        self,
        record_type: type[R],
        *,
        name: str | None = None,
        title: str = "",
        home: str = "/",
        layout: str | None = None,
        record_size: int | None = None,
        max_records: int | None = None,
        idle_timeout: float | None = None,
        on_full: OnFull | None = None,
        max_queued: int | None = None,
    ) -> None:
        self.record_type = record_type
        self.name = ""
        #: The game's name for players, and the page their records belong to.
        self.title = title
        #: What one record is, in the start-up banner's words.
        self.unit = "players"
        self.home = home
        self._layout: str | None = None
        self._settings: dict[str, Any] = {}
        #: True while only ``session_route(record=...)`` has named this slab: a
        #: later ``app.slab()`` call may still give it settings.
        self.implicit = False
        self.declare(
            name=name,
            layout=layout,
            record_size=record_size,
            max_records=max_records,
            idle_timeout=idle_timeout,
            on_full=on_full,
            max_queued=max_queued,
        )
        self._opened: OpenSlab[R] | None = None
        self._closed = False
        #: While the store opens or closes: what to wait for before the next step.
        self._change: _Change | None = None
        #: While the slab closes, waiting for its running requests.
        self._closing: _Closing | None = None
        self._hooks: list[tuple[str, Hook]] = []
        self.stats = SlabStats()
        self._logged: set[tuple[bytes, int]] = set()

    # -- declaring -------------------------------------------------------------

    def declare(
        self, *, name: str | None = None, layout: str | None = None, **settings: Any
    ) -> None:
        """Set the slab's name, layout and settings; None leaves a setting to the
        launcher."""
        # Check the slab's own values now, at import, rather than at start-up.
        SlabOptions().with_overrides(**settings)
        if layout is not None:
            size = LayoutCodec(self.record_type, layout).record_size
            given = settings.get("record_size")
            if given is not None and given != size:
                raise ConfigError(
                    f"slab of {self.record_type.__qualname__} has layout {layout!r},"
                    f" which takes {size} bytes, and record_size={given}: leave"
                    f" record_size out, the layout sets it"
                )
        record_type = self.record_type
        self.name = name or f"{record_type.__module__}.{record_type.__qualname__}"
        self._layout = layout
        self._settings = settings
        self.implicit = False

    def _same(self, *, name: str | None = None, **settings: Any) -> bool:
        given = {"layout": self._layout, **self._settings}
        return (name is None or name == self.name) and all(
            value is None or given.get(key) == value for key, value in settings.items()
        )

    @property
    def layout(self) -> str | None:
        """The fixed binary layout of the records, if the slab was given one."""
        return self._layout

    # -- life cycle ------------------------------------------------------------

    def resolve(self, defaults: SlabOptions | None = None) -> SlabOptions:
        """The settings the slab opens with: its own, else ``defaults``."""
        return (defaults or SlabOptions()).with_overrides(**self._settings)

    def codec_for(self, options: SlabOptions) -> Codec[R]:
        """The codec the slab encodes its records with, once ``options`` hold."""
        if self._layout is not None:
            return LayoutCodec(self.record_type, self._layout)
        return MsgpackCodec(self.record_type, options.record_size)

    def open(
        self,
        clock: IReactorTime,
        defaults: SlabOptions | None = None,
        stores: StoreFactory = memory_stores,
        keys: IPlayerKeys | None = None,
    ) -> Deferred[None]:
        """Make the slab's store and open it; fires once it serves.

        Opening an open slab does nothing. ConfigError (at once) if the record
        class or the settings cannot work.
        """
        if self._opened is not None:
            return succeed(None)
        if self._change is not None:
            # Opening already, or closing: open once that is done.
            return self._change.wait().addCallback(
                lambda _: self.open(clock, defaults, stores, keys)
            )
        options = self.resolve(defaults)
        codec = self.codec_for(options)
        turns: Turns[Waiter] = Turns(options.max_queued)
        spec = StoreSpec(
            self.name,
            options,
            clock,
            codec.record_size,
            codec.format,
            held=turns.in_use,
        )
        store = stores(spec)
        for kind, hook in self._hooks:
            getattr(store, kind)(hook)
        opened: OpenSlab[R] = OpenSlab(
            store=store,
            immediate=store if IImmediateSessionStore.providedBy(store) else None,
            codec=codec,
            keys=keys or FingerprintKeys(),
            clock=clock,
            options=options,
            turns=turns,
        )

        def serve(_: object) -> None:
            self._opened = opened
            self._closed = False

        opening = store.open().addCallback(serve)
        return _Change(opening, self).wait()

    def close(self, grace: float = 5.0) -> Deferred[None]:
        """Stop serving: answer the requests still waiting for a turn, give the
        running ones ``grace`` seconds to finish (then cut them off, keeping
        nothing they changed), and close the store. Fires once it is closed.

        Closing a slab that is closing already (two server scripts that include
        one game, a second shutdown signal) closes nothing twice: it waits for
        the close under way, and cuts the running requests off sooner if its
        ``grace`` ends sooner.
        """
        opened = self._opened
        if opened is None:
            if self._change is not None:  # closing already, or opening
                return self._change.wait().addCallback(lambda _: self.close(grace))
            return succeed(None)
        if opened.closing:
            closing, change = self._closing, self._change
            assert closing is not None and change is not None
            waiting = change.wait()
            closing.hurry(grace)  # which may close it at once
            return waiting
        opened.closing = True
        for waiter in opened.turns.clear():
            waiter.refuse(SHUTTING_DOWN)
        closing = self._closing = _Closing(opened)
        closing.hurry(grace)
        closing.check()

        def close_store(_: object) -> Deferred[None]:
            self._opened = None
            self._closing = None
            self._closed = True
            return opened.store.close()

        return _Change(closing.finished.addCallback(close_store), self).wait()

    def abandon(self) -> None:
        """Let go of the store without waiting for it to close (the testing
        harness, when the clock the store closes on will never move again)."""
        self._opened = None
        self._change = None
        self._closing = None
        self._closed = False

    @property
    def opened(self) -> OpenSlab[R]:
        """What the open slab serves with; StoreNotOpen before :meth:`open`."""
        if self._opened is None:
            raise StoreNotOpen(
                f"slab {self.name!r} is not open: start the capsule with"
                f" jetforce-sesh, or call app.open(clock) before serving"
            )
        return self._opened

    @property
    def is_open(self) -> bool:
        """True from the moment the store serves until :meth:`close` lets go."""
        return self._opened is not None

    def admit(self) -> OpenSlab[R] | Response:
        """What a request to this slab meets now: the open slab to play in, or
        the answer ``41`` while it opens, closes or is closed. StoreNotOpen if
        nothing ever opened it (a capsule served without its stores)."""
        opened = self._opened
        if opened is not None and not opened.closing:
            return opened
        # A server script's stores open as its reactor starts, while it may
        # already accept requests.
        if opened is not None or self._closed or self._change is not None:
            return SHUTTING_DOWN
        return self.opened  # raises StoreNotOpen, with the fix in its message

    @property
    def store(self) -> ISessionStore:
        """The open store; StoreNotOpen before :meth:`open`."""
        return self.opened.store

    @property
    def options(self) -> SlabOptions:
        """The settings in force; StoreNotOpen before :meth:`open`."""
        return self.opened.options

    @property
    def codec(self) -> Codec[R]:
        """The codec in use; StoreNotOpen before :meth:`open`."""
        return self.opened.codec

    @property
    def clock(self) -> IReactorTime:
        """The clock the slab was opened with (the reactor, or a Clock in
        tests): wait on it rather than on the global reactor."""
        return self.opened.clock

    def now(self) -> float:
        """Seconds since the epoch on the slab's clock (a Clock in tests)."""
        return self.opened.clock.seconds()

    def in_use(self) -> int:
        """How many records the slab holds now."""
        return self.opened.store.stats().in_use

    @property
    def serving(self) -> OpenSlab[R]:
        """Deprecated since 0.3, gone in 0.4: :attr:`opened`."""
        warnings.warn(
            "slab.serving is slab.opened since jetforce-sesh 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.opened

    def opened_clock(self) -> IReactorTime:
        """Deprecated since 0.3, gone in 0.4: :attr:`clock`."""
        warnings.warn(
            "slab.opened_clock() is slab.clock since jetforce-sesh 0.3",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.opened.clock

    # -- changing records outside a route -----------------------------------------

    def fetch(self, key: bytes) -> Deferred[tuple[R | None, int]]:
        """One player's record and its version (:data:`ABSENT` if there is
        none), without counting as use, on any store; RecordUnreadable if the
        stored bytes cannot be read."""
        opened = self.opened

        def decoded(stored: Stored | None) -> tuple[R | None, int]:
            if stored is None:
                return None, ABSENT
            return opened.codec.decode(stored.data), stored.version

        return opened.store.peek(key).addCallback(decoded)

    def change(
        self,
        key: bytes,
        edit: Callable[[R | None], R | None],
        *,
        attempts: int = CHANGE_ATTEMPTS,
    ) -> Deferred[R | None]:
        """Edit one player's record outside a route: ``edit(record)`` (None
        if there is none) returns the record to keep, or None to delete it.

        The one write path for code that is not a session route (accounts,
        the admin pages, a periodic task): the save names the version read, so
        if another writer got there first ``edit`` runs again on the fresh
        record, up to ``attempts`` times (then Conflict). It does not wait for
        the player's turn, so ``edit`` must do nothing but compute the record.
        Fires with what was kept.
        """
        if attempts < 1:
            raise ValueError(f"attempts must be 1 or more (got {attempts!r})")
        return Deferred.fromCoroutine(self._edit(key, edit, attempts))

    async def _edit(
        self, key: bytes, edit: Callable[[R | None], R | None], attempts: int
    ) -> R | None:
        opened = self.opened
        for attempt in range(attempts):
            record, version = await self.fetch(key)
            new = edit(record)
            try:
                if new is None:
                    if version != ABSENT:
                        await opened.store.delete(key, version)
                else:
                    await opened.store.save(key, opened.codec.encode(new), version)
            except Conflict:
                if attempt == attempts - 1:
                    raise
                continue
            return new
        raise AssertionError("unreachable: the last attempt returns or raises")

    def drop(self, key: bytes) -> Deferred[bool]:
        """Forget one player's record, whatever its version; True if it was
        there."""
        return self.opened.store.delete(key, ANY_VERSION)

    # -- hooks -----------------------------------------------------------------

    def _hook(self, kind: str, hook: Hook) -> Hook:
        self._hooks.append((kind, hook))
        if self._opened is not None:
            getattr(self._opened.store, kind)(hook)
        return hook

    def on_created(self, hook: Hook) -> Hook:
        """Call ``hook(key)`` when a new player's record is first stored."""
        return self._hook("on_created", hook)

    def on_evicted(self, hook: Hook) -> Hook:
        """Call ``hook(key)`` when a record is dropped to make room."""
        return self._hook("on_evicted", hook)

    def on_expired(self, hook: Hook) -> Hook:
        """Call ``hook(key)`` when a record is dropped for being idle."""
        return self._hook("on_expired", hook)

    # -- reading across players ---------------------------------------------------

    def decoded(self, key: bytes, stored: Stored | StoredRecord) -> R | None:
        """The record in ``stored``, or None (logged once, counted) if unreadable."""
        try:
            return self.opened.codec.decode(stored.data)
        except RecordUnreadable as error:
            self.unreadable(key, stored, error)
            return None

    def unreadable(
        self, key: bytes, stored: Stored | StoredRecord, error: RecordUnreadable
    ) -> None:
        """Count a record that cannot be read, and log it the first time: why,
        as a warning; its bytes only at level debug (a record's contents are
        the player's, not for the everyday log)."""
        self.stats.unreadable += 1
        if (key, stored.version) in self._logged:
            return
        if len(self._logged) >= _LOGGED_MAX:
            self._logged.clear()
        self._logged.add((key, stored.version))
        fields = {
            "slab": self.name,
            "player": key[:4].hex(),
            "event": "unreadable",
            "version": stored.version,
        }
        _log.warn(
            "slab {slab}: the record of player {player} cannot be read ({error});"
            " it is kept as it is, version {version}",
            error=str(error),
            **fields,
        )
        _log.debug(
            "slab {slab}: the unreadable record of player {player}, version"
            " {version}, is bytes {data}",
            data=stored.data.hex(),
            **fields,
        )

    async def records(self, page_size: int = 256) -> AsyncIterator[tuple[bytes, R]]:
        """Every live record with its player's key, without touching them.

        For pages and tasks that read across players (a hall of fame, a census),
        on any store: ``async for key, record in slab.records(): ...``. Records
        are decoded afresh, so changing them changes nothing stored; one that
        cannot be read is skipped (and logged once). Between slices of
        :data:`SLICE` records the reactor serves other requests, so reading a
        large slab never stalls the capsule; a small one is read at once.
        """
        opened = self.opened
        cursor: str | None = None
        read = 0
        while True:
            page = opened.store.records(cursor, page_size)
            result = await page
            for found in result.records:
                record = self.decoded(found.key, found)
                if record is not None:
                    yield found.key, record
            read += len(result.records)
            cursor = result.cursor
            if cursor is None:
                return
            if read >= SLICE:
                read = 0
                await deferLater(opened.clock, 0, lambda: None)

    def records_now(self) -> Iterator[tuple[bytes, R]]:
        """As :meth:`records`, at once, on a store in this process (the memory
        store); TypeError on another."""
        store = self._immediate()
        cursor: str | None = None
        while True:
            page = store.records_now(cursor)
            for found in page.records:
                record = self.decoded(found.key, found)
                if record is not None:
                    yield found.key, record
            cursor = page.cursor
            if cursor is None:
                return

    def peek(self, key: bytes) -> Deferred[R | None]:
        """One player's record, or None, without touching it, on any store."""
        return self.opened.store.peek(key).addCallback(self._decoded_or_none, key)

    def _decoded_or_none(self, stored: Stored | None, key: bytes) -> R | None:
        return None if stored is None else self.decoded(key, stored)

    def peek_now(self, key: bytes) -> R | None:
        """As :meth:`peek`, at once, on a store in this process."""
        return self._decoded_or_none(self._immediate().peek_now(key), key)

    def _immediate(self) -> IImmediateSessionStore:
        opened = self.opened
        if opened.immediate is None:
            raise TypeError(
                f"slab {self.name!r} is kept outside this process: use"
                f" slab.records() and slab.peek(), which wait for it"
            )
        return opened.immediate


def check_same(slab: Slab[Any], **settings: Any) -> None:
    """ConfigError unless ``settings`` say nothing other than ``slab``'s own."""
    if slab.implicit:
        # session_route(record=...) came first and asked for nothing.
        slab.declare(**settings)
        return
    if slab._same(**settings):
        return
    name = settings.pop("name", None)
    mine = _settings({"layout": slab.layout, **slab._settings})
    theirs = _settings(settings)
    if name is not None and name != slab.name:
        mine, theirs = f"name={slab.name!r}, {mine}", f"name={name!r}, {theirs}"
    raise ConfigError(
        f"slab {slab.name!r} is declared twice with different settings"
        f" ({mine} and {theirs}): declare it once, with app.slab(), and pass"
        f" only record= to session_route"
    )


def _settings(settings: dict[str, Any]) -> str:
    given = [f"{k}={v!r}" for k, v in settings.items() if v is not None]
    return ", ".join(given) or "launcher defaults"
