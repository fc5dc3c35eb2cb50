"""The Redis store under real processes: two servers sharing one Redis over real
TLS, and a Redis that stops answering, is killed and comes back.

Every server is ``python -m jetforce_sesh --store redis://...`` on port 0; the
Redis is a real ``valkey-server`` (see ``tests/redis_support.py``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from jetforce_sesh.session.answers import UNAVAILABLE
from tests.e2e.test_games_words import BinarySearch, section
from tests.redis_support import RedisServer
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
    """Number guessing, each guess sent to the other process than the last; the
    name given to one process and the games won through both are ranked by the
    hall of fame, which reads every player's record through the store."""
    cert = make_cert("redis-fame")
    assert 20 == pair[0].request("/halloffame/name", cert, query="Ada").status
    tries = 0
    for game in range(5):  # ranked from five games on
        player = BinarySearch(pair[game % 2], cert)
        while not player.done:
            player.server = pair[(game + player.tries) % 2]
            player.step()
        tries += player.tries
        assert 20 == pair[1 - game % 2].request("/guess/new", cert).status
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
