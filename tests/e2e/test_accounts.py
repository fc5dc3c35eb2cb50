"""Accounts over real TLS with three real certificates: link two, play from both,
revoke one, and the third never sees the others' records; the link made on one
server survives a restart with --state-dir; the bridge follows the links."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import sesh_bridge
from tests.support import AGUNUA, MakeCert, Reply, Server, serve, visit_count

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("accounts")
    yield from serve(["--bridge-socket", str(home / "sesh.sock")])


def code_of(reply: Reply) -> str:
    found = re.search(r"^> ([0-9A-Z]{4}-[0-9A-Z]{4})$", reply.body, re.M)
    assert found is not None, reply.body
    return found.group(1)


def test_two_linked_certificates_count_together_and_a_third_stays_apart(
    demo: Server, make_cert: MakeCert
) -> None:
    laptop, phone, stranger = (make_cert(f"acct-{n}") for n in ("laptop", "phone", "x"))
    assert [1, 2] == [visit_count(demo.request("/counter", laptop)) for _ in "ab"]
    code = code_of(demo.request("/account/code", laptop))
    linked = demo.request("/account/link", phone, query=code.lower())
    assert "Linked. This certificate now shares the account's records" in linked.body
    counts = [
        visit_count(demo.request("/counter", who)) for who in (phone, laptop, phone)
    ]
    assert [3, 4, 5] == counts
    assert 1 == visit_count(demo.request("/counter", stranger))
    # The stranger cannot use the spent code.
    again = demo.request("/account/link", stranger, query=code)
    assert (10, f"No live code {code}:") == (again.status, again.meta[:23])
    # Revoke the phone from the laptop: it starts afresh, the laptop keeps 5.
    prefix = phone.fingerprint.hex()[:16]
    page = demo.request("/account", laptop)
    assert f"=> /account/revoke/{prefix} Revoke this certificate" in page.body
    demo.request(f"/account/revoke/{prefix}", laptop, query="yes")
    assert 1 == visit_count(demo.request("/counter", phone))
    assert 6 == visit_count(demo.request("/counter", laptop))


def test_the_bridge_reads_the_account_a_certificate_belongs_to(
    demo: Server, make_cert: MakeCert
) -> None:
    desk, tablet = make_cert("acct-desk"), make_cert("acct-tablet")
    demo.request("/counter", desk)
    code = code_of(demo.request("/account/code", desk))
    demo.request("/account/link", tablet, query=code)
    found = re.search(r"CGI programs reach the records at (\S+)", "".join(demo.output))
    assert found is not None
    with sesh_bridge.session(tablet.tls_client_hash, "visits", "<QQ", found[1]) as f:
        f[0] += 1
    assert 3 == visit_count(demo.request("/counter", desk))


def test_agunua_follows_the_help_and_account_pages(
    demo: Server, make_cert: MakeCert
) -> None:
    walker = make_cert("acct-agunua")
    base = f"gemini://localhost:{demo.port}"
    agunua = [
        AGUNUA,
        "--no-tofu",
        "-c",
        str(walker.cert_path),
        "-k",
        str(walker.key_path),
    ]
    helped = subprocess.run(
        [AGUNUA, "--no-tofu", f"{base}/account/help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    page = subprocess.run(
        [*agunua, f"{base}/account"], capture_output=True, text=True, timeout=30
    )
    assert (0, 0) == (helped.returncode, page.returncode)
    assert helped.stdout.startswith("# Certificates and your account")
    assert "## acct-agunua (this certificate)" in page.stdout


def test_links_survive_a_restart_with_state_dir(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    first, second = make_cert("acct-kept-a"), make_cert("acct-kept-b")
    args = ["--state-dir", str(tmp_path / "state")]
    server = Server(args)
    try:
        server.request("/counter", first)
        code = code_of(server.request("/account/code", first))
        server.request("/account/link", second, query=code)
    finally:
        server.stop()
    server = Server(args)
    try:
        assert 2 == visit_count(server.request("/counter", second))
    finally:
        server.stop()
