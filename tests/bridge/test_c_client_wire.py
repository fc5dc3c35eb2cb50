"""The C client on the wire, against a scripted bridge: it sends the messages of
the reference, and refuses the replies the reference does not allow.

The C programs and how they are built are in ``tests/bridge/c_client_support.py``;
the compiled programs and the real bridge are fixtures of ``tests/bridge/conftest.py``
(docs/reference/bridge.md).
"""

from __future__ import annotations

import struct
from pathlib import Path

from tests.bridge.c_client_support import (
    ANN,
    BEN,
    OK,
    Built,
    Doorman,
    ScriptedBridge,
    found,
    frame,
)


def drive(
    built: Built,
    bridge: ScriptedBridge | Doorman,
    *calls: str,
    fingerprint: str = ANN,
    env: dict[str, str] | None = None,
) -> list[str]:
    """Run the driver's ``calls`` against ``bridge``; the lines it printed."""
    with bridge:
        done = built.run(
            built.driver,
            {
                "SESH_BRIDGE_SOCKET": bridge.path,
                "FINGERPRINT": fingerprint,
                **(env or {}),
            },
            *calls,
        )
    assert ("", 0) == (done.stderr, done.status)
    return done.stdout.splitlines()


def test_the_client_sends_the_messages_of_the_reference(
    built: Built, tmp_path: Path
) -> None:
    bridge = ScriptedBridge(
        tmp_path / "scripted.sock",
        [
            [
                OK,
                frame(b"K" + found(7, 3, 4)),
                frame(b"K" + struct.pack(">Q", 8)),
                frame(b"K" + struct.pack(">Q", 9)),
                OK,
                frame(b"K\x01"),
            ],
            [OK, frame(b"K" + found(0, 0, 0))],
        ],
    )
    assert [
        "select:visits: OK version 0 record 0 0",
        "lookup: OK version 7 record 3 4",
        "update:5,6: OK version 8 record 5 6",
        "cas:10,11: OK version 9 record 10 11",
        "release: OK version 9 record 10 11",
        "delete: OK version 0 record 10 11",
        "init: OK version 0 record 10 11",
        "lookup: OK version 0 record 0 0",
    ] == drive(
        built,
        bridge,
        "select:visits",
        "lookup",
        "update:5,6",
        "cas:10,11",
        "release",
        "delete",
        "init",
        "lookup",
    )
    ann = ANN.encode()
    assert [
        [
            b"S" + struct.pack(">I", 16) + b"visits",
            b"L" + ann,
            b"U" + struct.pack("<QQ", 5, 6),
            b"C" + struct.pack(">QB", 8, len(ann)) + ann + struct.pack("<QQ", 10, 11),
            b"R",
            b"D" + struct.pack(">Q", 9) + ann,
        ],
        # Without sesh_select, SELECT names no slab: the only one with a layout.
        [b"S" + struct.pack(">I", 16), b"L" + ann],
    ] == bridge.requests


def test_the_client_refuses_replies_the_reference_does_not_allow(
    built: Built, tmp_path: Path
) -> None:
    """Every reply's length is checked; a bad one closes the connection, and the
    next call connects again. Run under the sanitizers when the machine has them."""
    message = b"busy\r\nnow " + "é".encode() * 200
    bridge = ScriptedBridge(
        tmp_path / "scripted.sock",
        [
            [OK, b"\0\0\0\0"],
            [OK, b"\xff\xff\xff\xff"],
            [OK, frame(b"K" + struct.pack(">Q", 1))],
            [OK, frame(b"X" + found(2, 1, 1))],
            [OK, frame(b"Z")],
            [OK, frame(b"K" + found(2, 1, 1))[:10]],
            [OK, frame(b"N" + message), frame(b"K" + found(1, 1, 1))],
            [frame(b"E" + b"go away")],
            [
                OK,
                frame(b"K" + found(3, 1, 2)),
                frame(b"X" + struct.pack(">Q", 4)),
            ],
            [OK, frame(b"K" + found(5, 1, 2)), frame(b"K\x02")],
        ],
    )
    assert [
        "lookup: PROTOCOL version 0 record 0 0"
        " | the bridge sent a reply of 0 bytes (at most 65792)",
        "lookup: PROTOCOL version 0 record 0 0"
        " | the bridge sent a reply of 4294967295 bytes (at most 65792)",
        "lookup: PROTOCOL version 0 record 0 0"
        " | the bridge's K reply has 9 bytes, not 25",
        "lookup: PROTOCOL version 0 record 0 0"
        " | the bridge sent X (25 bytes) to a request that cannot conflict",
        "lookup: PROTOCOL version 0 record 0 0"
        " | the bridge sent an unknown reply code 90 (1 bytes)",
        "lookup: UNAVAILABLE version 0 record 0 0 | the bridge closed the connection",
        # One line, cut before the character that would pass 255 bytes.
        "lookup: REFUSED version 0 record 0 0 | busy  now " + "é" * 122,
        "lookup: OK version 1 record 1 1",  # N leaves the connection open
        "init: OK version 0 record 1 1",
        "lookup: PROTOCOL version 0 record 1 1 | go away",
        "lookup: OK version 3 record 1 2",
        "update:2,3: PROTOCOL version 3 record 2 3"
        " | the bridge's X reply has 9 bytes, not 25",
        "lookup: OK version 5 record 1 2",
        "delete: PROTOCOL version 5 record 1 2"
        " | the bridge's DELETE reply says 2, not 0 or 1",
    ] == drive(
        built,
        bridge,
        *["lookup"] * 8,
        "init",
        "lookup",
        "lookup",
        "update:2,3",
        "lookup",
        "delete",
    )


def test_the_client_stays_in_step_after_a_refusal(built: Built, tmp_path: Path) -> None:
    """A refused SELECT closes the connection (the server will not answer the
    request sent with it); a refused request leaves it open; a certificate the
    server will not take is its own code."""
    busy = b"the capsule is shutting down: try again later"
    expired = b"Your certificate expired on 2020-01-01: make a new one"
    bridge = ScriptedBridge(
        tmp_path / "scripted.sock",
        [
            [frame(b"N" + busy)],
            [OK, frame(b"V" + expired), frame(b"K" + found(7, 1, 2))],
        ],
    )
    assert [
        "lookup: REFUSED version 0 record 0 0 | " + busy.decode(),
        "lookup: NOT_VALID version 0 record 0 0 | " + expired.decode(),
        "lookup: OK version 7 record 1 2",
    ] == drive(built, bridge, "lookup", "lookup", "lookup")


def test_a_server_that_turns_the_connection_away_is_heard(
    built: Built, tmp_path: Path
) -> None:
    """Past a cap the server answers N at once and closes, before it reads the
    request: the write may fail with a broken pipe, but the answer says why."""
    refusal = b"process 7 has 8 bridge connections open: close one first"
    assert ["lookup: REFUSED version 0 record 0 0 | " + refusal.decode()] == drive(
        built, Doorman(tmp_path / "door.sock", frame(b"N" + refusal)), "lookup"
    )


def test_the_requesting_players_certificate_dates_go_with_it(
    built: Built, tmp_path: Path
) -> None:
    bridge = ScriptedBridge(
        tmp_path / "scripted.sock",
        [
            [
                OK,
                frame(b"K" + found(1, 0, 0)),
                frame(b"K" + struct.pack(">Q", 2)),
                frame(b"K" + found(2, 0, 0)),
            ]
        ],
    )
    env = {
        "TLS_CLIENT_HASH": ANN,
        "TLS_CLIENT_NOT_BEFORE": "2020-01-01T00:00:00Z",
        "TLS_CLIENT_NOT_AFTER": "2999-01-01T00:00:00Z",
    }
    drive(built, bridge, "lookup", "cas:1,1", "release", env=env)
    ann = ANN.encode() + b" 2020-01-01T00:00:00Z 2999-01-01T00:00:00Z"
    assert [
        b"S" + struct.pack(">I", 16),
        b"L" + ann,
        b"C" + struct.pack(">QB", 1, len(ann)) + ann + struct.pack("<QQ", 1, 1),
    ] == bridge.requests[0][:3]
    # Another player's fingerprint goes alone: these dates are not its.
    other = ScriptedBridge(
        tmp_path / "other.sock", [[OK, frame(b"K" + found(1, 0, 0))]]
    )
    drive(built, other, "lookup", fingerprint=BEN, env=env)
    assert [b"S" + struct.pack(">I", 16), b"L" + BEN.encode()] == other.requests[0]


def test_an_update_without_the_turn_is_refused_without_asking(
    built: Built, tmp_path: Path
) -> None:
    bridge = ScriptedBridge(
        tmp_path / "scripted.sock",
        [[OK, frame(b"K" + found(1, 0, 0)), frame(b"K" + struct.pack(">Q", 2))]],
    )
    assert [
        "lookup: OK version 1 record 0 0",
        "update:1,1: OK version 2 record 1 1",
        "update:2,2: PROTOCOL version 2 record 2 2 | sesh_update needs the turn of a"
        " sesh_lookup on this connection: use sesh_compare_and_set",
    ] == drive(built, bridge, "lookup", "update:1,1", "update:2,2")
