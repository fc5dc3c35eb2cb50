"""The Redis store on a real Valkey Cluster: three primaries, three replicas.

redis.asyncio runs on asyncio, so these tests need Twisted's asyncio reactor,
which a process chooses once: the tests marked ``asyncio_reactor`` (these, and
the store contract's ``cluster`` kind) run in a pytest of their own on that
reactor, started by the first test here (``python -m tests.asyncio_pytest -m
asyncio_reactor tests/stores`` runs them by hand); the rest of the suite, on
the default reactor, leaves them out (``tests/stores/conftest.py``).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.task import Clock, deferLater
from twisted.internet.threads import deferToThread

from jetforce_sesh import ConfigError, RedisStores, StoreUnavailable, StoreUnsure
from jetforce_sesh.cli.reactor import needs_asyncio, store_url
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores import ABSENT, RedisStore, Stored, StoreSpec
from jetforce_sesh.stores.contract import Conflict
from jetforce_sesh.stores.redis.cluster import REACTOR_HINT
from jetforce_sesh.testing import START, fingerprint_of
from tests.redis_support import Cluster, RedisServer
from tests.stores.conftest import LEFT_TO_ASYNCIO
from tests.stores.contract_support import ASYNCIO
from tests.support import REPO


def wait(deferred: Any) -> Any:
    return pytest_twisted.blockon(deferred)


def store_on(url: str, slab: str = "slab", **settings: Any) -> RedisStore:
    clock = Clock()
    clock.advance(START)
    stores = RedisStores(
        url, prefix=f"cluster-{uuid.uuid4().hex[:6]}", reactor=reactor, **settings
    )
    return stores(StoreSpec(slab, SlabOptions(record_size=16), clock, 16, "raw"))


def test_the_cluster_tests_pass_on_the_asyncio_reactor(
    request: pytest.FixtureRequest,
) -> None:
    """Every test marked ``asyncio_reactor`` under tests/stores, in a pytest on
    the asyncio reactor: all pass, none is skipped."""
    left = request.config.stash.get(LEFT_TO_ASYNCIO, 0)
    ran = subprocess.run(
        [
            *(sys.executable, "-m", "tests.asyncio_pytest", "-q", "-p", "no:randomly"),
            *("-m", "asyncio_reactor", "tests/stores"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = ran.stdout.strip().splitlines()[-1] if ran.stdout.strip() else ""
    assert 0 == ran.returncode, ran.stdout[-6000:] + ran.stderr[-3000:]
    found = re.fullmatch(
        r"(\d+) passed, (\d+) deselected in [\d.]+s(?: \(.*\))?", summary
    )
    assert found is not None, summary
    # The whole tests/stores was collected there, so at least what this run
    # left out (this run may have collected less of it).
    assert int(found.group(1)) >= max(left, 1), (summary, left)


@pytest.mark.parametrize(
    "argv, url",
    [
        ([], None),
        (["--store", "redis+cluster://h:1"], "redis+cluster://h:1"),
        (["--store=redis+cluster://h"], "redis+cluster://h"),
        (["--store", "memory", "--store", "redis://h"], "redis://h"),
        (["--", "--store", "redis+cluster://h"], None),
        (["--store-prefix", "redis+cluster://h"], None),
        (["--store"], None),
    ],
)
def test_the_launcher_reads_the_store_before_it_imports_jetforce(
    argv: list[str], url: str | None
) -> None:
    assert url == store_url(argv)
    assert (url is not None and url.startswith("redis+cluster:")) == needs_asyncio(argv)


def test_the_launcher_installs_the_asyncio_reactor_only_for_a_cluster() -> None:
    """Checked in fresh interpreters, as the command line starts them: a
    cluster --store gets the asyncio reactor; any other, the default one."""
    code = (
        "import jetforce_sesh.cli.main\n"
        "from twisted.internet import reactor\n"
        "print(type(reactor).__name__)\n"
    )
    reactors = [
        subprocess.run(
            [sys.executable, "-c", code, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for args in (
            ("--store", "redis+cluster://127.0.0.1:7000"),
            ("--store", "redis://127.0.0.1"),
            (),
        )
    ]
    assert ["AsyncioSelectorReactor", "EPollReactor", "EPollReactor"] == reactors


def test_a_cluster_store_on_another_reactor_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """This process runs the default reactor: the launcher's start-up check
    and the store's own open both say what to do."""
    from jetforce_sesh.cli.main import main

    url = "redis+cluster://127.0.0.1:7000"
    with pytest.raises(SystemExit) as raised:
        main(
            ["--app", "jetforce_sesh.games.counter:app", "--port", "0", "--store", url]
        )
    assert 2 == raised.value.code
    shown = "redis+cluster://127.0.0.1:7000/"
    assert f"jetforce-sesh: error: --store {shown}: {REACTOR_HINT}\n" == (
        capsys.readouterr().err
    )
    with pytest.raises(ConfigError) as refused:
        wait(store_on(url).open())
    assert f"--store {shown}: {REACTOR_HINT}" == str(refused.value)


# -- on the asyncio reactor ----------------------------------------------------


@ASYNCIO
def test_a_server_that_is_not_a_cluster_or_no_node_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    single = RedisServer(tmp_path)
    single.start()
    try:
        url = f"redis+cluster://127.0.0.1:{single.port}"
        with pytest.raises(ConfigError) as refused:
            wait(store_on(url).open())
        assert (
            f"Redis at {url}/ is not a cluster (cluster support disabled): give a"
            f" single server as redis://host:port"
        ) == str(refused.value)
    finally:
        single.kill()
    with pytest.raises(StoreUnavailable) as away:
        wait(store_on(url).open())
    said = str(away.value)
    assert said.startswith(f"the cluster at {url}/ could not be reached (")
    assert said.endswith("): start it, or check --store")


@ASYNCIO
def test_slabs_spread_over_the_primaries_each_in_one_slot(
    redis_cluster: Cluster,
) -> None:
    """Every key of a slab is in its slab's slot, on one primary; slabs with
    other names land on other primaries."""
    stores = [store_on(redis_cluster.url, slab=f"slab-{n}") for n in range(12)]
    for store in stores:
        wait(store.open())
        wait(store.save(fingerprint_of(store.name), b"kept", ABSENT))
    owners = set()
    for store in stores:
        owner = redis_cluster.owner(f"{store.base}used")
        keys = owner.client().keys(f"{store.base}*")
        assert {
            f"{store.base}{k}".encode() for k in ("used", "keys", "seq", "meta")
        } | {f"{store.base}r:{fingerprint_of(store.name).hex()}".encode()} == set(keys)
        owners.add(owner.port)
    assert 3 == len(owners)
    for store in stores:
        wait(store.close())


def pause(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


@ASYNCIO
def test_a_save_waits_for_the_replica_of_the_primary_that_ran_it(
    redis_cluster: Cluster,
) -> None:
    """--store-wait-replicas 1: WAIT goes to the primary of the slab's slot,
    on the connection that wrote. With that primary's replica stalled, the
    save is answered unsure (a WAIT sent to any other node would have said
    1); with another primary's replica stalled instead, it is confirmed."""
    store = store_on(redis_cluster.url, wait_replicas=1, wait_timeout=100)
    wait(store.open())
    primary = redis_cluster.owner(f"{store.base}used")
    own = redis_cluster.replica_of(primary)
    [other] = [
        redis_cluster.replica_of(p)
        for p in redis_cluster.primaries()
        if p is not primary
    ][:1]
    version = wait(store.save(fingerprint_of("a"), b"first", ABSENT))
    for stalled, confirmed in ((own, False), (other, True)):
        assert stalled.process is not None
        os.kill(stalled.process.pid, signal.SIGSTOP)
        try:
            saving = store.save(fingerprint_of("a"), b"again", version)
            if confirmed:
                version = wait(saving)
            else:
                with pytest.raises(StoreUnsure) as unsure:
                    wait(saving)
                assert (
                    f"Redis at {redis_cluster.url}: 0 of the 1 replicas asked for"
                    f" confirmed the write within 100 ms"
                ) == str(unsure.value)
                version = wait(store.load(fingerprint_of("a"))).version
        finally:
            os.kill(stalled.process.pid, signal.SIGCONT)
    assert Stored(b"again", version) == wait(store.load(fingerprint_of("a")))
    wait(store.close())


async def served_again(players: list[Player]) -> None:
    """Each player's record holds the count of their last save answered, or
    of a save answered unsure after it; and it takes one more save."""
    for player in players:
        stored = await player.store.load(player.key)
        assert stored is not None
        kept = [at for at, (step, _) in enumerate(player.steps) if step == "saved"]
        assert kept, player.steps[-5:]
        allowed = {player.steps[kept[-1]][1]} | {
            count for step, count in player.steps[kept[-1] :] if step == "unsure"
        }
        assert int(stored.data) in allowed, player.steps[-5:]
        await player.store.save(player.key, b"again", stored.version)


class Player:
    """Loads, adds one, saves, again and again, keeping what each step was
    answered; checks that no answered save is lost or made twice."""

    def __init__(self, store: RedisStore, name: str) -> None:
        self.store = store
        self.key = fingerprint_of(name)
        self.steps: list[tuple[str, int]] = []
        #: When each load was answered, and when each was refused.
        self.served: list[float] = []
        self.refused: list[float] = []
        self.broken: list[str] = []

    async def play(self, until: list[bool]) -> None:
        expected: set[int] = {0}  # what the next load may find
        #: The count and version stored, when this player knows them: a load
        #: refused, it saves on them all the same, so saves meet every step
        #: of a move (not only the loads before them).
        known: tuple[int, int] | None = None
        while not until:
            try:
                stored = await self.store.load(self.key)
            except StoreUnavailable:
                self.steps.append(("load refused", 0))
                self.refused.append(time.monotonic())
                if known is None:
                    await pause(0.01)
                    continue
            else:
                self.served.append(time.monotonic())
                count = 0 if stored is None else int(stored.data)
                if count not in expected:
                    self.broken.append(f"loaded {count}, expected one of {expected}")
                known = (count, ABSENT if stored is None else stored.version)
            count, version = known
            try:
                saved = await self.store.save(self.key, b"%d" % (count + 1), version)
                self.steps.append(("saved", count + 1))
                expected, known = {count + 1}, (count + 1, saved)
            except StoreUnsure:
                self.steps.append(("unsure", count + 1))
                expected, known = {count, count + 1}, None
            except StoreUnavailable:
                self.steps.append(("not kept", count + 1))
                expected = {count}
                await pause(0.01)
            except Conflict:
                self.broken.append("conflict: no one else saves this record")
                return


async def play_while(
    players: list[Player], action: Callable[[], Deferred[None]]
) -> None:
    """Every player plays while ``action`` runs, from a little before it
    starts until a little after it ends."""
    until: list[bool] = []
    playing = gatherResults([Deferred.fromCoroutine(p.play(until)) for p in players])
    try:
        await pause(0.3)
        await action()
        await pause(0.5)
    finally:
        until.append(True)
        await playing


@ASYNCIO
@pytest.mark.parametrize("wait_replicas", [0, 1])
@pytest_twisted.ensureDeferred
async def test_a_reshard_while_saving_keeps_every_answered_save(
    redis_cluster: Cluster, wait_replicas: int
) -> None:
    """The slab's slot moves to another primary (marked migrating, its keys
    moved ten at a time, then given to the new owner) while eight players
    save without pause: every save answered is in its record at the next
    load, no save answered 41 "nothing kept" is, and none is made twice.
    While the slot is moving, the slab's scripts get 41; once it moved, the
    client follows the MOVED and the players are served again."""
    store = store_on(redis_cluster.url, wait_replicas=wait_replicas)
    await store.open()
    players = [Player(store, f"reshard {n}") for n in range(8)]
    slot = (
        redis_cluster.live()[0]
        .client()
        .execute_command("CLUSTER", "KEYSLOT", f"{store.base}used")
    )
    source = redis_cluster.owner(f"{store.base}used")
    target = next(p for p in redis_cluster.primaries() if p is not source)
    await play_while(
        players,
        lambda: deferToThread(redis_cluster.move_slot, slot, source, target, 0.2, 3),
    )
    assert target is redis_cluster.owner(f"{store.base}used")
    assert [] == [broken for p in players for broken in p.broken]
    outcomes = [step for p in players for step, _ in p.steps]
    assert outcomes.count("not kept") > 0, "no save met the moving slot"
    await served_again(players)
    await store.close()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A cluster of the test's own, for a test that kills a node."""
    cluster = Cluster(tmp_path)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@ASYNCIO
@pytest_twisted.ensureDeferred
async def test_a_primary_killed_while_saving_loses_no_save_a_replica_confirmed(
    own_cluster: Cluster,
) -> None:
    """--store-wait-replicas 1: the slab's primary is killed with -9 while
    players save; its replica takes over about 1 s later, and loads are
    served again. With no replica left the saves are answered unsure, until
    the killed node comes back as the new primary's replica: then saves are
    confirmed again. Every save answered was in the record at the next load."""
    store = store_on(own_cluster.url, wait_replicas=1, wait_timeout=500)
    await store.open()
    players = [Player(store, f"killed {n}") for n in range(6)]
    primary = own_cluster.owner(f"{store.base}used")
    replica = own_cluster.replica_of(primary)
    times: dict[str, float] = {}

    async def fail_over() -> None:
        times["killed"] = time.monotonic()
        primary.kill()
        while own_cluster.owner(f"{store.base}used") is not replica:
            await pause(0.05)
        times["promoted"] = time.monotonic()
        await pause(1.0)
        await deferToThread(primary.start)
        await deferToThread(own_cluster.settle)
        times["back"] = time.monotonic()

    await play_while(players, lambda: Deferred.fromCoroutine(fail_over()))
    assert [] == [broken for p in players for broken in p.broken]
    steps = [step for p in players for step, _ in p.steps]
    await served_again(players)
    promoted = times["promoted"] - times["killed"]
    first_refused = min(t for p in players for t in p.refused)
    served = min(t for p in players for t in p.served if t > first_refused)
    print(
        f"promoted {promoted:.2f} s after the kill, loads served again after"
        f" {served - times['killed']:.2f} s, the node back after"
        f" {times['back'] - times['killed']:.2f} s;"
        f" {', '.join(f'{steps.count(s)} {s}' for s in sorted(set(steps)))}"
    )
    assert promoted < 6 and served < times["back"]
    await store.close()


@ASYNCIO
def test_keys_in_the_0_2_layout_on_a_cluster_stop_the_start_in_one_line(
    redis_cluster: Cluster,
) -> None:
    """0.2 never ran on a cluster (its keys of one slab span hash slots, so no
    script can move them whole): keys in that layout there are refused."""
    store = store_on(redis_cluster.url)
    old_meta = f"{store.prefix}:slab:meta"
    redis_cluster.owner(old_meta).client().hset(old_meta, "kind", "x")
    with pytest.raises(ConfigError) as refused:
        wait(store.open())
    assert (
        f"the cluster at {redis_cluster.url} holds keys of slab 'slab' in"
        f" jetforce-sesh 0.2's layout (under '{store.prefix}:slab:'), which no"
        f" release wrote to a cluster and no script can move across its hash"
        f" slots: to keep them, start this release once on a single Redis"
        f" holding them, which moves them under '{store.prefix}:{{slab}}:' (one"
        f" hash slot), and copy those keys to the cluster; else delete them, or"
        f" choose another --store-prefix"
    ) == str(refused.value)
    wait(store.close())
