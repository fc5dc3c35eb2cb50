"""The C client's fixtures: its programs compiled once for the session, and the
real launcher's bridge socket they talk to, shared by the ``test_c_client_*.py``
files as they were by the one module they came from."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bridge.c_client_support import (
    CALLS_C,
    CLIENT,
    COUNTER,
    DRIVER_C,
    SANITIZERS,
    Built,
    compile_c,
    sanitizers_work,
)
from tests.support import Server


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    directory = tmp_path_factory.mktemp("bridge-c")
    sanitized = sanitizers_work(directory)
    flags = SANITIZERS if sanitized else ["-O2"]
    (directory / "calls.c").write_text(CALLS_C)
    (directory / "driver.c").write_text(DRIVER_C)
    programs = {
        "counter": COUNTER,
        "calls": directory / "calls.c",
        "driver": directory / "driver.c",
    }
    for name, source in programs.items():
        assert "" == compile_c(
            directory / name, source, CLIENT / "sesh_bridge.c", flags=flags
        )
    return Built(
        directory / "counter", directory / "calls", directory / "driver", sanitized
    )


@pytest.fixture(scope="session")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The counter game with its bridge; no request waits for a player's turn
    (--max-queued 0), so a second LOOKUP is refused at once, without a timer."""
    socket_path = str(tmp_path_factory.mktemp("bridge") / "sesh.sock")
    assert len(socket_path) < 100  # a UNIX socket's path is at most 107 bytes
    server = Server(
        [
            "--app",
            "jetforce_sesh.games.counter:app",
            "--bridge-socket",
            socket_path,
            "--max-queued",
            "0",
        ]
    )
    try:
        yield server, socket_path
    finally:
        server.stop()
