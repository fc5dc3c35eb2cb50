"""The CGI bridge in a real ``jetforce-sesh`` process: the visit counter served
in-process, as a Python CGI script and as a C CGI program, one count among the
three; the socket file's checks; and hostile bytes on the socket while players
play over real TLS."""

from __future__ import annotations

import datetime
import grp
import os
import random
import re
import resource
import shutil
import socket
import stat
import statistics
import struct
import subprocess
import sys
import time
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
    # The checkout's client beside it, as the how-to says to deploy it: the
    # CGI environment carries no PYTHONPATH, and the copy installed in
    # site-packages may be another version's.
    shutil.copy(ROOT / "sesh_bridge.py", cgi / "sesh_bridge.py")
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
            # This test process plays many CGI programs at once.
            "--bridge-max-per-process",
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


# -- the trust model: what the server knows of the certificate -----------------


def test_an_expired_certificate_gets_62_through_the_routes_and_both_cgi_programs(
    bridged: Server, make_cert: MakeCert
) -> None:
    """The reproduction: the CGI counters counted a visit that /counter refused.
    Both clients pass the certificate's dates from the CGI environment, and the
    bridge refuses them as the route does."""
    now = datetime.datetime.now(datetime.UTC)
    expired = make_cert(
        "bridge-expired",
        not_before=now - datetime.timedelta(days=30),
        not_after=now - datetime.timedelta(days=1),
    )
    answers = [bridged.request(path, expired) for path in PATHS]
    day = (now - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    refusal = f"Your certificate expired on {day}: make a new one"
    assert [(62, refusal)] * len(PATHS) == [(a.status, a.meta) for a in answers]
    # Nothing was stored for it, by any of them.
    with sesh_bridge.connect("visits", 16, socket_of(bridged)) as bridge:
        assert 0 == bridge.peek(expired.tls_client_hash).version


# -- bounds --------------------------------------------------------------------


def test_the_socket_queues_as_many_connections_as_the_gemini_port(
    bridged: Server,
) -> None:
    if shutil.which("ss") is None:
        pytest.skip("no ss(8) to read the listen backlog with")
    path = socket_of(bridged)
    listed = subprocess.run(
        ["ss", "-xlH", "src", path], capture_output=True, text=True, check=True
    ).stdout.split()
    # ss shows a listening socket's backlog as its Send-Q.
    assert ["u_str", "LISTEN", "0", "1024", path] == listed[:5]


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_players_are_served_as_usual_while_a_local_client_misbehaves(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    """A client that selects correctly, then chains holds of a player's turn,
    pipelines, never reads its replies and opens a thousand connections, all
    at once: meanwhile that player's in-process visits and another player's C
    CGI visits (through the bridge) are answered as fast as before it began,
    and the server's memory stays put."""
    home = tmp_path
    where = str(home / "sesh.sock")
    server = Server(
        [
            "--app",
            "tests.apps.bridged_big:app",
            "--dir",
            str(capsule(home / "capsule")),
            "--bridge-socket",
            where,
            # A chain of holds is cut within a second or two, not ten.
            "--bridge-hold-budget",
            "1",
            "--bridge-hold-window",
            "600",
        ],
        drain=True,
    )
    victim, other = make_cert("bridge-victim"), make_cert("bridge-cgi-player")

    def visits(rounds: int) -> dict[str, list[tuple[int, float]]]:
        timed: dict[str, list[tuple[int, float]]] = {"route": [], "cgi": []}
        for _ in range(rounds):
            for name, path, player in (
                ("route", "/counter", victim),
                ("cgi", "/cgi-bin/counter.cgi", other),
            ):
                start = time.perf_counter()
                status = server.request(path, player, timeout=30).status
                timed[name].append((status, time.perf_counter() - start))
        return timed

    hostile = None
    try:
        before = visits(20)
        memory = rss(server.process.pid)
        hostile = subprocess.Popen(
            [sys.executable, str(HOSTILE), where, victim.tls_client_hash],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert hostile.stdout is not None
        found = {}
        while len(found) < 5:
            line = hostile.stdout.readline()
            assert line, f"the hostile client stopped after {found}"
            name, _, what = line.strip().partition(": ")
            assert "timeout" != name, what
            found[name] = what
        during = visits(20)
        grown = rss(server.process.pid) - memory
    finally:
        if hostile is not None:
            hostile.communicate(timeout=30)
        server.stop()
    assert (
        "K K then Ea message before the reply to the last: send one at a time"
        == (found["pipeline"])
    )
    assert found["refused"].startswith(
        "user " + str(os.getuid()) + "'s programs held this player's turn for 1 s"
    )
    assert found["unread"].startswith("the server stopped reading after")
    # Its own process's cap turns the flood away; the CGI player's programs,
    # processes of their own, still get in.
    turned_away = int(found["flood"].split()[2])
    assert turned_away >= 990
    for name in ("route", "cgi"):
        usual = statistics.median(seconds for _, seconds in before[name])
        seconds = [seconds for _, seconds in during[name]]
        assert [20] * 20 == [status for status, _ in during[name]], name
        assert statistics.median(seconds) <= 2 * usual + 0.05, (name, usual, seconds)
        assert max(seconds) < 2.0, (name, seconds)
    assert grown < 64 * 2**20


HOSTILE = Path(__file__).resolve().parent / "hostile_bridge_client.py"


# -- the bounds' settings at start-up ---------------------------------------------


def test_a_bridge_setting_without_a_socket_stops_start_up() -> None:
    assert (
        "jetforce-sesh: error: --bridge-max-connections needs --bridge-socket:"
        " without it there is no bridge to set it for"
        == fails_to_start("--bridge-max-connections", "10")
    )


def test_a_bridge_setting_out_of_range_stops_start_up(tmp_path: Path) -> None:
    assert (
        "jetforce-sesh: error: argument --bridge-max-per-process: bridge"
        " connections per process must be a whole number from 1 to 65536 (got"
        " 'many'): use e.g. 8 (--bridge-max-per-process 8)"
        == fails_to_start(
            "--bridge-socket",
            str(tmp_path / "s.sock"),
            "--bridge-max-per-process",
            "many",
        )
    )


def test_more_bridge_connections_than_descriptors_allow_stops_start_up(
    tmp_path: Path,
) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert (
        f"jetforce-sesh: error: --bridge-max-connections {soft}: this process may"
        f" open {soft} files (ulimit -n), and bridge connections may take at most"
        f" half of them, so that players can still connect: lower it to"
        f" {soft // 2}, or raise ulimit -n"
        == fails_to_start(
            "--bridge-socket",
            str(tmp_path / "s.sock"),
            "--bridge-max-connections",
            str(soft),
        )
    )


def test_a_socket_restricted_to_some_slabs_serves_only_those(
    tmp_path: Path,
) -> None:
    where = str(tmp_path / "s.sock")
    assert (
        f"jetforce-sesh: error: --bridge-socket {where}: --bridge-slabs names"
        f" 'scores', which is no slab of this capsule; its slabs with a layout"
        f" are: blobs, visits"
        == fails_to_start(
            "--app",
            "tests.apps.bridged_big:app",
            "--bridge-socket",
            where,
            "--bridge-slabs",
            "visits,scores",
            cwd=ROOT,
        )
    )
    server = Server(
        [
            "--app",
            "tests.apps.bridged_big:app",
            "--bridge-socket",
            where,
            "--bridge-slabs",
            "visits",
        ],
        cwd=ROOT,
    )
    try:
        with (
            sesh_bridge.connect("blobs", 65536, where) as bridge,
            pytest.raises(sesh_bridge.ProtocolError) as refused,
        ):
            bridge.peek("ab" * 32)
        assert (
            "no slab 'blobs' is served over the bridge; these are: visits (only the"
            " slabs --bridge-slabs names are)" == str(refused.value)
        )
    finally:
        server.stop()
