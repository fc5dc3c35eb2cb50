"""The Redis store behind Sentinels, and saves that wait for a replica.

Real ``valkey-server`` processes: a primary, a replica and three Sentinels
(``tests/redis_support.py``). Store time is a ``Clock``; waits for a failover
are on the real reactor, since the Sentinels decide when it happens.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.task import Clock

from jetforce_sesh import RedisStores, StoreUnavailable, StoreUnsure
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores import ABSENT, RedisStore, Stored, StoreSpec
from jetforce_sesh.testing import START, fingerprint_of
from tests.redis_support import RedisServer, Sentinels

A, B = fingerprint_of("sentinel a"), fingerprint_of("sentinel b")


def wait(deferred: Any) -> Any:
    return pytest_twisted.blockon(deferred)


def store_at(url: str, **settings: Any) -> RedisStore:
    clock = Clock()
    clock.advance(START)
    stores = RedisStores(
        url, prefix=f"sentinel-{uuid.uuid4().hex[:6]}", reactor=reactor, **settings
    )
    store = stores(StoreSpec("slab", SlabOptions(record_size=16), clock, 16, "raw"))
    wait(store.open())
    return store


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    made = Sentinels(tmp_path)
    try:
        made.start()
        yield made
    finally:
        made.stop()


def test_a_failover_ends_with_saves_served_again_within_seconds(
    sentinels: Sentinels,
) -> None:
    """The primary is killed; the Sentinels promote the replica; the store,
    asking them after every lost connection, serves again a few seconds after
    the kill, with the records the replica had and versions above those
    given before."""
    store = store_at(sentinels.url)
    version = wait(store.save(A, b"before", ABSENT))
    assert 1 == sentinels.primary.client().wait(1, 1000)
    killed = time.monotonic()
    sentinels.primary.kill()
    failed = 0
    while True:
        assert time.monotonic() - killed < 15, "never served again"
        try:
            stored = wait(store.load(A))
            break
        except StoreUnavailable:
            failed += 1
            wait(task.deferLater(reactor, 0.05, lambda: None))
    back = time.monotonic() - killed
    assert sentinels.replica.port == sentinels.primary_port()
    assert Stored(b"before", version) == stored
    assert wait(store.save(A, b"after", version)) > version
    print(f"served again {back:.2f} s after the kill, {failed} loads refused")
    assert failed > 0 and back < 6, (failed, back)
    wait(store.close())


def test_a_save_no_replica_confirms_is_answered_unsure(tmp_path: Path) -> None:
    """--store-wait-replicas 1: with the replica stalled, the save (made on
    the primary, not on the replica) fails with StoreUnsure once WAIT's 100 ms
    are up; with the replica back, saves are confirmed and answered."""
    primary = RedisServer(tmp_path / "p", extra=("--repl-diskless-sync-delay", "0"))
    replica = RedisServer(
        tmp_path / "r",
        extra=("--replicaof", "127.0.0.1", str(primary.port)),
    )
    for server in (primary, replica):
        server.directory.mkdir()
        server.start()
    try:
        deadline = time.monotonic() + 10
        while replica.client().info("replication")["master_link_status"] != "up":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        store = store_at(primary.url, wait_replicas=1, wait_timeout=100)
        version = wait(store.save(A, b"confirmed", ABSENT))
        assert replica.process is not None
        os.kill(replica.process.pid, signal.SIGSTOP)
        with pytest.raises(StoreUnsure) as raised:
            wait(store.save(B, b"unsure", ABSENT))
        assert (
            f"Redis at {primary.url}: 0 of the 1"
            f" replicas asked for confirmed the write within 100 ms"
        ) == str(raised.value)
        assert Stored(b"confirmed", version) == wait(store.load(A))  # reads go on
        os.kill(replica.process.pid, signal.SIGCONT)
        assert wait(store.save(A, b"again", version)) > version
        wait(store.close())
    finally:
        for server in (replica, primary):
            if server.process is not None:
                os.kill(server.process.pid, signal.SIGCONT)
            server.kill()
