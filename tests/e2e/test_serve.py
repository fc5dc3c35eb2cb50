"""The real launcher over real TLS, with real client certificates."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from jetforce_sesh.testing import client_context, exchange
from tests.support import AGUNUA, ClientCert, Reply, Server, serve

pytestmark = pytest.mark.e2e

MakeCert = Callable[..., ClientCert]
NOW = datetime.datetime.now(datetime.UTC)


WELCOME = "Welcome! This is your first visit. Come back and I will count."


def counter_page(news: str, visit: int) -> Reply:
    """The counter's page after the player's ``visit``-th visit."""
    return Reply(
        20,
        "text/gemini",
        f"# Visit counter\n\n{news}\n\n=> /counter Visit again\n"
        "=> /counter/reset Reset my count\n=> / Back to the capsule\n",
    )


def test_each_certificate_has_its_own_count(
    demo_server: Server, make_cert: MakeCert
) -> None:
    ann, ben = make_cert("e2e-ann"), make_cert("e2e-ben")
    assert [
        counter_page(WELCOME, 1),
        counter_page("Visit number 2.", 2),
        counter_page(WELCOME, 1),
        counter_page("Visit number 3.", 3),
    ] == [
        demo_server.request("/counter", ann),
        demo_server.request("/counter", ann),
        demo_server.request("/counter", ben),
        demo_server.request("/counter", ann),
    ]


def test_no_certificate_is_asked_for_one(demo_server: Server) -> None:
    assert Reply(
        60,
        "This capsule remembers you by your client certificate: attach one and try"
        " again",
        "",
    ) == demo_server.request("/counter")


def test_expired_certificate_is_62(demo_server: Server, make_cert: MakeCert) -> None:
    old = make_cert(
        "e2e-expired",
        not_before=NOW - datetime.timedelta(days=30),
        not_after=NOW - datetime.timedelta(days=2),
    )
    expiry = (NOW - datetime.timedelta(days=2)).strftime("%Y-%m-%d")
    grace = (NOW - datetime.timedelta(days=2) + datetime.timedelta(days=30)).strftime(
        "%Y-%m-%d"
    )
    # The demo has accounts: the way out, to move the records to a new one.
    assert Reply(
        62,
        f"Your certificate expired on {expiry}: make a new one. Until {grace} it can"
        " still open /account to make a link code for your new certificate",
        "",
    ) == demo_server.request("/counter", old)


def test_certificate_not_yet_valid_is_62(
    demo_server: Server, make_cert: MakeCert
) -> None:
    start = (NOW + datetime.timedelta(days=3)).replace(second=0, microsecond=0)
    early = make_cert("e2e-early", not_before=start)
    reply = demo_server.request("/counter", early)
    assert (
        Reply(
            62,
            f"Your certificate is not valid until {start:%Y-%m-%d %H:%M} UTC: use"
            " another one",
            "",
        )
        == reply
    )


def test_reset_asks_before_it_forgets(demo_server: Server, make_cert: MakeCert) -> None:
    cat = make_cert("e2e-cat")
    demo_server.request("/counter", cat)
    demo_server.request("/counter", cat)
    # The page's link is answered with the player's own, where it is asked.
    asked = demo_server.request("/counter/reset", cat, query="yes")
    assert 30 == asked.status and asked.meta.startswith("/counter/reset/")
    assert Reply(
        10, "Reset your visit count to zero? Type yes to confirm", ""
    ) == demo_server.request(asked.meta, cat)
    assert Reply(
        20,
        "text/gemini",
        "# Visit counter\n\nNot reset: the answer was not yes. You still have 2"
        " visits.\n\n=> /counter Back to the counter\n=> / Back to the capsule\n",
    ) == demo_server.request(asked.meta, cat, query="no")
    assert Reply(
        20,
        "text/gemini",
        "# Visit counter\n\nYour count is back to zero.\n\n=> /counter Start"
        " counting\n=> / Back to the capsule\n",
    ) == demo_server.request(asked.meta, cat, query="yes")
    assert counter_page("Visit number 1 since you reset your count.", 3) == (
        demo_server.request("/counter", cat)
    )


def test_index_links_the_games(demo_server: Server) -> None:
    page = demo_server.request("/")
    assert ("# jetforce-sesh demo capsule", 20) == (
        page.body.splitlines()[0],
        page.status,
    )
    assert (
        "=> /counter Visit counter: how many times you have been here"
        in page.body.splitlines()
    )


def test_the_banner_lists_each_game_and_ends_with_the_address_to_open(
    demo_server: Server,
) -> None:
    output = "".join(demo_server.output)
    games = output[output.index("Games and the players' records they keep:") :]
    assert [
        "Games and the players' records they keep:",
        "  Visit counter: up to 10,000 players, 948.3 KiB",
        "  Number guessing: up to 10,000 players, 2.0 MiB",
        "  Hangman: up to 10,000 players, 2.0 MiB",
        "  Tic-tac-toe: up to 10,000 players, 2.0 MiB",
        "  Pet: up to 10,000 players, 3.8 MiB",
        "  Hall of fame: up to 10,000 players, 2.6 MiB",
        "  Accounts: certificate links: up to 10,000 certificates, 3.2 MiB (when"
        " full, new certificates are refused; never forgotten for being unused)",
        "  Accounts: up to 10,000 accounts, 6.3 MiB (when full, new accounts are"
        " refused; never forgotten for being unused)",
        "  Accounts: live link codes: up to 1,000 codes, 306.8 KiB (when full, new"
        " codes are refused; codes unused for 10 minutes are forgotten)",
        "  Accounts: recovery codes: up to 16,000 codes, 1.8 MiB (when full, new"
        " codes are refused; never forgotten for being unused)",
        "  Accounts: revoked first certificates: up to 10,000 certificates, 1.2 MiB"
        " (when full, new certificates are refused; never forgotten for being"
        " unused)",
        "  Accounts: counts of codes: up to 10,000 counts, 4.8 MiB (when full, the"
        " counts unused longest make room; counts unused for 1 day are forgotten)",
        "  Accounts: codes being confirmed: up to 10,000 codes, 1.4 MiB (when full,"
        " the codes unused longest make room; codes unused for 10 minutes are"
        " forgotten)",
        "In all: 6 games and 7 more slabs, up to 127,000 records, 32.4 MiB reserved.",
        "When a game is full, the player away longest makes room; players are never"
        " forgotten for being away.",
        f"Listening on 127.0.0.1:{demo_server.port}",
    ] == games.splitlines()[:17]


def test_the_address_the_banner_prints_works(
    demo_server: Server, make_cert: MakeCert
) -> None:
    (line,) = [line for line in demo_server.output if line.startswith("Open ")]
    url = f"gemini://localhost:{demo_server.port}/"
    assert f"Open {url} in a Gemini client, with a client certificate.\n" == line
    context = client_context()
    reply = exchange(context, demo_server.port, url.encode() + b"\r\n")
    assert reply.startswith(b"20 text/gemini\r\n# jetforce-sesh demo capsule\n")


def test_the_address_the_banner_prints_for_an_ip_hostname_works(
    make_cert: MakeCert,
) -> None:
    """--hostname 127.0.0.1: the banner's address, and the ad-hoc certificate
    (with the address in its names) that an independent client checks."""
    server = Server(["--hostname", "127.0.0.1"])
    try:
        (line,) = [line for line in server.output if line.startswith("Open ")]
        url = f"gemini://127.0.0.1:{server.port}/"
        assert f"Open {url} in a Gemini client, with a client certificate.\n" == line
        dot = make_cert("e2e-ip")
        agunua = [
            AGUNUA,
            "--no-tofu",
            "-c",
            str(dot.cert_path),
            "-k",
            str(dot.key_path),
        ]
        played = subprocess.run(
            [*agunua, url + "counter"], capture_output=True, text=True, timeout=30
        )
        assert (0, True) == (
            played.returncode,
            "Welcome! This is your first visit." in played.stdout,
        ), played.stderr
    finally:
        server.stop()


def test_agunua_as_an_independent_client(
    demo_server: Server, make_cert: MakeCert
) -> None:
    dot = make_cert("e2e-agunua")
    url = f"gemini://localhost:{demo_server.port}/counter"
    agunua = [AGUNUA, "--no-tofu", "-c", str(dot.cert_path), "-k", str(dot.key_path)]
    first = subprocess.run([*agunua, url], capture_output=True, text=True, timeout=30)
    second = subprocess.run([*agunua, url], capture_output=True, text=True, timeout=30)
    assert (0, 0) == (first.returncode, second.returncode)
    assert "Welcome! This is your first visit." in first.stdout
    assert "Visit number 2." in second.stdout
    refused = subprocess.run(
        [AGUNUA, "--no-tofu", url], capture_output=True, text=True, timeout=30
    )
    assert (1, "Problem, Client certificate request") == (
        refused.returncode,
        refused.stderr.split(" (")[0],
    )


@pytest.fixture(scope="module")
def slow_server() -> Iterator[Server]:
    yield from serve(["--app", "tests.apps.slow_counter:app", "--max-queued", "50"])


def test_fifty_concurrent_requests_of_one_certificate_all_count(
    slow_server: Server, make_cert: MakeCert
) -> None:
    eve = make_cert("e2e-eve")
    with ThreadPoolExecutor(max_workers=50) as pool:
        replies = list(pool.map(lambda _: slow_server.request("/slow", eve), range(50)))
    assert [20] * 50 == [r.status for r in replies]
    assert [str(n) for n in range(1, 51)] == sorted((r.body for r in replies), key=int)
    assert "50" == slow_server.request("/count", eve).body


def test_past_max_queued_a_certificate_gets_44_and_nothing_is_lost(
    make_cert: MakeCert,
) -> None:
    server = Server(["--app", "tests.apps.slow_counter:app", "--max-queued", "2"])
    ida = make_cert("e2e-ida")
    try:
        with ThreadPoolExecutor(max_workers=20) as pool:
            replies = list(pool.map(lambda _: server.request("/slow", ida), range(20)))
        served = [r for r in replies if r.status == 20]
        assert {20, 44} >= {r.status for r in replies}
        assert 44 in {r.status for r in replies}
        assert sorted(r.body for r in served) == sorted(
            str(n) for n in range(1, len(served) + 1)
        )
        assert str(len(served)) == server.request("/count", ida).body
    finally:
        server.stop()


def test_dir_serves_files_only_for_paths_the_app_does_not_claim(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    (tmp_path / "hello.gmi").write_text("# Hello from a file\n")
    (tmp_path / "counter").write_text("shadowed by the app\n")
    server = Server(["--dir", str(tmp_path)])
    try:
        assert Reply(20, "text/gemini", "# Hello from a file\n") == server.request(
            "/hello.gmi"
        )
        assert counter_page(WELCOME, 1) == server.request(
            "/counter", make_cert("e2e-dir")
        )
    finally:
        server.stop()


def test_without_dir_nothing_from_the_working_directory_is_served(
    tmp_path: Path,
) -> None:
    (tmp_path / "secret.txt").write_text("do not serve me\n")
    server = Server([], cwd=tmp_path)
    try:
        assert Reply(51, "Not Found", "") == server.request("/secret.txt")
    finally:
        server.stop()


def test_a_port_in_use_exits_2_with_one_line(demo_server: Server) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "jetforce_sesh", "--port", str(demo_server.port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        2,
        f"jetforce-sesh: error: --port {demo_server.port} on 127.0.0.1 is not"
        " available (Address already in use): stop what uses it, or choose another"
        " --port\n",
    ) == (result.returncode, result.stderr)


def test_rate_limit_covers_files_and_session_routes(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    (tmp_path / "a.gmi").write_text("# A\n")
    server = Server(["--dir", str(tmp_path), "--rate-limit", "2/m"])
    fay = make_cert("e2e-fay")
    try:
        statuses = [
            server.request("/a.gmi").status,
            server.request("/counter", fay).status,
            server.request("/a.gmi").status,
            server.request("/counter", fay).status,
        ]
    finally:
        server.stop()
    assert [20, 20, 44, 44] == statuses


def served_certificate(server: Server) -> bytes:
    """The server's certificate as it presents it (DER), unverified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
        context.wrap_socket(sock, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_without_a_certificate_the_server_makes_an_ec_one(demo_server: Server) -> None:
    served = x509.load_der_x509_certificate(served_certificate(demo_server))
    key = served.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert "secp256r1" == key.curve.name


def test_the_ad_hoc_certificate_verifies_for_every_loopback_name(
    demo_server: Server,
) -> None:
    """As a client that checks names (amfora, Go's crypto/tls) sees it, with
    the certificate trusted as itself: the capsule answers to every loopback
    name, and its certificate is valid for each."""
    der = served_certificate(demo_server)
    served = x509.load_der_x509_certificate(der)
    assert [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ] == list(
        served.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    )
    checked = []
    for name in ("localhost", "127.0.0.1", "::1", "example.org"):
        context = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
        try:
            with (
                socket.create_connection(("127.0.0.1", demo_server.port)) as sock,
                context.wrap_socket(sock, server_hostname=name),
            ):
                checked.append((name, "valid"))
        except ssl.SSLCertVerificationError as error:
            checked.append((name, error.verify_message))
    assert [
        ("localhost", "valid"),
        ("127.0.0.1", "valid"),
        ("::1", "valid"),
        (
            "example.org",
            "Hostname mismatch, certificate is not valid for 'example.org'.",
        ),
    ] == checked
