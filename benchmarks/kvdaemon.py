"""A minimal cgisesh-style key-value daemon on a UNIX domain socket.

The CGI scenarios keep their state here, as a capsule built on cgisesh does: one
in-memory table of fixed-size records keyed by the certificate's SHA-256, and a
CGI client that connects per request, looks its record up and writes it back.

Wire protocol, per connection (what ``cgi_counter.py`` and ``cgi_counter.c`` speak):

* ``L`` + 64 hex digits of the fingerprint: answered with the record, exactly
  ``record_size`` bytes (all zero for a new key);
* ``U`` + ``record_size`` bytes: store them under the key looked up last on this
  connection; answered ``K``, or ``F`` when the table is full.

Run: ``python -m benchmarks.kvdaemon --socket /tmp/kv.sock --record-size 64``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Sequence
from typing import cast

LOOKUP = ord("L")
UPDATE = ord("U")
KEY_SIZE = 64


class KVProtocol(asyncio.Protocol):
    """One CGI client's connection: lookups and updates of fixed-size records."""

    def __init__(self, table: dict[bytes, bytes], record_size: int, limit: int):
        self.table = table
        self.record_size = record_size
        self.limit = limit
        self.empty = bytes(record_size)
        self.buffer = bytearray()
        self.key: bytes | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A UNIX stream server hands every protocol a full Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.buffer:
            op = self.buffer[0]
            if op == LOOKUP and len(self.buffer) >= 1 + KEY_SIZE:
                self.key = bytes(self.buffer[1 : 1 + KEY_SIZE])
                del self.buffer[: 1 + KEY_SIZE]
                self.transport.write(self.table.get(self.key, self.empty))
            elif op == UPDATE and len(self.buffer) >= 1 + self.record_size:
                record = bytes(self.buffer[1 : 1 + self.record_size])
                del self.buffer[: 1 + self.record_size]
                self.transport.write(self._update(record))
            elif op in (LOOKUP, UPDATE):
                return  # wait for the rest of the frame
            else:
                self.transport.close()  # not our protocol: drop the client
                return

    def _update(self, record: bytes) -> bytes:
        if self.key is None:
            return b"F"
        if self.key not in self.table and len(self.table) >= self.limit:
            return b"F"
        self.table[self.key] = record
        return b"K"


async def serve(path: str, record_size: int, max_records: int) -> None:
    table: dict[bytes, bytes] = {}
    loop = asyncio.get_running_loop()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    server = await loop.create_unix_server(
        lambda: KVProtocol(table, record_size, max_records), path, backlog=128
    )
    async with server:
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.kvdaemon",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--socket", required=True, help="UNIX socket path to serve")
    parser.add_argument("--record-size", type=int, default=64, help="Bytes a record")
    parser.add_argument("--max-records", type=int, default=100_000, help="Table size")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.socket, args.record_size, args.max_records))


if __name__ == "__main__":
    main()
