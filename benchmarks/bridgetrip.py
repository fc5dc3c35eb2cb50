"""``python -m benchmarks.bridgetrip``: the bridge's round trip against a daemon's.

What a CGI program pays per request to read and write its record: the bridge
inside ``jetforce-sesh`` (``--bridge-socket``), against the cgisesh-style daemon
the CGI scenarios use (``benchmarks.kvdaemon``), both with 64-byte records. For
each, the same Python client does, per trip, what a CGI request does: connect,
look the player up, write the record back, close (the bridge adds its SELECT).
A second figure keeps one connection open and counts LOOKUP + UPDATE alone.
Rounds alternate between the two servers so both meet the same noise; the
figures are medians over rounds: wall time per trip at the client, and the
server process's CPU per trip (the fair one on a shared machine).

``--against DIR`` runs a second bridge, from the checkout in ``DIR`` (another
commit: ``git worktree add /tmp/old COMMIT``), in the same interleaved rounds,
so that what a change costs is measured against the same noise.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import sesh_bridge
from benchmarks.processes import LauncherServer, UnixSocketService, cpu_seconds

RECORD_SIZE = 64
KEY = "ab" * 32
Trip = Callable[[], None]


def _receive(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _daemon_exchange(sock: socket.socket) -> None:
    sock.sendall(b"L" + KEY.encode())
    record = bytearray(_receive(sock, RECORD_SIZE))
    struct.pack_into("<Q", record, 0, struct.unpack_from("<Q", record)[0] + 1)
    sock.sendall(b"U" + bytes(record))
    if _receive(sock, 1) != b"K":
        raise RuntimeError("the daemon refused the update")


def daemon_trips(path: str, connected: socket.socket | None) -> Trip:
    def trip() -> None:
        if connected is not None:
            _daemon_exchange(connected)
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            _daemon_exchange(sock)

    return trip


def _bridge_exchange(bridge: sesh_bridge.Bridge) -> None:
    found = bridge.lookup(KEY)
    record = bytearray(found.data)
    struct.pack_into("<Q", record, 0, struct.unpack_from("<Q", record)[0] + 1)
    bridge.update(bytes(record))


def bridge_trips(path: str, connected: sesh_bridge.Bridge | None) -> Trip:
    def trip() -> None:
        if connected is not None:
            _bridge_exchange(connected)
            return
        with sesh_bridge.connect("wide", RECORD_SIZE, path) as bridge:
            _bridge_exchange(bridge)

    return trip


def measure(trip: Trip, pid: int, trips: int) -> tuple[float, float]:
    """Microseconds per trip: at the client (wall), and in the server (CPU)."""
    cpu, start = cpu_seconds(pid), time.perf_counter()
    for _ in range(trips):
        trip()
    wall = time.perf_counter() - start
    return wall / trips * 1e6, (cpu_seconds(pid) - cpu) / trips * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bridgetrip",
        description="The CGI bridge's round trip against a cgisesh-style daemon's.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--trips", type=int, default=2000, help="Per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--against",
        type=Path,
        default=None,
        metavar="DIR",
        help="Also run the bridge of the checkout in DIR, in the same rounds",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as directory:
        home = Path(directory)
        kv_path, bridge_path = str(home / "kv.sock"), str(home / "sesh.sock")
        daemon = UnixSocketService(
            [sys.executable, "-m", "benchmarks.kvdaemon", "--socket", kv_path],
            Path(kv_path),
            home / "kvdaemon.log",
        )
        server = LauncherServer(
            ["--app", "benchmarks.apps:bridged", "--bridge-socket", bridge_path],
            home / "server.log",
        )
        other = None
        if args.against is not None:
            other_path = str(home / "other.sock")
            other = LauncherServer(
                ["--app", "benchmarks.apps:bridged", "--bridge-socket", other_path],
                home / "other.log",
                env={"PYTHONPATH": str(args.against.resolve())},
                cwd=args.against,
            )
        kept_daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        kept_daemon.connect(kv_path)
        kept_bridge = sesh_bridge.connect("wide", RECORD_SIZE, bridge_path)
        kinds: dict[str, tuple[Trip, int]] = {
            "daemon, connect per trip": (daemon_trips(kv_path, None), daemon.pid),
            "bridge, connect per trip": (bridge_trips(bridge_path, None), server.pid),
            "daemon, one connection": (
                daemon_trips(kv_path, kept_daemon),
                daemon.pid,
            ),
            "bridge, one connection": (
                bridge_trips(bridge_path, kept_bridge),
                server.pid,
            ),
        }
        kept_other = None
        if other is not None:
            kept_other = sesh_bridge.connect("wide", RECORD_SIZE, other_path)
            kinds["against, connect per trip"] = (
                bridge_trips(other_path, None),
                other.pid,
            )
            kinds["against, one connection"] = (
                bridge_trips(other_path, kept_other),
                other.pid,
            )
        figures: dict[str, list[tuple[float, float]]] = {name: [] for name in kinds}
        try:
            for _ in range(args.rounds):
                for name, (trip, pid) in kinds.items():
                    figures[name].append(measure(trip, pid, args.trips))
        finally:
            kept_daemon.close()
            kept_bridge.close()
            server.stop()
            daemon.stop()
            if other is not None:
                assert kept_other is not None
                kept_other.close()
                other.stop()
    print(
        f"LOOKUP + UPDATE of a {RECORD_SIZE}-byte record, {args.trips:,} trips per"
        f" round, median of {args.rounds} interleaved rounds:"
    )
    medians = {
        name: (
            statistics.median(wall for wall, _ in rows),
            statistics.median(cpu for _, cpu in rows),
        )
        for name, rows in figures.items()
    }
    for name, (wall, cpu) in medians.items():
        print(f"  {name:<26} {wall:7.1f} µs per trip, server CPU {cpu:6.1f} µs")
    for how in ("connect per trip", "one connection"):
        daemon_wall, daemon_cpu = medians[f"daemon, {how}"]
        bridge_wall, bridge_cpu = medians[f"bridge, {how}"]
        print(
            f"  bridge ÷ daemon, {how}: wall {bridge_wall / daemon_wall:.2f},"
            f" server CPU {bridge_cpu / daemon_cpu:.2f}"
        )
        if f"against, {how}" in medians:
            other_wall, other_cpu = medians[f"against, {how}"]
            print(
                f"  bridge ÷ against, {how}: wall {bridge_wall / other_wall:.3f},"
                f" server CPU {bridge_cpu / other_cpu:.3f} (against ÷ daemon:"
                f" {other_cpu / daemon_cpu:.2f})"
            )


if __name__ == "__main__":
    main()
