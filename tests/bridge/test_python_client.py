"""The Python client (``sesh_bridge``) against scripted bridges on real UNIX
sockets: it stays in step after any refusal or bad reply (it closes and says
why, rather than read the next call's reply as this one's), it hears the
refusal of a server that turned it away, it waits for a place while the
server's backlog is full, and it sends the certificate's dates of the
requesting player."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest

import sesh_bridge
from tests.bridge.c_client_support import ANN, OK, ScriptedBridge, found, frame

RECORD = struct.pack("<QQ", 0, 0)
VERSION_1 = struct.pack(">Q", 1)


def test_a_refused_select_closes_the_connection_and_says_why(
    tmp_path: Path,
) -> None:
    """The reproduction: a server refuses the SELECT sent with the first request
    and answers nothing more; the client must not read the next call's reply
    as this one's."""
    bridge = ScriptedBridge(
        tmp_path / "b.sock",
        [[frame(b"Nthe capsule is not serving now: try again later")]],
    )
    with bridge, sesh_bridge.connect("visits", 16, bridge.path) as client:
        with pytest.raises(sesh_bridge.Refused) as refused:
            client.lookup(ANN)
        assert "the capsule is not serving now: try again later" == str(refused.value)
        with pytest.raises(sesh_bridge.Unavailable) as closed:
            client.peek(ANN)
    assert (
        "this bridge connection is closed: its SELECT was answered b'N': the capsule"
        " is not serving now: try again later" == str(closed.value)
    )


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"\0\0\0\0", "the server sent a reply of 0 bytes"),
        (
            frame(b"K" + struct.pack(">Q", 1)),
            "the server's K reply has 8 bytes, not 24",
        ),
        (
            frame(b"X" + struct.pack(">Q", 1)),
            "the server's X reply has 8 bytes, not 24",
        ),
        (frame(b"Z"), "the server sent an unknown reply b'Z'"),
    ],
)
def test_a_reply_the_client_cannot_read_closes_the_connection(
    tmp_path: Path, reply: bytes, error: str
) -> None:
    bridge = ScriptedBridge(tmp_path / "b.sock", [[OK, reply, frame(b"K")]])
    with bridge, sesh_bridge.connect("visits", 16, bridge.path) as client:
        with pytest.raises(sesh_bridge.ProtocolError) as broken:
            client.lookup(ANN)
        assert error == str(broken.value)
        with pytest.raises(sesh_bridge.Unavailable) as closed:
            client.release()
    assert f"this bridge connection is closed: {error}" == str(closed.value)


def test_a_refusal_leaves_the_connection_in_step(tmp_path: Path) -> None:
    bridge = ScriptedBridge(
        tmp_path / "b.sock",
        [
            [
                OK,
                frame(b"Nthis player's queue is full (2 may wait): try again later"),
                frame(b"VYour certificate expired on 2020-01-01: make a new one"),
                frame(b"K" + found(3, 1, 2)),
            ]
        ],
    )
    with bridge, sesh_bridge.connect("visits", 16, bridge.path) as client:
        with pytest.raises(sesh_bridge.Refused):
            client.lookup(ANN)
        with pytest.raises(sesh_bridge.NotValid) as expired:
            client.lookup(ANN)
        assert "Your certificate expired on 2020-01-01: make a new one" == str(
            expired.value
        )
        assert sesh_bridge.Found(3, struct.pack("<QQ", 1, 2)) == client.lookup(ANN)


def test_a_server_that_turns_the_connection_away_is_heard(tmp_path: Path) -> None:
    """Past a cap the server answers N at once and closes, before reading the
    request: the client's write may then fail, but the answer is there."""
    path = str(tmp_path / "b.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    refusal = b"Nprocess 7 has 8 bridge connections open: close one first"
    with listener:
        client = sesh_bridge.connect("visits", 16, path)
        accepted, _ = listener.accept()
        accepted.sendall(frame(refusal))
        accepted.close()
        with client, pytest.raises(sesh_bridge.Refused) as refused:
            client.lookup(ANN)
    assert refusal[1:].decode() == str(refused.value)


def test_connect_waits_for_a_place_while_the_backlog_is_full(tmp_path: Path) -> None:
    path = str(tmp_path / "b.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    queued = []
    while True:  # fill the backlog: the kernel then refuses more at once
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            sock.connect(path)
        except BlockingIOError:
            sock.close()
            break
        queued.append(sock)
    with pytest.raises(sesh_bridge.Unavailable) as full:
        sesh_bridge.connect("visits", 16, path, timeout=0.2)
    assert (
        f"cannot reach the bridge at {path}: no place in the bridge's queue of"
        f" connections for 0.2 s" == str(full.value)
    )
    # A place comes while the client waits: it connects.
    freed = threading.Timer(0.2, lambda: listener.accept()[0].close())
    freed.start()
    client = sesh_bridge.connect("visits", 16, path, timeout=10)
    freed.join()
    client.close()
    for sock in queued:
        sock.close()
    listener.close()


def test_the_requesting_players_certificate_dates_go_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TLS_CLIENT_HASH", ANN)
    monkeypatch.setenv("TLS_CLIENT_NOT_BEFORE", "2020-01-01T00:00:00Z")
    monkeypatch.delenv("TLS_CLIENT_NOT_AFTER", raising=False)
    other = "SHA256:" + "B2" * 32
    empty = frame(b"K" + found(0, 0, 0))
    bridge = ScriptedBridge(
        tmp_path / "b.sock", [[OK, empty, empty, frame(b"K" + VERSION_1)]]
    )
    with bridge, sesh_bridge.connect("visits", 16, bridge.path) as client:
        client.lookup(ANN)
        client.peek(other)
        client.compare_and_set(ANN, 0, RECORD)
    ann = ANN.encode() + b" 2020-01-01T00:00:00Z -"
    assert [
        b"S" + struct.pack(">I", 16) + b"visits",
        b"L" + ann,
        b"P" + other.encode(),
        b"C" + struct.pack(">QB", 0, len(ann)) + ann + RECORD,
    ] == bridge.requests[0]
