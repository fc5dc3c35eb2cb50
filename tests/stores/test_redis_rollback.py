"""Versions on a Redis that comes back older than it was: restarted from an older
RDB snapshot, from an append-only file that lost its last writes (``everysec``
and a power cut), or a lagging replica promoted. Each time a save naming a
version read before the loss must conflict with a record saved after it, and no
version is given twice.

Real ``valkey-server`` processes, each in a directory of its own; store time is
a ``Clock`` that does not move, so nothing but Redis gives the versions their
order.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from jetforce_sesh import Conflict, RedisStores
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores import ABSENT, RedisStore, Stored, StoreSpec
from jetforce_sesh.testing import START, fingerprint_of
from tests.redis_support import RedisServer

K = fingerprint_of("rollback player")


def wait(deferred: Any) -> Any:
    return pytest_twisted.blockon(deferred)


def open_store(url: str, prefix: str) -> RedisStore:
    """A store as a new process would open it: its own connection and clock."""
    clock = Clock()
    clock.advance(START)
    store = RedisStores(url, prefix=prefix, reactor=reactor)(
        StoreSpec("slab", SlabOptions(record_size=16), clock, 16, "raw")
    )
    wait(store.open())
    return store


def stale_save_conflicts(
    before: RedisStore, mark: Callable[[], object], lose: Callable[[], str], prefix: str
) -> None:
    """Before the loss: "a" is saved, then the point Redis will come back to is
    marked (``lose`` knows it); X saves "b" (its player told 20) and Y reads
    "b". ``lose`` makes Redis forget back to the mark and gives the URL to
    reach it. Z reads and saves "z"; Y's save naming the version it read must
    conflict, and "z" stays."""
    first = wait(before.save(K, b"a", ABSENT))
    mark()
    x_read = wait(before.load(K))
    x_saved = wait(before.save(K, b"b", x_read.version))
    y_read = wait(before.load(K))
    assert Stored(b"b", x_saved) == y_read
    wait(before.close())
    url = lose()
    after = open_store(url, prefix)
    z_read = wait(after.load(K))
    assert Stored(b"a", first) == z_read  # Redis came back older
    z_saved = wait(after.save(K, b"z", z_read.version))
    assert z_saved > x_saved  # never a version given before
    with pytest.raises(Conflict):
        wait(after.save(K, b"b+y", y_read.version))
    assert Stored(b"z", z_saved) == wait(after.peek(K))
    wait(after.close())


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    made: list[RedisServer] = []

    def make(name: str, **options: Any) -> RedisServer:
        server = RedisServer(tmp_path / name, **options)
        server.directory.mkdir()
        made.append(server)
        server.start()
        return server

    yield make
    for server in made:
        server.kill()


def test_a_restart_from_an_older_snapshot_gives_no_version_twice(
    servers: Callable[..., RedisServer],
) -> None:
    redis = servers("rdb")
    prefix = f"rdb-{uuid.uuid4().hex[:6]}"

    def lose() -> str:
        redis.kill()  # a crash: Redis restarts from its last snapshot
        redis.start()
        return redis.url

    mark = redis.client().save
    stale_save_conflicts(open_store(redis.url, prefix), mark, lose, prefix)


def test_an_append_only_file_that_lost_its_last_second_gives_no_version_twice(
    servers: Callable[..., RedisServer], tmp_path: Path
) -> None:
    """With appendfsync everysec, a power cut loses what was written in the
    last second: the files as they were at the mark stand for the disk."""
    redis = servers("aof", keep=True, fsync="everysec")
    prefix = f"aof-{uuid.uuid4().hex[:6]}"
    disk = tmp_path / "disk-at-the-cut"

    def mark() -> None:
        shutil.copytree(redis.directory, disk)

    def lose() -> str:
        redis.kill()
        shutil.rmtree(redis.directory)
        shutil.copytree(disk, redis.directory)
        redis.start()
        return redis.url

    stale_save_conflicts(open_store(redis.url, prefix), mark, lose, prefix)


def test_a_lagging_replica_promoted_gives_no_version_twice(
    servers: Callable[..., RedisServer],
) -> None:
    """The replica stops following the primary at the mark (as one that lags
    when the primary dies), and is promoted once the primary is killed."""
    primary = servers("primary", extra=("--repl-diskless-sync-delay", "0"))
    replica = servers("replica", extra=("--replicaof", "127.0.0.1", str(primary.port)))
    prefix = f"replica-{uuid.uuid4().hex[:6]}"

    def mark() -> None:
        assert 1 == primary.client().wait(1, 5000)  # the replica has "a"
        replica.client().execute_command("REPLICAOF", "NO", "ONE")

    def lose() -> str:
        primary.kill()
        return replica.url

    deadline = time.monotonic() + 10
    while replica.client().info("replication")["master_link_status"] != "up":
        assert time.monotonic() < deadline, "the replica never synced"
        time.sleep(0.05)
    stale_save_conflicts(open_store(primary.url, prefix), mark, lose, prefix)
