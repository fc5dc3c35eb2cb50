"""Stopping a real server: SIGTERM while a request is in flight, SIGHUP (a
graceful stop too), a second signal while stopping, and a stop while the stores
are still opening."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support import REPO, ClientCert, Reply, Server, interruptible

pytestmark = pytest.mark.e2e


def linger_then_stop(
    server: Server, cert: ClientCert, signals: tuple[int, ...] = (signal.SIGTERM,)
) -> tuple[Reply, str, int]:
    """Start a /linger request, send ``signals`` once its handler runs; return
    the reply, everything the server printed, and its exit status."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        reply: Future[Reply] = pool.submit(server.request, "/linger", cert)
        deadline = time.monotonic() + 20
        while server.request("/lingering").body != "1":
            assert time.monotonic() < deadline, "the handler never started"
        for number in signals:
            server.process.send_signal(number)
            time.sleep(0.2)
        answer = reply.result(timeout=30)
    status = server.process.wait(timeout=30)
    return answer, server.stop(), status


def test_a_request_in_flight_is_answered_before_the_server_exits_0(
    make_cert: type[ClientCert],
) -> None:
    server = Server(["--app", "tests.apps.slow_counter:app"])
    answer, output, status = linger_then_stop(server, make_cert("shutdown-ann"))
    assert (Reply(20, "text/plain", "1"), 0) == (answer, status)
    assert "Traceback" not in output
    assert "Unhandled" not in output
    # Logged last, once the request in flight was answered: it is counted.
    final = [line for line in output.splitlines() if "final: slab" in line]
    assert [
        "final: slab tests.apps.slow_counter.Count: 1/10000 records (1.1 MiB),"
        " 0 hits, 1 misses, 1 created, 0 evicted, 0 expired, 0 refused,"
        " 0 too large, 0 failed, 0 timed out"
    ] == [line.split("] ", 1)[1] for line in final]


def test_a_request_that_outlasts_the_grace_is_cut_off_keeping_nothing(
    make_cert: type[ClientCert],
) -> None:
    server = Server(["--app", "tests.apps.slow_counter:app", "--shutdown-grace", "0.2"])
    answer, output, status = linger_then_stop(server, make_cert("shutdown-bob"))
    assert (
        Reply(
            41,
            "The capsule is restarting; your previous state is kept: try again in a"
            " moment",
            "",
        ),
        0,
    ) == (answer, status)
    assert "Traceback" not in output


def test_sighup_stops_gracefully_too_and_a_second_signal_changes_nothing(
    make_cert: type[ClientCert],
) -> None:
    """SIGHUP's default would kill the server on the spot, cutting off the
    request; a second signal while stopping would stop a stopping reactor."""
    server = Server(["--app", "tests.apps.slow_counter:app"])
    answer, output, status = linger_then_stop(
        server, make_cert("shutdown-hup"), (signal.SIGHUP, signal.SIGTERM)
    )
    assert (Reply(20, "text/plain", "1"), 0) == (answer, status)
    assert "Traceback" not in output and "Unhandled" not in output
    lines = output.splitlines()
    assert [
        "SIGHUP: stopping gracefully (jetforce-sesh reads its settings only at"
        " start-up: start it again to apply a change)",
        "SIGTERM: already stopping",
    ] == [line for line in lines if line.startswith(("SIGHUP", "SIGTERM"))]


def test_sighup_removes_the_bridge_socket(tmp_path: Path) -> None:
    sock = tmp_path / "sesh.sock"
    server = Server(
        ["--app", "tests.apps.bridged_counter:app", "--bridge-socket", str(sock)]
    )
    assert sock.is_socket()
    server.process.send_signal(signal.SIGHUP)
    assert 0 == server.process.wait(timeout=30)
    output = server.stop()
    assert "Traceback" not in output
    assert not sock.exists()


def test_a_stop_while_redis_stores_open_says_why_in_one_line(tmp_path: Path) -> None:
    """A Redis that does not answer: SIGTERM comes while the stores open, and
    the server waits for them to fail, says so once, and exits 2."""
    with socket.socket() as hold:  # bound, never listening: nothing answers
        hold.bind(("127.0.0.1", 0))
        port = hold.getsockname()[1]
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "jetforce_sesh", "--port", "0"),
                *("--store", f"redis://127.0.0.1:{port}/0"),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=interruptible,
        )
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith("TLS Private Key File"):
                break
        time.sleep(0.5)  # the reactor runs; the stores are opening
        process.send_signal(signal.SIGTERM)
        rest, _ = process.communicate(timeout=60)
    output = "".join(seen) + rest
    assert 2 == process.returncode, output
    assert "Traceback" not in output and "Unhandled" not in output
    assert [
        "jetforce-sesh: error: the stores could not be opened: StoreUnavailable:"
        f" Redis at redis://127.0.0.1:{port}/0 did not answer within 3 s: start it,"
        " or check --store"
    ] == [line for line in output.splitlines() if "error" in line]
