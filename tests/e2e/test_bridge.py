"""The CGI bridge in a real ``jetforce-sesh`` process: the visit counter served
in-process, as a Python CGI script and as a C CGI program, one count among the
three; the socket file's checks; and hostile bytes on the socket while players
play over real TLS."""

from __future__ import annotations

import grp
import os
import random
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import sesh_bridge
from tests.support import MakeCert, Server, serve, visit_count

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "jetforce_sesh"]
PATHS = (
    "/counter",
    "/counter/slow",
    "/cgi-bin/counter.py",
    "/cgi-bin/counter.cgi",
)


def capsule(directory: Path) -> Path:
    """A --dir holding both example CGI counters, the C one compiled."""
    cgi = directory / "cgi-bin"
    cgi.mkdir(parents=True)
    script = (ROOT / "examples" / "cgi-bin" / "counter.py").read_text()
    python = cgi / "counter.py"
    # The interpreter that has sesh_bridge installed, as a capsule's own would.
    python.write_text(script.replace("/usr/bin/env python3", sys.executable, 1))
    python.chmod(0o755)
    subprocess.run(
        [
            shutil.which("cc") or "gcc",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            f"-I{ROOT / 'clients' / 'c'}",
            "-o",
            str(cgi / "counter.cgi"),
            str(ROOT / "examples" / "cgi-bin" / "counter.c"),
            str(ROOT / "clients" / "c" / "sesh_bridge.c"),
        ],
        check=True,
    )
    return directory


@pytest.fixture(scope="module")
def bridged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("bridge")
    yield from serve(
        [
            "--app",
            "tests.apps.bridged_counter:app",
            "--dir",
            str(capsule(home / "capsule")),
            "--bridge-socket",
            str(home / "sesh.sock"),
            # Every request of the test's one player may wait its turn at once.
            "--max-queued",
            "64",
        ]
    )


def socket_of(server: Server) -> str:
    found = re.search(
        r"CGI programs reach the records at (\S+)", "".join(server.output)
    )
    assert found is not None
    return found.group(1)


def test_one_certificate_counts_up_across_routes_python_cgi_and_c_cgi(
    bridged: Server, make_cert: MakeCert
) -> None:
    player = make_cert("bridge-walker")
    counts = [visit_count(bridged.request(path, player)) for path in PATHS * 2]
    assert [1, 2, 3, 4, 5, 6, 7, 8] == counts


def test_300_concurrent_visits_split_four_ways_are_each_counted(
    bridged: Server, make_cert: MakeCert
) -> None:
    """In-process (a sync handler, and an async one that waits between its read
    and its write), a Python CGI and a C CGI, all at once on one record."""
    player = make_cert("bridge-crowd")
    paths = [PATHS[i % len(PATHS)] for i in range(300)]
    random.Random(7).shuffle(paths)
    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(lambda path: bridged.request(path, player), paths))
    assert [20] * 300 == [reply.status for reply in replies]
    # Every visit saw a count of its own: none read the same record twice.
    assert list(range(1, 301)) == sorted(visit_count(reply) for reply in replies)
    assert 301 == visit_count(bridged.request("/counter", player))


def test_the_cgi_programs_find_the_socket_in_their_environment(
    bridged: Server,
) -> None:
    path = socket_of(bridged)
    assert path.endswith("/sesh.sock")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_garbage_on_the_socket_changes_nothing_while_players_play(
    bridged: Server, make_cert: MakeCert
) -> None:
    player = make_cert("bridge-bystander")
    path = socket_of(bridged)
    shuffle = random.Random(11)

    def garbage(_: int) -> bytes:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(path)
            junk = bytes(shuffle.randrange(256) for _ in range(shuffle.randrange(64)))
            sock.sendall(struct.pack("!I", len(junk)) + junk)
            return sock.recv(4096)

    def play(_: int) -> int:
        return visit_count(bridged.request("/counter", player))

    with ThreadPoolExecutor(max_workers=8) as pool:
        attacks = pool.map(garbage, range(60))
        visits = pool.map(play, range(20))
        answers = list(attacks)
        counted = sorted(visits)
    # Each got an error reply (E), before the server closed the connection.
    assert {b"E"} == {answer[4:5] for answer in answers}
    assert list(range(1, 21)) == counted
    with sesh_bridge.connect("visits", 16, path) as bridge:
        fields = struct.unpack("<QQ", bridge.peek(player.tls_client_hash).data)
    assert (20, 20) == fields


# -- start-up ------------------------------------------------------------------


def fails_to_start(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [*COMMAND, "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert 2 == done.returncode, done.stdout + done.stderr
    return done.stderr.strip()


def test_a_missing_directory_stops_start_up(tmp_path: Path) -> None:
    where = tmp_path / "nowhere" / "sesh.sock"
    assert (
        f"jetforce-sesh: error: --bridge-socket {where}: {str(where)!r}: directory"
        f" {where.parent} does not exist: create it, or choose another path"
        == fails_to_start("--bridge-socket", str(where))
    )


def test_a_file_that_is_not_a_socket_stops_start_up(tmp_path: Path) -> None:
    where = tmp_path / "sesh.sock"
    where.write_text("notes")
    assert (
        f"jetforce-sesh: error: --bridge-socket {where}: {str(where)!r} exists and is"
        f" not a socket: remove it, or choose another path"
        == fails_to_start("--bridge-socket", str(where))
    )
    assert "notes" == where.read_text()


def test_a_socket_another_server_answers_on_stops_start_up(tmp_path: Path) -> None:
    where = tmp_path / "sesh.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(where))
        live.listen()
        assert (
            f"jetforce-sesh: error: --bridge-socket {where}: {str(where)!r}: another"
            f" server answers on this socket: stop it, or choose another path"
            == fails_to_start("--bridge-socket", str(where))
        )


def test_a_capsule_with_no_layout_slab_stops_start_up(tmp_path: Path) -> None:
    assert (
        f"jetforce-sesh: error: --bridge-socket {tmp_path}/s.sock: no slab has a"
        f" fixed layout, so the bridge would serve nothing: declare one with"
        f" app.slab(Record, layout='<Q'), or leave --bridge-socket out"
        == fails_to_start(
            "--app",
            "jetforce_sesh.games.guess:app",
            "--bridge-socket",
            str(tmp_path / "s.sock"),
        )
    )


def test_an_unknown_group_stops_start_up(tmp_path: Path) -> None:
    assert (
        f"jetforce-sesh: error: --bridge-socket {tmp_path}/s.sock: no group"
        f" 'no-such-group' on this machine: name an existing group (see /etc/group)"
        == fails_to_start(
            "--bridge-socket",
            str(tmp_path / "s.sock"),
            "--bridge-group",
            "no-such-group",
        )
    )


def test_a_group_without_a_socket_stops_start_up() -> None:
    assert (
        "jetforce-sesh: error: --bridge-group staff needs --bridge-socket: there is no"
        " bridge socket to give the group" == fails_to_start("--bridge-group", "staff")
    )


def test_a_stale_socket_is_replaced_and_a_group_gets_mode_0660(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    where = tmp_path / "sesh.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(where))  # left behind, as by a server killed with -9
    group = grp.getgrgid(os.getgid()).gr_name
    server = Server(["--bridge-socket", str(where), "--bridge-group", group])
    try:
        info = os.stat(where)
        assert (0o660, os.getgid()) == (stat.S_IMODE(info.st_mode), info.st_gid)
        with sesh_bridge.connect("visits", 16, str(where)) as bridge:
            assert 0 == bridge.peek(make_cert("bridge-stale").tls_client_hash).version
    finally:
        server.stop()
    # A clean stop takes the socket away with it.
    assert not where.exists()


# -- the Python client against the real server ---------------------------------


def test_transact_runs_the_change_again_on_the_record_another_writer_left(
    bridged: Server, make_cert: MakeCert
) -> None:
    path = socket_of(bridged)
    player = make_cert("bridge-transact").tls_client_hash
    seen: list[int] = []

    def change(fields: list[int]) -> None:
        seen.append(fields[0])
        if len(seen) == 1:
            # Another writer gets in between this read and its write.
            with sesh_bridge.connect("visits", 16, path) as other:
                found = other.peek(player)
                other.compare_and_set(player, found.version, struct.pack("<QQ", 40, 40))
        fields[0] += 1

    assert [41, 40] == sesh_bridge.transact(player, "visits", "<QQ", change, path)
    assert [0, 40] == seen


def test_a_session_block_that_raises_writes_nothing(
    bridged: Server, make_cert: MakeCert
) -> None:
    path = socket_of(bridged)
    player = make_cert("bridge-raises").tls_client_hash
    with (
        pytest.raises(ZeroDivisionError),
        sesh_bridge.session(player, "visits", "<QQ", path) as fields,
    ):
        fields[0] = 99
        fields[0] //= 0
    # The turn went with the connection: the next session does not wait.
    with sesh_bridge.session(player, "visits", "<QQ", path) as fields:
        assert [0, 0] == fields


def test_the_python_client_names_what_went_wrong(
    bridged: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = socket_of(bridged)
    with (
        sesh_bridge.connect("visits", 8, path) as bridge,
        pytest.raises(sesh_bridge.ProtocolError) as wrong,
    ):
        bridge.peek("ab" * 32)
    assert (
        "slab 'visits' has 16-byte records (layout '<QQ'), not 8: use that record"
        " size" == str(wrong.value)
    )
    with pytest.raises(sesh_bridge.Unavailable) as missing:
        sesh_bridge.connect("visits", 16, str(tmp_path / "none.sock"))
    assert str(missing.value).startswith(
        f"cannot reach the bridge at {tmp_path / 'none.sock'}: [Errno 2]"
    )
    monkeypatch.delenv(sesh_bridge.SOCKET_VARIABLE, raising=False)
    with pytest.raises(sesh_bridge.Unavailable) as unset:
        sesh_bridge.connect("visits", 16)
    assert (
        "no bridge socket: SESH_BRIDGE_SOCKET is not set (run under jetforce-sesh"
        " --bridge-socket) and no path was given" == str(unset.value)
    )
    monkeypatch.setenv(sesh_bridge.SOCKET_VARIABLE, path)
    with sesh_bridge.connect("visits", 16, "/elsewhere.sock") as bridge:
        assert 0 == bridge.peek("cd" * 32).version


def test_records_written_over_the_bridge_survive_a_restart_with_state_dir(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    player = make_cert("bridge-persist")
    where = str(tmp_path / "sesh.sock")
    args = ["--state-dir", str(tmp_path / "state"), "--bridge-socket", where]
    first = Server(args)
    try:
        with sesh_bridge.session(player.tls_client_hash, "visits", "<QQ", where) as f:
            f[:] = [7, 7]
    finally:
        first.stop()
    second = Server(args)
    try:
        assert 8 == visit_count(second.request("/counter", player))
    finally:
        second.stop()
