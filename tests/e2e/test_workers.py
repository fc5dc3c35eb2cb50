"""``--workers N`` under real processes: one supervisor, real worker processes
on one port, a real ``valkey-server``, real TLS with real client certificates.

Which worker answered is seen on ``/admin``, which names the worker (and its
pid) that served the page; the supervisor's banner names every pid.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.e2e.test_redis import visit_until_kept
from tests.redis_support import RedisServer
from tests.support import ClientCert, MakeCert, Server, gemini_request

pytestmark = pytest.mark.e2e

PIDS = re.compile(r"^2 worker processes serve this port \(pids (\d+), (\d+)\)\.$", re.M)
ANSWERED = re.compile(r"worker (\d) \(pid (\d+)\) answered this page")


@pytest.fixture(scope="module")
def admin(make_cert: MakeCert) -> ClientCert:
    return make_cert("workers-admin")


@pytest.fixture(scope="module")
def workers(redis_server: RedisServer, admin: ClientCert) -> Iterator[Server]:
    server = Server(
        [
            "--workers",
            "2",
            *("--store", redis_server.url, "--store-prefix", "e2e-workers"),
            *("--admin-cert", admin.tls_client_hash, "--max-queued", "400"),
        ],
        drain=True,
    )
    try:
        yield server
    finally:
        server.stop()


def pids_of(server: Server) -> tuple[int, int]:
    found = PIDS.findall("".join(server.output))
    assert found, "".join(server.output)
    first, second = found[-1]
    return int(first), int(second)


def answered_by(server: Server, admin: ClientCert) -> int:
    reply = server.request("/admin", admin)
    assert 20 == reply.status, reply
    found = ANSWERED.search(reply.body)
    assert found is not None, reply.body
    return int(found.group(2))


def test_requests_are_spread_over_both_workers_which_admin_shows(
    workers: Server, admin: ClientCert
) -> None:
    pids = pids_of(workers)
    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = set(pool.map(lambda _: answered_by(workers, admin), range(80)))
    assert set(pids) == seen
    page = workers.request("/admin", admin).body
    for index, pid in enumerate(pids, 1):
        assert f"* Worker {index}: pid {pid}, serving, 0 restarts" in page, page


def test_counts_are_exact_under_concurrent_load_across_workers(
    workers: Server, make_cert: MakeCert
) -> None:
    player = make_cert("workers-many")
    with ThreadPoolExecutor(max_workers=16) as pool:
        visits = list(pool.map(lambda _: visit_until_kept(workers, player), range(200)))
    assert list(range(1, 201)) == sorted(number for number, _ in visits)
    assert (201, 1) == visit_until_kept(workers, player)


def test_a_worker_killed_is_started_again_and_the_other_serves_meanwhile(
    workers: Server, make_cert: MakeCert, admin: ClientCert
) -> None:
    first, second = pids_of(workers)
    player = make_cert("workers-killed")
    os.kill(second, signal.SIGKILL)
    # Meanwhile, every request is answered (by worker 1, and by the new
    # worker 2 once it serves): none waits in a dead worker's queue.
    counts = [visit_until_kept(workers, player)[0] for _ in range(20)]
    assert list(range(1, 21)) == counts
    said = f"worker 2 (pid {second}) was killed by SIGKILL; starting it again now\n"
    deadline = time.monotonic() + 30
    while "worker 2 (pid " not in "".join(workers.output).split(said)[-1]:
        assert time.monotonic() < deadline, "".join(workers.output)
        time.sleep(0.1)
    output = "".join(workers.output)
    assert said in output
    new = re.search(r"^worker 2 \(pid (\d+)\) serves again$", output, re.M)
    assert new is not None, output
    page = workers.request("/admin", admin).body
    assert f"* Worker 2: pid {new.group(1)}, serving, 1 restart" in page, page
    assert f"* Worker 1: pid {first}, serving, 0 restarts" in page, page


def test_sigterm_stops_every_worker_with_status_0_and_loses_no_answer(
    redis_server: RedisServer, make_cert: MakeCert
) -> None:
    server = Server(
        [
            *("--workers", "2", "--store", redis_server.url),
            *("--store-prefix", "e2e-stop", "--max-queued", "400"),
        ],
        drain=True,
    )
    pids = pids_of(server)
    player = make_cert("workers-stop")
    replies: list[int] = []

    def visit(n: int) -> int:
        try:
            reply = gemini_request(server.port, "/counter", player)
        except OSError:
            return -1  # refused once the port closed: never answered
        replies.append(reply.status)
        return reply.status

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(visit, n) for n in range(60)]
        time.sleep(0.3)
        server.process.send_signal(signal.SIGTERM)
        statuses = [future.result() for future in futures]
    assert 0 == server.process.wait(timeout=30)
    output = server.stop()
    assert "SIGTERM: stopping the 2 workers gracefully\n" in output
    assert "worker 1: SIGTERM: stopping gracefully\n" in output
    assert "worker 2: SIGTERM: stopping gracefully\n" in output
    # Every request answered was answered whole (20, or 40 "try again" for a
    # save another worker's beat), none cut off.
    assert set(statuses) <= {20, 40, -1}, statuses
    assert 20 in statuses
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # What was answered 20 was kept: the next visit counts on from there.
    again = Server(["--store", redis_server.url, "--store-prefix", "e2e-stop"])
    try:
        number, _ = visit_until_kept(again, player)
    finally:
        again.stop()
    assert statuses.count(20) + 1 == number


def test_each_worker_serves_a_bridge_socket_of_its_own_and_removes_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "bridge.sock"
    server = Server(
        [
            *("--app", "benchmarks.apps:bridged", "--workers", "2"),
            *("--store", redis_server.url, "--store-prefix", "e2e-bridge"),
            *("--bridge-socket", str(path)),
        ],
        drain=True,
    )
    try:
        sockets = sorted(p.name for p in tmp_path.iterdir())
        assert ["bridge.sock.1", "bridge.sock.2"] == sockets
        for name in sockets:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(str(tmp_path / name))
        said = f"CGI programs reach the records at {path}.1 (worker 1; worker K at"
        assert f"{said} {path}.K)\n" in "".join(server.output)
    finally:
        output = server.stop()
    assert 0 == server.process.returncode, output
    assert [] == list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("flags", "line"),
    [
        (
            [],
            "jetforce-sesh: error: --workers 2 with --store memory: each worker"
            " would keep records of its own, and a player would meet another on"
            " every request; give a Redis --store every worker shares"
            " (redis://HOST:PORT/DB), or --workers 1\n",
        ),
        (
            ["--state-dir", "/tmp/jetforce-sesh-workers-test"],
            "jetforce-sesh: error: --workers 2 with --state-dir"
            " '/tmp/jetforce-sesh-workers-test': the state directory is locked by"
            " one process, which keeps its records in its own memory, so the"
            " workers cannot share it; give a Redis --store (redis://HOST:PORT/DB)"
            " instead, or --workers 1\n",
        ),
    ],
)
def test_workers_without_a_shared_store_are_refused_at_start_up(
    flags: list[str], line: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "jetforce_sesh", "--workers", "2", *flags],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (2, "", line) == (done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def limited(redis_server: RedisServer) -> Iterator[tuple[Server, Server]]:
    """Two processes on one Redis, each with both rate limits."""
    args = [
        *("--store", redis_server.url, "--store-prefix", "e2e-limits"),
        *("--rate-limit-cert", "3/1m", "--rate-limit", "8/1m"),
    ]
    first = Server(args, drain=True)
    try:
        second = Server(args, drain=True)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_rate_limits_hold_across_two_processes(
    limited: tuple[Server, Server], make_cert: MakeCert
) -> None:
    """3 per certificate and 8 per address in all, whichever process each
    request went to: the 4th of a certificate and the 9th of the address are
    44, with the seconds to wait."""
    one, two, three = (make_cert(f"limits-{n}") for n in range(3))
    players = [one] * 4 + [two] * 4 + [three]
    replies = [
        limited[n % 2].request("/counter", player) for n, player in enumerate(players)
    ]
    assert [20, 20, 20, 44, 20, 20, 20, 44, 44] == [r.status for r in replies]
    assert all(55 <= int(r.meta) <= 60 for r in replies if r.status == 44), replies
    # Known over, on the other process too, without a count in the store.
    assert 44 == limited[1].request("/counter", one).status
    assert 44 == limited[0].request("/counter", three).status
