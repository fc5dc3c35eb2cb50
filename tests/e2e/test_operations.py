"""Running in public, over real TLS with real certificates: ``/admin`` for the
admin's certificate only, the health path, the per-certificate rate limit, and
the figures logged at shutdown."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator

import pytest

from tests.support import MakeCert, Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(
    make_cert: MakeCert, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    admin = make_cert("ops-admin")
    running = Server(
        [
            *("--admin-cert", admin.tls_client_hash),
            *("--health-path", "/health"),
            *("--rate-limit-cert", "5/1m"),
            *("--state-dir", str(tmp_path_factory.mktemp("ops-state"))),
        ],
        drain=True,
    )
    try:
        yield running
    finally:
        running.stop()


def test_admin_is_for_the_admin_certificate_only(
    server: Server, make_cert: MakeCert
) -> None:
    none = server.request("/admin")
    other = server.request("/admin", make_cert("ops-other"))
    admin = server.request("/admin", make_cert("ops-admin"))
    assert [
        (60, "The admin pages need an admin's client certificate"),
        (61, "This certificate is not one of the capsule's admins'"),
        (20, "text/gemini"),
    ] == [(r.status, r.meta) for r in (none, other, admin)]
    assert admin.body.startswith("# Admin\n\n## Server\n\n* ")
    assert "### Visit counter (visits)" in admin.body
    assert admin.body.endswith(
        "## Actions\n\n=> /admin/drop Drop one player's record\n"
        "=> /admin/flush Write what the record files still owe\n"
    )


def test_without_the_flag_there_is_no_admin_page(
    demo_server: Server, make_cert: MakeCert
) -> None:
    reply = demo_server.request("/admin", make_cert("ops-admin"))
    assert (51, "Not Found") == (reply.status, reply.meta)


def test_the_admin_drops_a_player_s_record_found_by_its_start(
    server: Server, make_cert: MakeCert
) -> None:
    admin, player = make_cert("ops-admin"), make_cert("ops-dropped")
    first = "Welcome! This is your first visit. Come back and I will count."
    assert first == server.request("/counter", player).body.split("\n")[2]
    whole = player.fingerprint.hex()
    found = server.request("/admin/drop", admin, query=whole)
    (link,) = [
        line for line in found.body.splitlines() if line.startswith("=> /admin/")
    ]
    path = link.split()[1]
    # 16 hex digits, not the whole fingerprint: the access log shows every path.
    linked = player.fingerprint.hex()[:16]
    assert f"/admin/drop/visits/{linked}" == path
    # A link from elsewhere, answer and all, is sent to the admin's own.
    asked = server.request(path, admin, query="yes")
    assert 30 == asked.status and asked.meta.startswith(path + "/")
    prompt = server.request(asked.meta, admin)
    assert (10, f"Type yes to drop Visit counter's record of player {linked[:8]}") == (
        prompt.status,
        prompt.meta,
    )
    dropped = server.request(asked.meta, admin, query="yes")
    assert dropped.body.startswith("# Dropped\n")
    assert first == server.request("/counter", player).body.split("\n")[2]
    # The search's query was the whole fingerprint: no line of the log has it.
    assert whole not in "".join(server.output)
    assert f"admin {admin.fingerprint.hex()[:8]} dropped Visit counter's record" in (
        "".join(server.output)
    )


def test_the_admin_writes_what_the_files_owe_once_asked(
    server: Server, make_cert: MakeCert
) -> None:
    admin = make_cert("ops-admin")
    prefilled = server.request("/admin/flush", admin, query="yes")
    assert 30 == prefilled.status  # /admin/flush?yes in a link writes nothing
    asked = server.request(prefilled.meta, admin)
    assert (10, "Type yes to write now what the files of 13 slab(s) owe") == (
        asked.status,
        asked.meta,
    )
    assert server.request(prefilled.meta, admin, query="yes").body.startswith(
        "# Written\n\n13 slab(s) written: "
    )


def test_the_health_path_answers_anyone(server: Server) -> None:
    reply = server.request("/health")
    assert (20, "text/plain", "ok\n") == (reply.status, reply.meta, reply.body)


def test_one_certificate_over_its_rate_is_told_to_wait(
    server: Server, make_cert: MakeCert
) -> None:
    noisy, calm = make_cert("ops-noisy"), make_cert("ops-calm")
    # 5 a minute in fixed windows: 12 requests fill one window whatever the
    # moment they start.
    statuses = [server.request("/counter", noisy).status for _ in range(12)]
    refused = server.request("/counter", noisy)
    assert 44 in statuses and refused.status == 44
    assert refused.meta.isdigit() and 1 <= int(refused.meta) <= 60
    assert 20 == server.request("/counter", calm).status


def test_the_final_figures_are_logged_at_shutdown(make_cert: MakeCert) -> None:
    running = Server(["--app", "jetforce_sesh.games.counter:app"])
    running.request("/counter", make_cert("ops-last"))
    running.process.send_signal(signal.SIGTERM)
    status = running.process.wait(timeout=30)
    output = running.stop()
    final = [line.split("] ", 1)[1] for line in output.splitlines() if "final:" in line]
    assert 0 == status
    assert 2 == len(final)
    assert re.fullmatch(
        r"final: 1 requests \(1 2x\), [01]\.[0-9]{2}/s over the last minute", final[0]
    )
    assert final[1] == (
        "final: slab visits: 1/10000 records (948.3 KiB),"
        " 0 hits, 1 misses, 1 created, 0 evicted, 0 expired, 0 refused,"
        " 0 too large, 0 failed, 0 timed out"
    )
