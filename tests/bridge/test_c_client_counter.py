"""The C CGI counter: it counts each certificate apart in the record the capsule's
route counts in, asks for a certificate, says 41 without its socket, and redoes a
conflicting visit on the record there now.

The C programs and how they are built are in ``tests/bridge/c_client_support.py``;
the compiled programs and the real bridge are fixtures of ``tests/bridge/conftest.py``
(docs/reference/bridge.md).
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from tests.bridge.c_client_support import (
    ANN,
    BEN,
    OK,
    Built,
    Run,
    ScriptedBridge,
    found,
    frame,
)
from tests.support import MakeCert, Server


def visit(built: Built, socket_path: str, tls_client_hash: str | None) -> Run:
    env = {"SESH_BRIDGE_SOCKET": socket_path}
    if tls_client_hash is not None:
        env["TLS_CLIENT_HASH"] = tls_client_hash
    return built.run(built.counter, env)


def counter_page(number: int) -> Run:
    return Run(
        "20 text/gemini\r\n# Visit counter (C CGI)\n\n"
        f"Visit number {number}.\n\n"
        "=> /cgi-bin/counter.cgi Visit again\n"
        "=> /counter The same count, in-process\n",
        "",
        0,
    )


@pytest.mark.e2e
def test_the_counter_counts_each_certificate_apart(
    built: Built, bridge: tuple[Server, str]
) -> None:
    _, socket_path = bridge
    assert [counter_page(1), counter_page(2), counter_page(1), counter_page(3)] == [
        visit(built, socket_path, ANN),
        visit(built, socket_path, ANN),
        visit(built, socket_path, BEN),
        visit(built, socket_path, ANN),
    ]


@pytest.mark.e2e
def test_the_counter_and_the_capsule_route_count_in_one_record(
    built: Built, bridge: tuple[Server, str], make_cert: MakeCert
) -> None:
    server, socket_path = bridge
    cat = make_cert("bridge-c-cat")
    assert [counter_page(1), counter_page(2)] == [
        visit(built, socket_path, cat.tls_client_hash),
        visit(built, socket_path, cat.tls_client_hash),
    ]
    page = server.request("/counter", cat)
    assert (20, "Visit number 3.") == (page.status, page.body.splitlines()[2])
    # The bare hex digits, as cgisesh programs pass them, name the same player.
    assert counter_page(4) == visit(
        built, socket_path, cat.tls_client_hash.removeprefix("SHA256:").lower()
    )


def test_the_counter_asks_for_a_certificate_before_it_connects(
    built: Built, tmp_path: Path
) -> None:
    missing = str(tmp_path / "nobody.sock")
    assert [Run("60 Attach a client certificate\r\n", "", 0)] * 2 == [
        visit(built, missing, None),
        visit(built, missing, ""),
    ]


def test_the_counter_without_its_socket_says_41_and_exits_0(
    built: Built, tmp_path: Path
) -> None:
    missing = tmp_path / "nobody.sock"
    assert Run(
        "41 The session store is unavailable\r\n",
        f"counter.cgi: cannot connect to {missing}: No such file or directory\n",
        0,
    ) == visit(built, str(missing), ANN)


@pytest.mark.parametrize(
    ("replies", "output"),
    [
        (
            [frame(b"X" + found(5, 10, 20)), frame(b"K" + struct.pack(">Q", 6))],
            counter_page(11),
        ),
        (
            [frame(b"X" + found(5 + n, 10 + n, 20 + n)) for n in range(11)],
            Run(
                "40 Too many visits at once: try again\r\n",
                "counter.cgi: the record moved: the buffer holds the one stored now\n",
                0,
            ),
        ),
        (
            [frame(b"N" + b"shutting down")],
            Run(
                "40 The session store refused the visit: try again\r\n",
                "counter.cgi: shutting down\n",
                0,
            ),
        ),
    ],
    ids=["conflict-redone", "conflicts-without-end", "refused"],
)
def test_the_counter_redoes_a_conflicting_visit_on_the_record_there_now(
    built: Built, tmp_path: Path, replies: list[bytes], output: Run
) -> None:
    bridge = ScriptedBridge(
        tmp_path / "scripted.sock", [[OK, frame(b"K" + found(3, 4, 9)), *replies]]
    )
    with bridge:
        assert output == visit(built, bridge.path, ANN)
    ann = ANN.encode()
    redone = [
        b"C"
        + struct.pack(">QB", 5 + n, len(ann))
        + ann
        + struct.pack("<QQ", 11 + n, 21 + n)
        for n in range(len(replies) - 1)
    ]
    assert [
        [
            b"S" + struct.pack(">I", 16) + b"visits",
            b"L" + ann,
            b"U" + struct.pack("<QQ", 5, 10),
            *redone,
        ]
    ] == bridge.requests
