"""The Redis store under real processes: two servers sharing one Redis over real
TLS, and a Redis that stops answering, is killed and comes back.

Every server is ``python -m jetforce_sesh --store redis://...`` on port 0; the
Redis is a real ``valkey-server`` (see ``tests/redis_support.py``).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jetforce_sesh.session.answers import UNAVAILABLE
from tests.e2e.test_games_words import BinarySearch, choose_name, section
from tests.redis_support import Cluster, RedisServer, Sentinels
from tests.support import REPO, ClientCert, MakeCert, Reply, Server, visit_count

pytestmark = pytest.mark.e2e

#: The demo capsule: the visit counter and the games.
APP = "jetforce_sesh:app"
#: A player's request answered 41 must be answered within this many seconds.
PROMPT = 2.0


def start(redis: RedisServer, prefix: str) -> Server:
    return Server(
        [
            *("--app", APP, "--store", redis.url, "--store-prefix", prefix),
            # One player's 400 requests may all wait for their turn.
            *("--max-queued", "400"),
        ],
        drain=True,
    )


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[tuple[Server, Server]]:
    """Two processes of one capsule on one Redis, as behind a load balancer."""
    first = start(redis_server, "e2e-pair")
    try:
        second = start(redis_server, "e2e-pair")
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


#: What an ACL user needs to run the store: the how-to gives the same list.
ACL_COMMANDS = (
    "+evalsha +eval +select +hmget +hget +hset +zadd +zrem +zcard +zrange"
    " +zrangebylex +zscore +del +get +set +time +pexpire +persist +type +exists"
    " +wait +role +rename"
)


def test_an_acl_user_limited_to_the_prefix_and_the_stores_commands_serves(
    redis_server: RedisServer, make_cert: MakeCert, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The how-to's ACL line is enough, and the password comes from the
    environment, not the command line."""
    howto = (REPO / "docs" / "howto" / "several-processes.md").read_text()
    assert f"~jetforce-sesh:* {ACL_COMMANDS}\n" in howto
    prefix = "acl-test"
    redis_server.client().execute_command(
        "ACL",
        "SETUSER",
        "capsule",
        "on",
        ">from-env",
        f"~{prefix}:*",
        *ACL_COMMANDS.split(),
    )
    monkeypatch.setenv("JETFORCE_SESH_REDIS_PASSWORD", "from-env")
    server = Server(
        [
            *("--app", APP, "--idle-timeout", "60", "--store-prefix", prefix),
            *("--store", f"redis://capsule@127.0.0.1:{redis_server.port}/0"),
        ]
    )
    try:
        shown = f"redis://127.0.0.1:{redis_server.port}/0"  # no password
        assert (
            f"Records are kept in Redis at {shown} under 'acl-test': every process"
            f" given this --store shares them.\n"
        ) in server.output
        # Nothing is reserved in this process for the records.
        [total] = [line for line in server.output if line.startswith("In all: ")]
        assert total.endswith(" records.\n")
        player = make_cert("redis-acl")
        assert [1, 2] == [visit_count(server.request("/counter", player)) for _ in "ab"]
    finally:
        server.stop()


def visit_until_kept(server: Server, player: ClientCert) -> tuple[int, int]:
    """A player who is told 40 "try again" tries again: the visit number they
    finally get, and how many tries it took."""
    for tries in range(1, 100):
        reply = server.request("/counter", player)
        if reply.status != 40:
            return visit_count(reply), tries
    raise AssertionError("a visit was refused 99 times")


def test_400_concurrent_visits_split_across_two_processes_all_count(
    pair: tuple[Server, Server], make_cert: MakeCert
) -> None:
    """No lost update across processes: each visit gets its own number, from 1
    to 400, and the next visit (to either process) is the 401st. (Some visits
    meet the other process's save three times and are told 40 "try again";
    their player tries again, as a person would.)"""
    player = make_cert("redis-many")
    with ThreadPoolExecutor(max_workers=32) as pool:
        visits = list(
            pool.map(lambda n: visit_until_kept(pair[n % 2], player), range(400))
        )
    assert list(range(1, 401)) == sorted(number for number, _ in visits)
    assert (401, 1) == visit_until_kept(pair[1], player)
    assert all(server.process.poll() is None for server in pair)


def test_games_played_across_both_processes_rank_in_the_hall_of_fame(
    pair: tuple[Server, Server], make_cert: MakeCert
) -> None:
    """Number guessing, each guess sent to the other process than the last (at
    the prompt the page of the other process linked: the secret the links are
    made under is the capsule's, in the store); the name given to one process
    and the games won through both are ranked by the hall of fame, which reads
    every player's record through the store."""
    cert = make_cert("redis-fame")
    assert 20 == choose_name(pair[0], cert, "Ada").status
    tries = 0
    for game in range(5):  # ranked from five games on
        player = BinarySearch(pair[game % 2], cert)
        while not player.done:
            player.server = pair[(game + player.tries) % 2]
            player.step()
        tries += player.tries
        player.server = pair[1 - game % 2]
        player.play_again()
    lines = pair[1].request("/halloffame", cert).body.splitlines()
    assert section(lines, "## Number guessing: fewest tries per game") == [
        f"* 1. Ada (you): {tries / 5:.1f} tries a game over 5 games"
    ]


def answered_promptly(server: Server, player: ClientCert) -> Reply:
    began = time.monotonic()
    reply = server.request("/counter", player)
    assert time.monotonic() - began < PROMPT
    return reply


def test_a_redis_that_stalls_then_dies_gets_41s_and_the_counts_go_on(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    """Stalled (SIGSTOP) or killed (SIGKILL), Redis costs the players 41s within
    2 s and never the server; once Redis is back (with its append-only file),
    the counts go on from where they were."""
    redis = RedisServer(tmp_path, keep=True)
    redis.start()
    server = start(redis, "e2e-crash")
    player = make_cert("redis-crash")
    try:
        assert [1, 2, 3] == [
            visit_count(server.request("/counter", player)) for _ in range(3)
        ]
        assert redis.process is not None
        os.kill(redis.process.pid, signal.SIGSTOP)
        try:
            stalled = answered_promptly(server, player)
        finally:
            os.kill(redis.process.pid, signal.SIGCONT)
        assert (41, UNAVAILABLE.meta) == (stalled.status, stalled.meta)
        redis.kill()
        down = [answered_promptly(server, player) for _ in range(3)]
        assert [(41, UNAVAILABLE.meta)] * 3 == [(r.status, r.meta) for r in down]
        redis.start()
        deadline = time.monotonic() + 10
        while (reply := answered_promptly(server, player)).status == 41:
            assert time.monotonic() < deadline, "the server never reconnected"
            time.sleep(0.1)
        assert [4, 5] == [
            visit_count(reply),
            visit_count(server.request("/counter", player)),
        ]
        assert server.process.poll() is None
    finally:
        output = server.stop()
        redis.stop()
    assert "Traceback" not in output


class Player:
    """One player visiting the counter over and over, keeping every count a
    ``20`` told them, until told to stop."""

    def __init__(self, server: Server, cert: ClientCert) -> None:
        self.server = server
        self.cert = cert
        self.told: list[int] = []
        self.other: list[int] = []

    def play(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                reply = self.server.request("/counter", self.cert)
            except OSError:
                self.other.append(0)
                continue
            if reply.status == 20:
                self.told.append(visit_count(reply))
            else:
                self.other.append(reply.status)

    def lost(self) -> list[int]:
        """Counts a 20 promised that are not in the record now: a count told
        twice (the save of the first was lost), or above what is stored."""
        stored = visit_count(self.server.request("/counter", self.cert)) - 1
        repeated = [n for n, m in zip(self.told, self.told[1:], strict=False) if m <= n]
        return repeated + [n for n in self.told if n > stored]


def under_load(
    url: str,
    make_cert: MakeCert,
    args: tuple[str, ...],
    fail: Callable[[], None],
) -> list[int]:
    """Six players visiting without pause while ``fail`` makes the Sentinels
    (or the cluster) fail over; back once 50 more visits were answered 20
    (within 10 s of the end of ``fail``: no crash, no restart). The counts
    told and lost."""
    server = Server(
        [*("--app", APP, "--store", url, "--store-prefix", "failover"), *args],
        drain=True,
    )
    players = [Player(server, make_cert(f"failover-{n}")) for n in range(6)]
    stop = threading.Event()
    threads = [threading.Thread(target=p.play, args=(stop,)) for p in players]
    try:
        for thread in threads:
            thread.start()
        time.sleep(1)
        fail()
        failed = time.monotonic()
        before = sum(len(p.told) for p in players)
        while sum(len(p.told) for p in players) < before + 50:
            assert time.monotonic() - failed < 10, "players were not served again"
            time.sleep(0.05)
        stop.set()
        for thread in threads:
            thread.join()
        assert server.process.poll() is None
        assert all(p.told for p in players)
        return [n for p in players for n in p.lost()]
    finally:
        stop.set()
        output = server.stop()
        assert "Traceback" not in output


def test_a_primary_killed_under_load_loses_no_save_a_player_was_told_of(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    """--store-wait-replicas 1: the primary is killed while players visit; the
    Sentinels promote the replica that has the most (so every save a replica
    confirmed); every count a 20 told a player is in their record afterwards.
    The other replica then follows the new primary and confirms saves again."""
    sentinels = Sentinels(tmp_path, replicas=2)
    sentinels.start()
    try:
        lost = under_load(
            sentinels.url,
            make_cert,
            ("--store-wait-replicas", "1"),
            sentinels.primary.kill,
        )
        assert [] == lost
    finally:
        sentinels.stop()


def test_without_the_wait_a_planned_failover_loses_saves_players_were_told_of(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    """What the explanation warns of: SENTINEL FAILOVER promotes the replica
    while the old primary goes on taking saves (and answering 20) until it is
    demoted; killed 1.5 s after the switch, the saves it took meanwhile are
    gone, and players meet counts they were told before."""
    sentinels = Sentinels(tmp_path, replicas=1)
    sentinels.start()

    def planned() -> None:
        sentinels.sentinels[0].client().execute_command(
            "SENTINEL", "FAILOVER", Sentinels.SERVICE
        )
        deadline = time.monotonic() + 15
        while sentinels.primary_port() == sentinels.primary.port:
            assert time.monotonic() < deadline, "the Sentinels never switched"
            time.sleep(0.05)
        time.sleep(1.5)
        sentinels.primary.kill()

    try:
        assert under_load(sentinels.url, make_cert, (), planned), "blind: nothing lost"
    finally:
        sentinels.stop()


def test_two_processes_on_a_cluster_share_the_players(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    """Two capsule processes on a three-primary cluster: the launcher starts
    each on the asyncio reactor, the banner names the cluster, and a player's
    visits, sent to one process then the other, count on from one another."""
    cluster = Cluster(tmp_path)
    cluster.start()
    servers: list[Server] = []
    try:
        for _ in range(2):
            servers.append(
                Server(
                    [*("--app", APP, "--store", cluster.url), "--store-prefix", "two"]
                )
            )
        assert (
            f"Records are kept in Redis at {cluster.url} under 'two': every process"
            f" given this --store shares them.\n"
        ) in servers[0].output
        player = make_cert("cluster-two")
        counts = [
            visit_count(servers[n % 2].request("/counter", player)) for n in range(6)
        ]
        assert [1, 2, 3, 4, 5, 6] == counts
        owner = cluster.owner("two:{visits}:used")
        assert owner.client().exists(f"two:{{visits}}:r:{player.fingerprint.hex()}")
    finally:
        for server in servers:
            assert "Traceback" not in server.stop()
        cluster.stop()


def test_a_cluster_primary_killed_under_load_loses_no_save_a_player_was_told_of(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    """--store-wait-replicas 1 on a cluster: the primary of the counter's slot
    is killed while players visit; its replica takes over; with no replica
    left the saves are answered 41 "may or may not have been kept" until the
    killed node, started again, follows the new primary; every count a 20
    told a player is in their record afterwards."""
    cluster = Cluster(tmp_path)
    cluster.start()

    def kill_then_restart() -> None:
        primary = cluster.owner("failover:{visits}:used")
        primary.kill()
        time.sleep(3)
        primary.start()

    try:
        lost = under_load(
            cluster.url, make_cert, ("--store-wait-replicas", "1"), kill_then_restart
        )
        assert [] == lost
    finally:
        cluster.stop()
