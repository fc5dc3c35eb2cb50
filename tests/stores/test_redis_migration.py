"""A slab that jetforce-sesh 0.2 kept in Redis, under ``PREFIX:SLAB:`` (no hash
tag), is moved to this release's layout when the store opens, a batch of
records per script: each record whole in one layout or the other at every
moment, so a start cut short loses nothing and the next one goes on.

The old keys are written by 0.2's own scripts: ``redisscripts_0_2.py`` here is
``jetforce_sesh/redisscripts.py`` of commit 44a8de6 (release 0.2), byte for
byte, run as the 0.2 store ran them (every key named from ``ARGV[1]``).
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
import valkey
from twisted.internet import reactor
from twisted.internet.defer import gatherResults
from twisted.internet.task import Clock
from twisted.logger import LogEvent, formatEvent, globalLogPublisher

from jetforce_sesh import ConfigError, RedisStores
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores import RedisStore, Stored, StoreSpec
from jetforce_sesh.stores.redis import scripts
from jetforce_sesh.testing import START, fingerprint_of
from tests.redis_support import RedisServer
from tests.stores import redisscripts_0_2 as old
from tests.support import REPO

#: SHA-256 of 0.2's jetforce_sesh/redisscripts.py (commit 44a8de6).
OLD_SHA256 = "07dbf97c58a195c8dc343c8a4a39b57792b988b274f448c8ba608af1d308b0d2"
IDLE = 3600.0
TTL_MS = round(IDLE * 1000)


def wait(deferred: Any) -> Any:
    return pytest_twisted.blockon(deferred)


def test_the_old_scripts_are_0_2s_byte_for_byte() -> None:
    mine = (REPO / "tests" / "stores" / "redisscripts_0_2.py").read_bytes()
    assert OLD_SHA256 == hashlib.sha256(mine).hexdigest()
    shown = subprocess.run(
        ["git", "show", "44a8de6:jetforce_sesh/redisscripts.py"],
        cwd=REPO,
        capture_output=True,
    )
    if shown.returncode == 0:  # a checkout with its history (else the hash holds)
        assert mine == shown.stdout


class OldStore:
    """What 0.2's RedisStore sent for a slab, through its own scripts."""

    def __init__(self, client: valkey.Valkey, prefix: str, slab: str) -> None:
        self.client = client
        self.base = f"{prefix}:{slab}:"
        self.now = START

    def run(self, script: Any, *args: str | bytes) -> Any:
        common = (self.base, repr(self.now), repr(IDLE), str(TTL_MS))
        return self.client.eval(script.source, 0, *common, *args)

    def claim(self, codec: str = "raw") -> None:
        assert [b"ok", 0] == self.run(old.CLAIM, "jetforce-sesh redis store 1", codec)

    def save(self, key: bytes, data: bytes, expected: int) -> int:
        reply = self.run(old.SAVE, key.hex(), str(expected), data, "100", "0")
        assert b"saved" == reply[0], reply
        return int(reply[2])


def snapshot(client: valkey.Valkey, base: str) -> dict[str, Any]:
    """Everything a slab's keys hold under ``base``, TTLs as expiry times."""
    found: dict[str, Any] = {}
    for key in sorted(client.keys(f"{base}*")):
        name = key.decode().removeprefix(base)
        kind = client.type(key)
        if kind == b"hash":
            value: Any = client.hgetall(key)
        elif kind == b"zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = client.get(key)
        found[name] = (value, client.pexpiretime(key))
    return found


@pytest.fixture
def old_slab(redis_server: RedisServer) -> Iterator[tuple[OldStore, dict[bytes, int]]]:
    """A slab written by 0.2: twelve players, some saved twice, and the
    versions 0.2 gave them."""
    store = OldStore(redis_server.client(), f"old-{uuid.uuid4().hex[:6]}", "visits")
    store.claim()
    versions: dict[bytes, int] = {}
    for n in range(12):
        key = fingerprint_of(f"old {n}")
        versions[key] = store.save(key, b"first %d" % n, 0)
        store.now += 1
    for n in range(0, 12, 3):
        key = fingerprint_of(f"old {n}")
        versions[key] = store.save(key, b"second %d" % n, versions[key])
        store.now += 1
    yield store, versions


def new_store(server: RedisServer, prefix: str, codec: str = "raw") -> RedisStore:
    clock = Clock()
    clock.advance(START + 100)
    options = SlabOptions(record_size=16, idle_timeout=IDLE)
    stores = RedisStores(server.url, prefix=prefix, reactor=reactor)
    return stores(StoreSpec("visits", options, clock, 16, codec))


@pytest.fixture
def logged() -> Iterator[list[str]]:
    """The store's log lines while the test runs."""
    lines: list[str] = []

    def observe(event: LogEvent) -> None:
        if event.get("log_namespace") == "jetforce_sesh.stores.redis.store":
            lines.append(formatEvent(event))

    globalLogPublisher.addObserver(observe)
    yield lines
    globalLogPublisher.removeObserver(observe)


def test_the_script_moves_every_key_with_its_ttl_whole(
    redis_server: RedisServer, old_slab: tuple[OldStore, dict[bytes, int]]
) -> None:
    """Each record's hash, its expiry time, both sorted sets and the version
    counter are under the new names exactly as they were under the old;
    nothing is left under the old; meta names this release and the codec."""
    store, _ = old_slab
    client = store.client
    prefix = store.base.removesuffix(":visits:")
    before = snapshot(client, store.base)
    new = f"{prefix}:{{visits}}:"
    keys = [f"{new}{n}" for n in ("used", "keys", "held", "seq", "meta")]
    keys += [f"{store.base}{n}" for n in ("meta", "used", "keys", "seq")]
    reply = client.eval(
        scripts.MIGRATE.source,
        9,
        *keys,
        repr(START),
        repr(IDLE),
        *("0", "0", "", "test"),
        store.base,
        "raw",
        "1000",
    )
    assert [b"moved", b"12", 12] == reply
    after = snapshot(client, new)
    assert {} == snapshot(client, store.base)
    assert (
        {b"kind": scripts.KIND.encode(), b"codec": b"raw"},
        -1,
    ) == after.pop("meta")
    assert (
        {b"kind": b"jetforce-sesh redis store 1", b"codec": b"raw"},
        -1,
    ) == before.pop("meta")
    assert before == after
    assert 12 == sum(name.startswith("r:") for name in after)
    assert all(
        expiry > 0 for name, (_, expiry) in after.items() if name.startswith("r:")
    )
    # Run again (a second process, a moment later): nothing to do.
    assert [b"none"] == client.eval(
        scripts.MIGRATE.source,
        9,
        *keys,
        repr(START),
        repr(IDLE),
        *("0", "0", "", "test"),
        store.base,
        "raw",
        "1000",
    )


def test_the_store_opening_moves_the_slab_and_serves_every_record_as_it_was(
    redis_server: RedisServer,
    old_slab: tuple[OldStore, dict[bytes, int]],
    logged: list[str],
) -> None:
    """Opened on keys 0.2 wrote, the store moves them (one log line), and
    every record loads with its bytes and the version 0.2 gave it; their
    TTLs are then set for this idle timeout, and a save gets a version above
    every one 0.2 gave."""
    store, versions = old_slab
    prefix = store.base.removesuffix(":visits:")
    new = new_store(redis_server, prefix)
    wait(new.open())
    assert [
        f"moved slab 'visits' from jetforce-sesh 0.2's key layout"
        f" ({store.base!r}) to this release's ('{prefix}:{{visits}}:'): 12 records"
    ] == logged
    for n in range(12):
        key = fingerprint_of(f"old {n}")
        data = b"second %d" % n if n % 3 == 0 else b"first %d" % n
        assert Stored(data, versions[key]) == wait(new.peek(key))
        ttl = store.client.pttl(f"{new.base}r:{key.hex()}")
        assert TTL_MS - 60_000 < ttl <= TTL_MS
    assert 12 == new.stats().in_use
    key = fingerprint_of("old 1")
    assert wait(new.save(key, b"third", versions[key])) > max(versions.values())
    wait(new.close())


def test_two_processes_opening_at_once_move_the_slab_once(
    redis_server: RedisServer,
    old_slab: tuple[OldStore, dict[bytes, int]],
    logged: list[str],
) -> None:
    store, versions = old_slab
    prefix = store.base.removesuffix(":visits:")
    first, second = new_store(redis_server, prefix), new_store(redis_server, prefix)
    wait(gatherResults([first.open(), second.open()]))
    assert 1 == len(logged)
    for key, version in versions.items():
        assert version == wait(first.peek(key)).version
        assert version == wait(second.peek(key)).version
    wait(first.close())
    wait(second.close())


@pytest.mark.parametrize("case", ["codec", "kind", "both"])
def test_a_slab_that_cannot_be_moved_stops_the_start_and_moves_nothing(
    redis_server: RedisServer,
    old_slab: tuple[OldStore, dict[bytes, int]],
    case: str,
) -> None:
    store, _ = old_slab
    client = store.client
    prefix = store.base.removesuffix(":visits:")
    shown = f"Redis at {redis_server.url}"
    codec = "raw"
    if case == "codec":
        codec = "msgpack"
        said = (
            f"{shown} holds slab 'visits' in jetforce-sesh 0.2's layout in raw, not"
            f" msgpack: another capsule uses prefix {prefix!r}; choose another"
            f" --store-prefix"
        )
    elif case == "kind":
        client.hset(f"{store.base}meta", "kind", "someone else")
        said = (
            f"{shown} holds {store.base}meta written by 'someone else', not"
            f" jetforce-sesh 0.2: choose another --store-prefix or database"
        )
    else:
        client.set(f"{prefix}:{{visits}}:seq", "7")
        said = (
            f"{shown} holds slab 'visits' both in jetforce-sesh 0.2's layout (under"
            f" {store.base!r}) and in this release's (under '{prefix}:{{visits}}:'):"
            f" nothing was moved; delete the keys of the one to forget"
        )
    before = snapshot(client, store.base)
    with pytest.raises(ConfigError) as refused:
        wait(new_store(redis_server, prefix, codec).open())
    assert said == str(refused.value)
    assert before == snapshot(client, store.base)


def migrate_once(store: OldStore, batch: int) -> Any:
    """One run of the migration script, as a starting store sends it."""
    prefix = store.base.removesuffix(":visits:")
    new = f"{prefix}:{{visits}}:"
    keys = [f"{new}{n}" for n in ("used", "keys", "held", "seq", "meta")]
    keys += [f"{store.base}{n}" for n in ("meta", "used", "keys", "seq")]
    return store.client.eval(
        scripts.MIGRATE.source,
        9,
        *keys,
        repr(START),
        repr(IDLE),
        *("0", "0", "", "test"),
        store.base,
        "raw",
        str(batch),
    )


def test_a_start_cut_short_between_batches_loses_nothing_and_the_next_ends_it(
    redis_server: RedisServer,
    old_slab: tuple[OldStore, dict[bytes, int]],
    logged: list[str],
) -> None:
    """After one batch of five (the process then killed, or Redis away), five
    records are whole under the new names with their recency, seven whole
    under the old; the next start moves the rest and serves all twelve with
    the versions 0.2 gave them."""
    store, versions = old_slab
    client = store.client
    prefix = store.base.removesuffix(":visits:")
    new = f"{prefix}:{{visits}}:"
    before = snapshot(client, store.base)
    assert [b"more", 5] == migrate_once(store, 5)
    moved, left = snapshot(client, new), snapshot(client, store.base)
    assert 5 == sum(name.startswith("r:") for name in moved)
    assert 7 == sum(name.startswith("r:") for name in left)
    used = dict(moved["used"][0]) | dict(left["used"][0])
    assert dict(before["used"][0]) == used
    for name, (value, expiry) in before.items():
        if name.startswith("r:"):
            assert (value, expiry) == (moved.get(name) or left[name])
    # The slab is not this release's yet: a store must not serve it half moved.
    assert b"visits" in client.hget(f"{new}meta", "from")
    opened = new_store(redis_server, prefix)
    wait(opened.open())
    assert [
        f"moved slab 'visits' from jetforce-sesh 0.2's key layout"
        f" ({store.base!r}) to this release's ('{new}'): 12 records"
    ] == logged
    assert {} == snapshot(client, store.base)
    for key, version in versions.items():
        assert version == wait(opened.peek(key)).version
    wait(opened.close())


def test_a_slab_of_25000_records_is_moved_a_thousand_records_a_script(
    redis_server: RedisServer,
) -> None:
    """26 migration scripts, none moving more than 1000 records; every record
    is then served with its bytes and version."""
    client = redis_server.client()
    store = OldStore(client, f"old-{uuid.uuid4().hex[:6]}", "visits")
    store.claim()
    pipe = client.pipeline(transaction=False)
    common = (store.base, repr(store.now), repr(IDLE), str(TTL_MS))
    for n in range(25_000):
        member = fingerprint_of(f"many {n}").hex()
        pipe.eval(old.SAVE.source, 0, *common, member, "0", b"%d" % n, "30000", "0")
    saved = pipe.execute()
    assert {b"saved"} == {reply[0] for reply in saved}
    prefix = store.base.removesuffix(":visits:")
    opened = new_store(redis_server, prefix)
    replies: list[Any] = []
    run = opened.link.run

    def spy(script: Any, *args: Any) -> Any:
        ran = run(script, *args)
        if script is scripts.MIGRATE:
            ran.addCallback(lambda reply: replies.append(reply) or reply)
        return ran

    opened.link.run = spy  # type: ignore[method-assign]
    wait(opened.open())
    assert [[b"more", 1000]] * 25 + [[b"moved", b"25000", 25_000]] == replies
    assert 25_000 == opened.stats().in_use
    for n in range(0, 25_000, 997):
        key = fingerprint_of(f"many {n}")
        assert Stored(b"%d" % n, int(saved[n][2])) == wait(opened.peek(key))
    wait(opened.close())


def test_a_move_whose_old_meta_was_deleted_half_way_stops_the_start(
    redis_server: RedisServer, old_slab: tuple[OldStore, dict[bytes, int]]
) -> None:
    store, _ = old_slab
    assert [b"more", 5] == migrate_once(store, 5)
    store.client.delete(f"{store.base}meta")
    prefix = store.base.removesuffix(":visits:")
    with pytest.raises(ConfigError) as refused:
        wait(new_store(redis_server, prefix).open())
    assert (
        f"Redis at {redis_server.url} holds slab 'visits' half moved from"
        f" jetforce-sesh 0.2's layout (under {store.base!r}), whose"
        f" {store.base}meta someone deleted before the move ended: put that meta"
        f" back (HSET it kind 'jetforce-sesh redis store 1' codec 'raw') and start"
        f" again, which ends the move"
    ) == str(refused.value)
    store.client.hset(
        f"{store.base}meta",
        mapping={"kind": "jetforce-sesh redis store 1", "codec": "raw"},
    )
    again = new_store(redis_server, prefix)
    wait(again.open())
    assert 12 == again.stats().in_use
    wait(again.close())
