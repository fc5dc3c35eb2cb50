"""A local client that selects correctly, then misbehaves every way the bridge
must bound, all at once, until its stdin closes:

- ``chain``: two connections LOOKUP the victim's turn in turn and never write;
- ``pipeline``: SELECT and fifty PEEKs in one write, again and again;
- ``unread``: PEEKs of a 64 KiB record, one per read, and never a reply read;
- ``flood``: a thousand connections, held open.

It prints one line per finding (``NAME: what the server did``), for
tests/e2e/test_bridge.py to wait on. Usage: python hostile_bridge_client.py
SOCKET VICTIM_FINGERPRINT
"""

from __future__ import annotations

import resource
import socket
import struct
import sys
import threading
import time

PATH, VICTIM = sys.argv[1], sys.argv[2].encode()
stop = threading.Event()
said: set[str] = set()


def say(name: str, what: str) -> None:
    if name not in said:
        said.add(name)
        print(f"{name}: {what}", flush=True)


def frame(message: bytes) -> bytes:
    return struct.pack("!I", len(message)) + message


def select(size: int, slab: str) -> bytes:
    return frame(b"S" + struct.pack("!I", size) + slab.encode())


def read_frame(sock: socket.socket) -> bytes:
    head = _exactly(sock, 4)
    return _exactly(sock, struct.unpack("!I", head)[0])


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def connected(size: int = 16, slab: str = "visits") -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(20)
    sock.connect(PATH)
    sock.sendall(select(size, slab))
    reply = read_frame(sock)
    if reply != b"K":
        sock.close()
        raise ConnectionError(reply.decode(errors="replace"))
    return sock


def chain() -> None:
    holders = [connected(), connected()]
    while not stop.is_set():
        for sock in holders:
            sock.sendall(frame(b"L" + VICTIM))
            reply = read_frame(sock)
            if reply[:1] == b"K":
                say("chain", "holds the victim's turn")
            elif b"--bridge-hold-budget" in reply:
                say("refused", reply[1:].decode())
            time.sleep(0.02)


def pipeline() -> None:
    while not stop.is_set():
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(20)
            sock.connect(PATH)
            sock.sendall(select(16, "visits") + frame(b"P" + VICTIM) * 50)
            codes = []
            while True:
                codes.append(read_frame(sock))
        except (EOFError, OSError):
            pass
        finally:
            sock.close()
        if len(codes) == 3 and codes[2][:1] == b"E":
            say("pipeline", f"K K then {codes[2].decode()}")
        time.sleep(0.05)


def unread() -> None:
    sock = connected(65536, "blobs")
    sock.settimeout(1)
    sent = 0
    try:
        while not stop.is_set():
            sock.sendall(frame(b"P" + VICTIM))
            sent += 1
            time.sleep(0.002)  # each in its own read
    except TimeoutError:
        say("unread", f"the server stopped reading after {sent} PEEKs")
    stop.wait()
    sock.close()


def flood() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    held, turned_away = [], 0
    for _ in range(1000):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(20)
        sock.connect(PATH)
        held.append(sock)
    for sock in held:
        sock.settimeout(0.05)
        try:
            if read_frame(sock)[:1] == b"N":
                turned_away += 1
        except (TimeoutError, EOFError, OSError):
            pass
    say("flood", f"1000 connections, {turned_away} turned away")
    stop.wait()
    for sock in held:
        sock.close()


def until(names: set[str]) -> None:
    """Wait for the findings ``names``; at most 60 s, which says why."""
    deadline = time.monotonic() + 60
    while not names <= said:
        if time.monotonic() > deadline:
            print(f"timeout: no {', '.join(sorted(names - said))} in 60 s", flush=True)
            sys.exit(1)
        time.sleep(0.01)


def main() -> None:
    for job in (chain, unread):
        threading.Thread(target=job, daemon=True).start()
    until({"chain", "unread"})
    threading.Thread(target=pipeline, daemon=True).start()
    until({"pipeline"})
    threading.Thread(target=flood, daemon=True).start()
    until({"refused", "flood"})
    sys.stdin.read()  # until the test is done
    stop.set()


if __name__ == "__main__":
    main()
