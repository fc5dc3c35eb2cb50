"""The cgisesh model's visit counter as a Python CGI script.

The harness copies this file into a cgi-bin at run time, with a ``#!`` line for
the running interpreter and ``KV_SOCKET`` set to the daemon's socket. Per request
it does what a cgisesh client does: connect, look the player's record up by
fingerprint, add one, write it back, print the page. Only the standard library,
so the interpreter starts with ``-S`` (no site-packages to scan).
"""

from __future__ import annotations

import os
import socket
import struct
import sys

KV_SOCKET = "/tmp/cgisesh.sock"  # the harness writes the daemon's path here
RECORD_SIZE = 64


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("key-value daemon closed the connection")
        data += chunk
    return data


def main() -> None:
    fingerprint = os.environ.get("TLS_CLIENT_HASH", "")
    if not fingerprint.startswith("SHA256:"):
        sys.stdout.write("60 Attach a client certificate\r\n")
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as kv:
        kv.connect(KV_SOCKET)
        kv.sendall(b"L" + fingerprint[7:].encode())
        (count,) = struct.unpack_from("<Q", _recv_exactly(kv, RECORD_SIZE))
        count += 1
        kv.sendall(b"U" + struct.pack("<Q", count).ljust(RECORD_SIZE, b"\0"))
        saved = _recv_exactly(kv, 1) == b"K"
    if not saved:
        sys.stdout.write("42 Session store full\r\n")
        return
    # The same page as benchmarks.apps.page, which this script cannot import
    # without paying for jetforce's imports on every request.
    sys.stdout.write(f"20 text/gemini\r\n# Visit counter\n\nVisit number {count}.\n")


if __name__ == "__main__":
    main()
