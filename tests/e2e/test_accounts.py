"""Accounts over real TLS with real certificates: link two, play from both,
revoke one, and the third never sees the others' records; links and the
capsule's confirmation secret survive a restart with --state-dir; no code
reaches the access log, however the URL is spelt; the bridge follows the
links; and two processes on one Redis share the wrong-code counts, the codes
in flight and the secret."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

import sesh_bridge
from tests.redis_support import RedisServer
from tests.support import (
    AGUNUA,
    ClientCert,
    MakeCert,
    Reply,
    Server,
    serve,
    visit_count,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("accounts")
    yield from serve(["--bridge-socket", str(home / "sesh.sock")], drain=True)


def code_of(reply: Reply) -> str:
    found = re.search(r"^> ([0-9A-Z]{4}-[0-9A-Z]{4})$", reply.body, re.M)
    assert found is not None, reply.body
    return found.group(1)


def link_on(reply: Reply, label: str) -> str:
    """The path of the link labelled ``label`` on a page."""
    found = re.search(rf"^=> (\S+) {re.escape(label)}$", reply.body, re.M)
    assert found is not None, (label, reply.body)
    return found.group(1)


def make_code(server: Server, cert: ClientCert) -> str:
    """A link code, as a player makes one: the account page's link; when a
    code is live, the question whether to end it, answered yes."""
    page = server.request("/account", cert)
    made = server.request(link_on(page, "Make a link code"), cert)
    if "Your link code:" not in made.body:
        at = link_on(made, "Make a new link code (you are asked first)")
        made = server.request(at, cert, query="yes")
    return code_of(made)


def enter(
    server: Server, cert: ClientCert, code: str, confirm: str | None = "yes"
) -> Reply:
    """Enter ``code`` from ``cert`` at its own prompt, then answer ``confirm``."""
    page = server.request("/account", cert)
    at = link_on(page, "Enter a code from another certificate")
    asked = server.request(at, cert)
    assert 11 == asked.status, asked
    answered = server.request(at, cert, query=code)
    if answered.status != 30 or confirm is None:
        return answered
    return server.request(answered.meta, cert, query=confirm)


def test_two_linked_certificates_count_together_and_a_third_stays_apart(
    demo: Server, make_cert: MakeCert
) -> None:
    laptop, phone, stranger = (make_cert(f"acct-{n}") for n in ("laptop", "phone", "x"))
    assert [1, 2] == [visit_count(demo.request("/counter", laptop)) for _ in "ab"]
    code = make_code(demo, laptop)
    linked = enter(demo, phone, code.lower())
    assert "Linked. This certificate now shares the account's records" in linked.body
    counts = [
        visit_count(demo.request("/counter", who)) for who in (phone, laptop, phone)
    ]
    assert [3, 4, 5] == counts
    assert 1 == visit_count(demo.request("/counter", stranger))
    # The stranger cannot use the spent code.
    again = enter(demo, stranger, code)
    assert (11, "No live code like that") == (again.status, again.meta[:22])
    # Revoke the phone from the laptop: it starts afresh, the laptop keeps 5.
    prefix = phone.fingerprint.hex()[:16]
    page = demo.request("/account", laptop)
    at = link_on(page, "Revoke this certificate")
    assert at.startswith(f"/account/revoke/{prefix}/")
    assert 10 == demo.request(at, laptop).status
    assert "Revoked acct-phone" in demo.request(at, laptop, query="yes").body
    assert 1 == visit_count(demo.request("/counter", phone))
    assert 6 == visit_count(demo.request("/counter", laptop))


def test_no_link_code_reaches_the_access_log_by_any_spelling(
    demo: Server, make_cert: MakeCert
) -> None:
    """``link_code_in_access_log.py``: a code in a URL of any spelling of the
    code route, or typed with a stray character at the prompt, is in no line
    the server writes; and a code taken from a link is never parked."""
    owner, newdev, reader = (make_cert(f"acct-log-{n}") for n in ("o", "n", "r"))
    demo.request("/counter", newdev)
    codes = []
    for spelling in ("/account/link/", "/account/%6Cink", "/account/link//"):
        code = make_code(demo, owner)
        codes.append(code)
        reply = demo.request(spelling, newdev, query=code)
        assert 20 == reply.status
        assert "A link asked to enter a link code." in reply.body
    # A stray character: asked again, the code not written back.
    page = demo.request("/account", newdev)
    at = link_on(page, "Enter a code from another certificate")
    code = make_code(demo, owner)
    codes.append(code)
    typo = demo.request(at, newdev, query=f"{code}.")
    assert 11 == typo.status and code not in typo.meta
    # Nothing parked: whoever reads the log has nothing to enter.
    assert "Nothing to link" in demo.request("/account/join", newdev).body
    logged = "".join(demo.output)
    for code in codes:
        assert code not in logged and code.replace("-", "") not in logged
    hidden = re.findall(r'"gemini://[^"]*(/account/[^"?]*)\?\(hidden\)"', logged)
    assert {"/account/link/", "/account/%6Cink", "/account/link//"} <= set(hidden)
    assert "acct-log-r" not in demo.request("/account", owner).body
    assert reader is not None


def test_the_bridge_reads_the_account_a_certificate_belongs_to(
    demo: Server, make_cert: MakeCert
) -> None:
    desk, tablet = make_cert("acct-desk"), make_cert("acct-tablet")
    demo.request("/counter", desk)
    assert "Linked." in enter(demo, tablet, make_code(demo, desk)).body
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


def test_links_and_the_secret_survive_a_restart_with_state_dir(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    first, second = make_cert("acct-kept-a"), make_cert("acct-kept-b")
    args = ["--state-dir", str(tmp_path / "state")]
    server = Server(args)
    try:
        server.request("/counter", first)
        assert "Linked." in enter(server, second, make_code(server, first)).body
        shown = link_on(server.request("/account", first), "Print new recovery codes")
    finally:
        server.stop()
    server = Server(args)
    try:
        assert 2 == visit_count(server.request("/counter", second))
        # A link shown before the restart is still the player's own.
        assert 10 == server.request(shown, first).status
    finally:
        server.stop()


# -- several processes on one Redis ------------------------------------------------


@pytest.fixture(scope="module")
def pair(redis_server: RedisServer) -> Iterator[tuple[Server, Server]]:
    """Two processes of the demo capsule on one Redis."""
    args = ["--store", redis_server.url, "--store-prefix", "e2e-accounts"]
    first = Server(args, drain=True)
    try:
        second = Server(args, drain=True)
        try:
            yield first, second
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_wrong_code_limit_holds_across_two_processes(
    pair: tuple[Server, Server], make_cert: MakeCert
) -> None:
    """Five wrong codes per certificate in all, whichever process each went
    to; and the prompt's link, made by one process, is good on the other."""
    guesser = make_cert("acct-redis-guesser")
    page = pair[0].request("/account", guesser)
    at = link_on(page, "Enter a code from another certificate")
    statuses = [
        pair[n % 2].request(at, guesser, query="ABCD-2345").status for n in range(8)
    ]
    assert [11, 11, 11, 11, 11, 44, 44, 44] == statuses
    waits = [pair[n].request(at, guesser, query="ABCD-2345").meta for n in (0, 1)]
    assert all(850 <= int(wait) <= 900 for wait in waits), waits


def test_a_code_entered_on_one_process_is_confirmed_on_the_other(
    pair: tuple[Server, Server], make_cert: MakeCert
) -> None:
    owner, phone = make_cert("acct-redis-owner"), make_cert("acct-redis-phone")
    pair[0].request("/counter", owner)
    code = make_code(pair[1], owner)
    page = pair[0].request("/account", phone)
    at = link_on(page, "Enter a code from another certificate")
    asked = pair[1].request(at, phone, query=code)
    assert 30 == asked.status
    assert 10 == pair[0].request(asked.meta, phone).status
    assert "Linked." in pair[1].request(asked.meta, phone, query="yes").body
    assert 2 == visit_count(pair[0].request("/counter", phone))
