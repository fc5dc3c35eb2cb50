"""Hostile and careless clients over real TLS: one request per connection, other
hosts refused, malformed requests answered quietly, no forged log lines."""

from __future__ import annotations

import base64
import datetime
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from jetforce_sesh.testing import client_context, exchange
from tests.support import ClientCert, MakeCert, Reply, Server, make_client_cert, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    yield from serve([])


def raw(server: Server, data: bytes, cert: ClientCert | None = None) -> bytes:
    context = (
        client_context()
        if cert is None
        else client_context(cert.cert_path, cert.key_path)
    )
    return exchange(context, server.port, data)


def test_a_connection_carries_one_request_whatever_follows_it(
    server: Server, make_cert: MakeCert
) -> None:
    kim = make_cert("hostile-kim")
    base = f"gemini://localhost:{server.port}"
    lines = f"{base}/counter\r\n{base}/guess\r\n{base}/counter\r\n" * 100
    reply = raw(server, lines.encode(), kim)
    assert 1 == reply.count(b"\r\n20 ") + reply.startswith(b"20 ")
    assert reply.startswith(b"20 text/gemini\r\n# Visit counter")
    assert "\nVisit number 2.\n" in server.request("/counter", kim).body


@pytest.mark.parametrize(
    "url",
    [
        "gemini://example.com/",
        "gemini://localhost:1/",
        "https://localhost:{port}/",
        "gemini://example.com:{port}/counter",
    ],
)
def test_a_request_for_another_host_port_or_scheme_is_53(
    server: Server, url: str
) -> None:
    reply = raw(server, url.format(port=server.port).encode() + b"\r\n")
    assert (
        f"53 This capsule is gemini://localhost:{server.port}/; it serves no other"
        " host, port or scheme\r\n"
    ).encode() == reply


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST"])
def test_every_loopback_name_reaches_the_same_index(server: Server, host: str) -> None:
    reply = raw(server, f"gemini://{host}:{server.port}/\r\n".encode())
    index = raw(server, f"gemini://localhost:{server.port}/\r\n".encode())
    assert reply.startswith(b"20 text/gemini\r\n")
    assert index == reply


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_a_game_reached_by_a_loopback_address_plays(
    server: Server, make_cert: MakeCert, host: str
) -> None:
    reply = raw(
        server,
        f"gemini://{host}:{server.port}/counter\r\n".encode(),
        make_cert(f"hostile-{host}"),
    )
    assert reply.startswith(b"20 text/gemini\r\n# Visit counter\n\nWelcome!")


def test_malformed_requests_get_a_quiet_59(make_cert: MakeCert) -> None:
    alone = Server([])
    try:
        replies = [raw(alone, b"gemini://localhost/" + b"x" * 2000 + b"\r\n")]
        replies += [raw(alone, b"gemini://localhost/" + b"y" * 20000) for _ in range(4)]
        replies.append(raw(alone, b"gemini://[::1/\r\n"))
        replies.append(raw(alone, b"gemini://localhost/\xff\xfe\r\n"))
        replies.append(raw(alone, b"gemini://localhost/\x1b[31m\r\n"))
    finally:
        output = alone.stop()
    assert [
        b"59 Request longer than 1024 bytes\r\n",
        b"59 Request longer than 1024 bytes\r\n",
        b"59 Request longer than 1024 bytes\r\n",
        b"59 Request longer than 1024 bytes\r\n",
        b"59 Request longer than 1024 bytes\r\n",
        b"59 Request is not a URL\r\n",
        b"59 Request is not UTF-8\r\n",
        b"59 Request holds control characters\r\n",
    ] == replies
    logged = [line for line in output.splitlines() if '" 59 "' in line]
    assert 8 == len(logged)
    assert "Traceback" not in output
    assert "Unhandled" not in output


def test_a_request_cannot_forge_a_line_of_the_access_log() -> None:
    alone = Server([])
    try:
        reply = raw(
            alone,
            b'gemini://localhost/\n127.0.0.1 [01/Jan/2026:00:00:00 +0000] "forged" 20'
            b' "text/gemini" 1\r\n',
        )
    finally:
        output = alone.stop()
    assert b"59 Request holds control characters\r\n" == reply
    assert not [line for line in output.splitlines() if '"forged"' in line[:60]]
    (line,) = [line for line in output.splitlines() if "forged" in line]
    assert line.endswith(
        '"gemini://localhost/\\x0a127.0.0.1 [01/Jan/2026:00:00:00 +0000]'
        ' \\x22forged\\x22 20 \\x22text/gemini\\x22 1" 59 "Request holds control'
        ' characters" 37'
    )


def test_the_tls_exchange_helper_reads_a_whole_reply(server: Server) -> None:
    reply = raw(server, f"gemini://localhost:{server.port}/nowhere\r\n".encode())
    assert b"51 Not Found\r\n" == reply
    assert Reply(51, "Not Found", "") == server.request("/nowhere")


def test_dir_serves_no_hidden_file_and_nothing_outside_it(tmp_path: Path) -> None:
    capsule = tmp_path / "capsule"
    (capsule / ".git").mkdir(parents=True)
    (capsule / ".env").write_text("SECRET=1\n")
    (capsule / ".git" / "config").write_text("[core]\n")
    (capsule / "hello.gmi").write_text("# Hello\n")
    outside = tmp_path / "outside.txt"
    outside.write_text("not for players\n")
    (capsule / "escape.txt").symlink_to(outside)
    (capsule / "inside.gmi").symlink_to(capsule / "hello.gmi")
    server = Server(["--dir", str(capsule)])
    try:
        replies = {
            path: server.request(path)
            for path in ("/.env", "/.git/config", "/escape.txt", "/inside.gmi")
        }
        nul = raw(server, f"gemini://localhost:{server.port}/%00\r\n".encode())
    finally:
        output = server.stop()
    assert {
        "/.env": Reply(51, "Not Found", ""),
        "/.git/config": Reply(51, "Not Found", ""),
        "/escape.txt": Reply(51, "Not Found", ""),
        "/inside.gmi": Reply(20, "text/gemini", "# Hello\n"),
    } == replies
    assert b"59 Request holds a NUL byte\r\n" == nul
    assert "Traceback" not in output


def patched_certificate(directory: Path) -> ClientCert:
    """A certificate whose notBefore holds month 13: TLS accepts it, cryptography
    cannot read it."""
    made = make_client_cert(
        directory,
        "badtime",
        not_before=datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    )
    der = bytearray(made.certificate.public_bytes(serialization.Encoding.DER))
    at = der.find(b"200102030405Z")
    der[at : at + 13] = b"201302030405Z"
    pem = base64.encodebytes(bytes(der)).decode()
    made.cert_path.write_text(
        f"-----BEGIN CERTIFICATE-----\n{pem}-----END CERTIFICATE-----\n"
    )
    return made


def test_a_certificate_that_cannot_be_read_is_62_and_logs_no_traceback(
    tmp_path: Path,
) -> None:
    cert = patched_certificate(tmp_path)
    alone = Server([])
    try:
        game = alone.request("/counter", cert)
        home = alone.request("/", cert)
    finally:
        output = alone.stop()
    assert Reply(62, "Unreadable certificate", "") == game
    assert 20 == home.status
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("line", "answer"),
    [
        (b"gemini://@localhost/", "Request holds userinfo, which Gemini URLs may not"),
        ("gemini://localhost/\u2028x".encode(), "Request holds control characters"),
    ],
)
def test_userinfo_and_unicode_line_breaks_are_59(
    server: Server, line: bytes, answer: str
) -> None:
    assert f"59 {answer}\r\n".encode() == raw(server, line + b"\r\n")


def rss(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    (line,) = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    return int(line.split()[1]) * 1024


def test_a_client_that_stops_reading_a_big_file_costs_no_memory(
    tmp_path: Path,
) -> None:
    (tmp_path / "big.bin").write_bytes(os.urandom(64 << 20))
    alone = Server(["--dir", str(tmp_path)])
    try:
        before = rss(alone.process.pid)
        context = client_context()
        with (
            socket.create_connection(("127.0.0.1", alone.port)) as plain,
            context.wrap_socket(plain, server_hostname="localhost") as tls,
        ):
            tls.sendall(f"gemini://localhost:{alone.port}/big.bin\r\n".encode())
            assert tls.recv(64).startswith(b"20 ")
            # Read nothing more; give the server time to fill its buffers.
            deadline = time.monotonic() + 3
            grown = 0
            while time.monotonic() < deadline:
                grown = max(grown, rss(alone.process.pid) - before)
                time.sleep(0.1)
    finally:
        alone.stop()
    assert grown < 16 << 20, f"the server grew by {grown >> 20} MiB"


def test_a_request_abandoned_before_its_answer_still_gets_a_log_line(
    make_cert: MakeCert,
) -> None:
    alone = Server(["--app", "tests.apps.slow_counter:app"])
    cert = make_cert("hostile-leaver")
    context = client_context(cert.cert_path, cert.key_path)
    url = f"gemini://localhost:{alone.port}/linger\r\n".encode()
    try:
        with (
            socket.create_connection(("127.0.0.1", alone.port)) as first_plain,
            context.wrap_socket(first_plain, server_hostname="localhost") as first,
        ):
            first.sendall(url)
            deadline = time.monotonic() + 20
            while alone.request("/lingering").body != "1":
                assert time.monotonic() < deadline
            with (
                socket.create_connection(("127.0.0.1", alone.port)) as plain,
                context.wrap_socket(plain, server_hostname="localhost") as tls,
            ):
                tls.sendall(url)  # queued behind the first; then the client goes
            assert first.recv(64).startswith(b"20 ")
    finally:
        output = alone.stop()
    assert 1 == output.count(
        f'"gemini://localhost:{alone.port}/linger" 0 "no answer: the connection'
        ' closed first" 0'
    )
