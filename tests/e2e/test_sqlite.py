"""Records kept in ``--state-dir`` across real server processes: a clean stop, a
``kill -9`` under load, a second server on the same directory, a damaged file,
and ``export``/``import`` into a new directory.

Every server is ``python -m jetforce_sesh`` on port 0, serving the visit counter
over real TLS to clients with real certificates.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from random import Random

import pytest

from tests.support import (
    ClientCert,
    MakeCert,
    Reply,
    Server,
    gemini_request,
    visit_count,
)

pytestmark = pytest.mark.e2e

APP = "jetforce_sesh.games.counter:app"
FILE = "visits.sqlite3"
LOCK = "jetforce-sesh.lock"
#: ``jetforce-sesh``, from this Python.
COMMAND = [sys.executable, "-m", "jetforce_sesh"]


def start(state: Path, *more: str) -> Server:
    return Server(["--app", APP, "--state-dir", str(state), *more])


def visit(server: Server, player: ClientCert) -> int:
    return visit_count(server.request("/counter", player))


def stop_cleanly(
    server: Server, how: signal.Signals = signal.SIGTERM
) -> tuple[int, str]:
    """SIGTERM, as a service manager stops a server (or SIGINT, as Ctrl-C
    does): its exit status and output."""
    server.process.send_signal(how)
    try:
        status = server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # Say what the server was doing rather than leave it running.
        raise AssertionError(
            f"no exit 30 s after {how.name}:\n{server.stop()}"
        ) from None
    return status, server.stop()


def names_in(state: Path) -> list[str]:
    return sorted(path.name for path in state.iterdir())


@pytest.mark.parametrize(
    "sync, how",
    [
        ("normal", signal.SIGTERM),
        ("full", signal.SIGTERM),
        ("normal", signal.SIGINT),
    ],
)
def test_counts_continue_after_a_clean_stop_and_restart(
    make_cert: MakeCert, tmp_path: Path, sync: str, how: signal.Signals
) -> None:
    ann, ben = make_cert("persist-ann"), make_cert("persist-ben")
    state = tmp_path / "state"
    server = start(state, "--sync", sync)
    try:
        assert [1, 2, 3, 1] == [
            visit(server, ann),
            visit(server, ann),
            visit(server, ann),
            visit(server, ben),
        ]
    finally:
        status, output = stop_cleanly(server, how)
    assert 0 == status
    assert (
        f"Records are kept in {state} (synchronous={sync}): they survive restarts.\n"
    ) in output.splitlines(keepends=True)
    # Closed cleanly: the write-ahead log is all in the database file.
    assert [LOCK, FILE] == names_in(state)
    server = start(state, "--sync", sync)
    try:
        assert [4, 2] == [visit(server, ann), visit(server, ben)]
    finally:
        stop_cleanly(server)


class Tally:
    """What the clients of one server's life saw, per player: the highest count
    a ``20`` reply reported, and the requests sent whose reply never came."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.answered = dict(counts)
        self.in_flight = dict.fromkeys(counts, 0)
        self.replies = 0
        self.statuses: set[int] = set()
        self.changed = threading.Condition()

    def got(self, player: str, reply: Reply) -> None:
        with self.changed:
            self.statuses.add(reply.status)
            if reply.status == 20:
                self.answered[player] = max(self.answered[player], visit_count(reply))
            self.replies += 1
            self.changed.notify_all()

    def lost(self, player: str) -> None:
        with self.changed:
            self.in_flight[player] += 1

    def wait_for(self, replies: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.replies >= replies, 30)


def hammer(port: int, player: ClientCert, tally: Tally, stop: threading.Event) -> None:
    """Visit the counter again and again, until the server is gone."""
    while not stop.is_set():
        try:
            reply = gemini_request(port, "/counter", player, timeout=10)
        except ConnectionRefusedError:
            return  # never reached the server
        except (OSError, ValueError):
            # Sent, and the server died before answering (ValueError: the
            # connection closed with no header at all).
            tally.lost(player.name)
            return
        tally.got(player.name, reply)


def test_a_kill_9_under_load_keeps_every_answered_visit(
    make_cert: MakeCert, tmp_path: Path
) -> None:
    """Three times: clients hammer the counter, the server is killed at a
    moment drawn from a seeded Random, and restarted on the same directory.
    Each player's count is then at least the highest one answered 20, and at
    most that plus the visits whose reply was lost."""
    moments = Random(1965)
    players = [make_cert(f"persist-crash-{n}") for n in range(3)]
    state = tmp_path / "state"
    counts = {player.name: 0 for player in players}
    outcomes: list[tuple[int, int, int]] = []
    lost = 0
    server = start(state)
    try:
        for _ in range(3):
            tally = Tally(counts)
            stop = threading.Event()
            clients = [
                threading.Thread(target=hammer, args=(server.port, p, tally, stop))
                for p in players
                for _ in range(2)
            ]
            for client in clients:
                client.start()
            tally.wait_for(moments.randrange(20, 150))
            server.process.send_signal(signal.SIGKILL)
            stop.set()
            for client in clients:
                client.join(timeout=30)
            assert -signal.SIGKILL == server.process.wait(timeout=30)
            server.stop()
            assert {20} == tally.statuses
            lost += sum(tally.in_flight.values())
            server = start(state)
            for player in players:
                now = visit(server, player)
                stored = now - 1
                answered = tally.answered[player.name]
                in_flight = tally.in_flight[player.name]
                outcomes.append((answered, stored, answered + in_flight))
                counts[player.name] = now
    finally:
        server.stop()
    assert [] == [
        (low, stored, high)
        for low, stored, high in outcomes
        if not low <= stored <= high
    ]
    assert lost > 0, "no request was in flight when the server was killed"


def test_a_second_server_on_the_same_state_dir_exits_2_naming_the_first(
    make_cert: MakeCert, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    server = start(state)
    try:
        second = subprocess.run(
            [*COMMAND, "--port", "0", "--app", APP, "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # The first one serves on, untouched.
        assert 1 == visit(server, make_cert("persist-first"))
    finally:
        stop_cleanly(server)
    assert (
        2,
        "",
        f"jetforce-sesh: error: --state-dir: state directory {str(state)!r} is in"
        f" use by another server (pid {server.process.pid}): stop it, or give"
        f" another directory\n",
    ) == (second.returncode, second.stdout, second.stderr)


def test_a_damaged_slab_file_is_moved_aside_with_one_warning_and_the_server_serves(
    make_cert: MakeCert, tmp_path: Path
) -> None:
    ann = make_cert("persist-damaged")
    state = tmp_path / "state"
    server = start(state)
    try:
        assert [1, 2] == [visit(server, ann), visit(server, ann)]
    finally:
        stop_cleanly(server)
    path = state / FILE
    raw = bytearray(path.read_bytes())
    page_size = int.from_bytes(raw[16:18], "big")
    db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    [(root,)] = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'records'")
    db.close()
    at = (root - 1) * page_size  # the records' page header: SQLite refuses it
    raw[at : at + 16] = bytes(b ^ 0xFF for b in raw[at : at + 16])
    path.write_bytes(raw)
    server = start(state)
    try:
        assert 1 == visit(server, ann)  # the record was on the damaged page
    finally:
        status, output = stop_cleanly(server)
    [moved] = [
        name for name in names_in(state) if re.fullmatch(r".*\.bad-\d+T\d+", name)
    ]
    warnings = [line for line in output.splitlines() if "#warn]" in line]
    assert 1 == len(warnings), output
    assert re.fullmatch(
        r"\S+ \[jetforce_sesh\.stores\.sqlite\.\w+#warn\] "
        + re.escape(
            f"{path} cannot be read (database disk image is malformed): moved to"
            f" {moved}; 0 records that check out are loaded from it"
        )
        + r"; versions go on from \d{14}",
        warnings[0],
    ), warnings[0]
    assert bytes(raw) == (state / moved).read_bytes()
    assert (0, False) == (status, "Traceback" in output)


def test_export_then_import_into_a_new_directory_shows_the_same_counts(
    make_cert: MakeCert, tmp_path: Path
) -> None:
    ann, ben = make_cert("persist-export-ann"), make_cert("persist-export-ben")
    old, new = tmp_path / "old", tmp_path / "new"
    server = start(old)
    try:
        assert [1, 2, 1] == [visit(server, ann), visit(server, ann), visit(server, ben)]
    finally:
        stop_cleanly(server)
    exported = subprocess.run(
        [*COMMAND, "export", "--state-dir", str(old), "--app", APP],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (0, "exported 2 records\n", 2) == (
        exported.returncode,
        exported.stderr,
        len(exported.stdout.splitlines()),
    )
    imported = subprocess.run(
        [*COMMAND, "import", "--state-dir", str(new), "--app", APP],
        input=exported.stdout,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (0, "imported 2 records\n", "") == (
        imported.returncode,
        imported.stderr,
        imported.stdout,
    )
    server = start(new)
    try:
        assert [3, 2] == [visit(server, ann), visit(server, ben)]
    finally:
        stop_cleanly(server)
