"""The SQLite store against the memory store's model: it answers as the model
does, and after every step its file holds exactly the records it does.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule
from twisted.internet.task import Clock

from jetforce_sesh.options import OnFull, SlabOptions
from jetforce_sesh.stores.contract import StoreSpec
from jetforce_sesh.stores.sqlite.store import SQLiteStore, SQLiteStores
from jetforce_sesh.testing import START
from tests.stores.sqlite_support import NAME, done, rows_of
from tests.stores.test_memory import (
    MemoryStoreAgainstModel,
    all_records,
)

#: How often an open store with an ``idle_timeout`` of 10 s sweeps by itself.
SWEEP_EVERY = 5.0


class SQLiteStoreAgainstModel(MemoryStoreAgainstModel):
    """The memory store's state machine, on a persistent store: it answers as
    the model does, hooks that write to it included, and after every step the
    file holds exactly the records the store does, each at its version."""

    def new_store(  # type: ignore[override]
        self, capacity: int, on_full: OnFull
    ) -> tuple[SQLiteStore, Clock]:
        self.state = Path(tempfile.mkdtemp(prefix="jetforce-sesh-machine-"))
        clock = Clock()
        clock.advance(START)
        self.stores = SQLiteStores(self.state / "state")
        options = SlabOptions(
            max_records=capacity, record_size=8, idle_timeout=10, on_full=on_full
        )
        self.persistent = self.stores(StoreSpec(NAME, options, clock, 8, "raw"))
        done(self.persistent.open())
        self.next_sweep = clock.seconds() + SWEEP_EVERY
        return self.persistent, clock

    @rule(seconds=st.sampled_from([0.5, 1, 4, 9.75, 10, 12]))
    def wait(self, seconds: float) -> None:
        """Time passes; the store's own sweep runs every ``SWEEP_EVERY``
        seconds (an open store sweeps by itself), and the model's with it."""
        end = self.clock.seconds() + seconds
        while self.next_sweep <= end:
            self.clock.advance(self.next_sweep - self.clock.seconds())
            self.model.sweep()
            self.clock.advance(0)
            self.next_sweep += SWEEP_EVERY
        self.clock.advance(end - self.clock.seconds())

    @rule()
    def sweep(self) -> None:
        assert self.model.sweep() == self.store.sweep()
        # The rows of swept records are deleted, and their hooks told, on the
        # next turn of the reactor.
        self.clock.advance(0)

    @invariant()
    def the_file_holds_what_the_store_does(self) -> None:
        self.clock.advance(0)
        live = {r.key: (r.data, r.version) for r in all_records(self.store)}
        on_disk = {
            k: (data, v) for k, (data, v, _) in rows_of(self.persistent.path).items()
        }
        assert live == {k: on_disk.get(k) for k in live}
        # Beyond those, only records gone idle that nothing has let go yet.
        records = self.model.records
        assert all(
            k in records and self.model.idle(records[k])
            for k in on_disk.keys() - live.keys()
        ), on_disk.keys() - live.keys()

    def teardown(self) -> None:
        done(self.persistent.close())
        self.stores.directory.release()
        shutil.rmtree(self.state, ignore_errors=True)


TestSQLiteStoreAgainstModel = SQLiteStoreAgainstModel.TestCase
TestSQLiteStoreAgainstModel.settings = settings(max_examples=100, deadline=None)


def test_a_record_an_expire_hook_saves_again_stays_in_the_file() -> None:
    """The example the state machine above found: a visit finds a record
    idle, its expire hook saves it again, and that save wrote the record, then
    deleted it with the expiry it owed the file, in one transaction."""
    machine = SQLiteStoreAgainstModel()
    try:
        machine.make(capacity=2, on_full="evict", hooks=[("expired", "save", None, 0)])
        machine.wait(0.5)
        machine.save(bytes(32), b"", "absent", 1)
        machine.wait(10)
        machine.load(bytes(32))
        machine.the_file_holds_what_the_store_does()
    finally:
        machine.teardown()
