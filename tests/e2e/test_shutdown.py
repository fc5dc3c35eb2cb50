"""Stopping a real server with SIGTERM while a request is in flight."""

from __future__ import annotations

import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.support import ClientCert, Reply, Server

pytestmark = pytest.mark.e2e


def linger_then_stop(server: Server, cert: ClientCert) -> tuple[Reply, str, int]:
    """Start a /linger request, SIGTERM the server once its handler runs; return
    the reply, everything the server printed, and its exit status."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        reply: Future[Reply] = pool.submit(server.request, "/linger", cert)
        deadline = time.monotonic() + 20
        while server.request("/lingering").body != "1":
            assert time.monotonic() < deadline, "the handler never started"
        server.process.send_signal(signal.SIGTERM)
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
