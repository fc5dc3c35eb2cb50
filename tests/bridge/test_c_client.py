"""The bridge's C client and the C CGI counter, compiled here and run against the
real launcher's bridge socket (docs/reference/bridge.md)."""

from __future__ import annotations

import re
import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
import pytest

from tests.support import REPO, MakeCert, Server

CC = shutil.which("cc") or "gcc"
STRICT = [
    "-std=c99",
    "-D_POSIX_C_SOURCE=200809L",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
]
CLIENT = REPO / "clients" / "c"
COUNTER = REPO / "examples" / "cgi-bin" / "counter.c"
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
#: A player and another, as Jetforce's TLS_CLIENT_HASH spells them.
ANN = "SHA256:" + "A1" * 32
BEN = "SHA256:" + "B2" * 32


def compile_c(output: Path, *sources: Path, flags: Sequence[str] = ()) -> str:
    """Compile with the strict flags; return the compiler's complaints."""
    done = subprocess.run(
        [CC, *STRICT, *flags, f"-I{CLIENT}", "-o", str(output), *map(str, sources)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return f"exit status {done.returncode}: {done.stderr}" if done.returncode else ""


@attrs.frozen
class Run:
    """What a C program printed, and how it ended."""

    stdout: str
    stderr: str
    status: int


@attrs.frozen
class Built:
    """The programs, compiled once for the module, and how to run them."""

    counter: Path
    calls: Path
    driver: Path
    sanitized: bool

    def run(self, program: Path, env: dict[str, str], *args: str) -> Run:
        if self.sanitized:
            env = {
                **env,
                "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0",
                "UBSAN_OPTIONS": "print_stacktrace=1",
            }
        done = subprocess.run(
            [str(program), *args], env=env, capture_output=True, timeout=30
        )
        # Bytes decoded by hand: text mode would turn the status line's CRLF to LF.
        return Run(done.stdout.decode(), done.stderr.decode(), done.returncode)


def sanitizers_work(directory: Path) -> bool:
    """Whether this machine builds and runs an address-sanitized program."""
    source = directory / "probe.c"
    source.write_text("int main(void) { return 0; }\n")
    if compile_c(directory / "probe", source, flags=SANITIZERS):
        return False
    probe = subprocess.run(
        [str(directory / "probe")], capture_output=True, text=True, timeout=30
    )
    return (0, "") == (probe.returncode, probe.stderr)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    directory = tmp_path_factory.mktemp("bridge-c")
    sanitized = sanitizers_work(directory)
    flags = SANITIZERS if sanitized else ["-O2"]
    (directory / "calls.c").write_text(CALLS_C)
    (directory / "driver.c").write_text(DRIVER_C)
    programs = {
        "counter": COUNTER,
        "calls": directory / "calls.c",
        "driver": directory / "driver.c",
    }
    for name, source in programs.items():
        assert "" == compile_c(
            directory / name, source, CLIENT / "sesh_bridge.c", flags=flags
        )
    return Built(
        directory / "counter", directory / "calls", directory / "driver", sanitized
    )


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """The counter game with its bridge; no request waits for a player's turn
    (--max-queued 0), so a second LOOKUP is refused at once, without a timer."""
    socket_path = str(tmp_path_factory.mktemp("bridge") / "sesh.sock")
    assert len(socket_path) < 100  # a UNIX socket's path is at most 107 bytes
    server = Server(
        [
            "--app",
            "jetforce_sesh.games.counter:app",
            "--bridge-socket",
            socket_path,
            "--max-queued",
            "0",
        ]
    )
    try:
        yield server, socket_path
    finally:
        server.stop()


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


def frame(body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + body


def found(version: int, count: int, ever: int) -> bytes:
    """A version and a counter record, as K to a LOOKUP and X carry them."""
    return struct.pack(">Q", version) + struct.pack("<QQ", count, ever)


class ScriptedBridge:
    """A stand-in for the bridge on a UNIX socket: each connection in turn answers
    its requests with the next bytes of its script, then closes. It can send what
    the real bridge never does, and it keeps every request it read."""

    def __init__(self, path: Path, script: Sequence[Sequence[bytes]]) -> None:
        self.path = str(path)
        self.script = script
        self.requests: list[list[bytes]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen()
        self.listener.settimeout(10)  # a client that never comes ends the thread
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> ScriptedBridge:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.join(timeout=10)
        self.listener.close()

    def _serve(self) -> None:
        for replies in self.script:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                got: list[bytes] = []
                self.requests.append(got)
                for reply in replies:
                    request = self._read(connection)
                    if request is None:
                        break
                    got.append(request)
                    connection.sendall(reply)

    @staticmethod
    def _read(connection: socket.socket) -> bytes | None:
        """One request, or None when the client closed instead."""
        data = b""
        size = 4
        while len(data) < size:
            more = connection.recv(size - len(data))
            if not more:
                return None
            data += more
            if size == 4 and len(data) == 4:
                size += struct.unpack(">I", data)[0]
        return data[4:]


def test_the_client_and_the_example_compile_with_strict_flags(tmp_path: Path) -> None:
    assert ["", ""] == [
        compile_c(tmp_path / "client.o", CLIENT / "sesh_bridge.c", flags=["-c"]),
        compile_c(tmp_path / "counter.cgi", COUNTER, CLIENT / "sesh_bridge.c"),
    ]


def test_the_header_declares_the_reference_calls_each_with_its_contract() -> None:
    header = (CLIENT / "sesh_bridge.h").read_text()
    declared = re.findall(r"\*/\n(\w[\w ]*?\**)\s*(sesh_\w+)\(", header)
    assert [
        "sesh_init",
        "sesh_select",
        "sesh_lookup",
        "sesh_peek",
        "sesh_update",
        "sesh_compare_and_set",
        "sesh_delete",
        "sesh_release",
        "sesh_version",
        "sesh_error",
        "sesh_close",
    ] == [name for _, name in declared]
    codes = dict(re.findall(r"#define (SESH_[A-Z]+) \(?(-?\d+)\)?\n", header))
    assert {
        "SESH_OK": "0",
        "SESH_CONFLICT": "-1",
        "SESH_REFUSED": "-2",
        "SESH_PROTOCOL": "-3",
        "SESH_UNAVAILABLE": "-4",
    } == codes


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


@pytest.mark.e2e
def test_every_call_of_the_client(built: Built, bridge: tuple[Server, str]) -> None:
    _, socket_path = bridge
    done = built.run(
        built.calls,
        {"SESH_BRIDGE_SOCKET": socket_path},
        "SHA256:" + "C3" * 32,
        "d4" * 32,
    )
    assert ("", 0) == (done.stderr, done.status)
    assert [
        "update before sesh_init: PROTOCOL 0 record 0 0"
        " | sesh_init has not been called",
        "init: OK 0 record 0 0",
        "select: OK 0 record 0 0",
        "update before a lookup: PROTOCOL 0 record 0 0"
        " | sesh_update before a sesh_lookup",
        "lookup of a new player: OK 0 record 0 0",
        "update: OK v1 record 5 7",
        "lookup holds the turn: OK v1 record 5 7",
        "another process's lookup: REFUSED 0 record 5 7"
        " | this player's queue is full (0 may wait): try again later",
        "another process's compare-and-set: OK v2 record 6 8",
        "update after that: CONFLICT v2 record 6 8"
        " | the record moved: the buffer holds the one stored now",
        "compare-and-set redone: OK v3 record 7 9",
        "another process's compare-and-set: OK v4 record 8 10",
        "compare-and-set with a stale version: CONFLICT v4 record 8 10"
        " | the record moved: the buffer holds the one stored now",
        "lookup: OK v4 record 8 10",
        "release: OK v4 record 8 10",
        "delete: OK 0 record 8 10",
        "lookup after the delete: OK 0 record 0 0",
        "release: OK 0 record 0 0",
        "another process's compare-and-set: OK v5 record 1 1",
        "delete a stale version: CONFLICT v5 record 0 0"
        " | the record moved: sesh_version() is the one stored now",
        "delete again: OK 0 record 0 0",
        "lookup of another player by bare hex: OK 0 record 0 0",
        "release: OK 0 record 0 0",
        "peek: OK 0 record 0 0",
        "update after a peek: PROTOCOL 0 record 0 0 | sesh_update needs the turn"
        " of a sesh_lookup on this connection: use sesh_compare_and_set",
        "lookup of a fingerprint the server cannot read: PROTOCOL 0 record 0 0"
        " | not a fingerprint: fingerprint must be SHA256:<64 hex"
        " digits>, 64 hex digits or urlsafe base64 of 32 bytes (got 'nonsense')",
        "lookup after that connects again: OK 0 record 0 0",
        "release: OK 0 record 0 0",
        "wrong record size: PROTOCOL 0 record 0 0 | slab 'visits' has 16-byte records"
        " (layout '<QQ'), not 8: use that record size",
        "unknown slab: PROTOCOL 0 record 0 0 | no slab 'nosuch' is served over the"
        " bridge; these are: visits (only slabs declared with a layout are)",
        "no socket: UNAVAILABLE 0 record 0 0"
        " | cannot connect to /nonexistent/sesh.sock: No such file or directory",
        "record size 0: PROTOCOL 0 record 0 0 | record size 0 is not 1 to 65536 bytes",
        "lookup after that: PROTOCOL 0 record 0 0"
        " | record size 0 is not 1 to 65536 bytes",
    ] == done.stdout.splitlines()


def drive(
    built: Built, bridge: ScriptedBridge, *calls: str, fingerprint: str = ANN
) -> list[str]:
    """Run the driver's ``calls`` against ``bridge``; the lines it printed."""
    with bridge:
        done = built.run(
            built.driver,
            {"SESH_BRIDGE_SOCKET": bridge.path, "FINGERPRINT": fingerprint},
            *calls,
        )
    assert ("", 0) == (done.stderr, done.status)
    return done.stdout.splitlines()


OK = frame(b"K")


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


#: What the C programs below share: a record's two fields and the codes' names.
COMMON_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sesh_bridge.h"

static unsigned char rec[16];

static unsigned long long field(int at) {
    unsigned long long value = 0;
    int i;
    for (i = 7; i >= 0; i--) value = value << 8 | rec[at + i];
    return value;
}

static void set(unsigned long long count, unsigned long long ever) {
    int i;
    for (i = 0; i < 8; i++) {
        rec[i] = (unsigned char)(count >> (8 * i));
        rec[8 + i] = (unsigned char)(ever >> (8 * i));
    }
}

static const char *code(int rc) {
    switch (rc) {
    case SESH_OK: return "OK";
    case SESH_CONFLICT: return "CONFLICT";
    case SESH_REFUSED: return "REFUSED";
    case SESH_PROTOCOL: return "PROTOCOL";
    case SESH_UNAVAILABLE: return "UNAVAILABLE";
    default: return "?";
    }
}

"""

#: Exercises every call; prints one line per step: the step, the code, the version
#: (0, or v1, v2... in order of first sight: the server's numbers are its own), the
#: record's two fields, and sesh_error() after a failure.
CALLS_C = (
    COMMON_C
    + r"""
static unsigned long long seen[64];
static int seen_count;

static void say(const char *step, int rc) {
    unsigned long long version = sesh_version();
    char name[16] = "0";
    int i;
    if (version != 0) {
        for (i = 0; i < seen_count && seen[i] != version; i++) continue;
        if (i == seen_count && seen_count < 64) seen[seen_count++] = version;
        snprintf(name, sizeof name, "v%d", i + 1);
    }
    printf("%s: %s %s record %llu %llu%s%s\n", step, code(rc), name, field(0),
           field(8), rc ? " | " : "", rc ? sesh_error() : "");
}

/* Another CGI program: a child with its own connection, run to its end. */
static pid_t child(void) {
    pid_t pid;
    fflush(stdout);
    pid = fork();
    if (pid < 0) { perror("fork"); exit(1); }
    if (pid == 0) sesh_close(); /* closes the child's copy only */
    return pid;
}

static void child_done(void) {
    fflush(stdout);
    _exit(0);
}

static void parent_wait(pid_t pid) {
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "the child failed\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    const char *ann, *ben;
    const char *socket_path = getenv("SESH_BRIDGE_SOCKET");
    pid_t pid;
    if (argc != 3 || socket_path == NULL) return 2;
    ann = argv[1];
    ben = argv[2];

    say("update before sesh_init", sesh_update(rec));
    say("init", sesh_init(16, "/nonexistent/ignored.sock"));
    say("select", sesh_select("visits"));
    say("update before a lookup", sesh_update(rec));
    say("lookup of a new player", sesh_lookup(ann, rec));
    set(5, 7);
    say("update", sesh_update(rec));
    say("lookup holds the turn", sesh_lookup(ann, rec));

    if ((pid = child()) == 0) {
        say("another process's lookup", sesh_lookup(ann, rec));
        child_done();
    }
    parent_wait(pid);

    if ((pid = child()) == 0) {
        set(6, 8);
        say("another process's compare-and-set", sesh_compare_and_set(rec));
        child_done();
    }
    parent_wait(pid);
    set(50, 70);
    say("update after that", sesh_update(rec));
    set(field(0) + 1, field(8) + 1);
    say("compare-and-set redone", sesh_compare_and_set(rec));

    if ((pid = child()) == 0) {
        set(8, 10);
        say("another process's compare-and-set", sesh_compare_and_set(rec));
        child_done();
    }
    parent_wait(pid);
    set(100, 100);
    say("compare-and-set with a stale version", sesh_compare_and_set(rec));

    say("lookup", sesh_lookup(ann, rec));
    say("release", sesh_release());
    say("delete", sesh_delete());
    say("lookup after the delete", sesh_lookup(ann, rec));
    say("release", sesh_release());

    if ((pid = child()) == 0) {
        set(1, 1);
        say("another process's compare-and-set", sesh_compare_and_set(rec));
        child_done();
    }
    parent_wait(pid);
    say("delete a stale version", sesh_delete());
    say("delete again", sesh_delete());

    say("lookup of another player by bare hex", sesh_lookup(ben, rec));
    say("release", sesh_release());
    say("peek", sesh_peek(ann, rec));
    say("update after a peek", sesh_update(rec));
    say("lookup of a fingerprint the server cannot read",
        sesh_lookup("nonsense", rec));
    say("lookup after that connects again", sesh_lookup(ben, rec));
    say("release", sesh_release());

    say("wrong record size", sesh_init(8, NULL) ? -99 : sesh_lookup(ann, rec));
    say("unknown slab", sesh_init(16, NULL) || sesh_select("nosuch")
                            ? -99 : sesh_lookup(ann, rec));
    unsetenv("SESH_BRIDGE_SOCKET");
    say("no socket", sesh_init(16, "/nonexistent/sesh.sock") ? -99
                                                              : sesh_select(""));
    say("record size 0", sesh_init(0, socket_path));
    say("lookup after that", sesh_lookup(ann, rec));
    return 0;
}
"""
)

#: Runs the calls its arguments name, one line each: the call, the code, the
#: version as the server sent it, the record's fields, and sesh_error().
DRIVER_C = (
    COMMON_C
    + r"""
int main(int argc, char **argv) {
    const char *fingerprint = getenv("FINGERPRINT");
    unsigned long long a, b;
    int i, rc;
    if (sesh_init(16, NULL) != SESH_OK) return 2;
    for (i = 1; i < argc; i++) {
        const char *call = argv[i];
        if (strcmp(call, "init") == 0) {
            rc = sesh_init(16, NULL);
        } else if (strncmp(call, "select:", 7) == 0) {
            rc = sesh_select(call + 7);
        } else if (strcmp(call, "lookup") == 0) {
            rc = sesh_lookup(fingerprint, rec);
        } else if (sscanf(call, "update:%llu,%llu", &a, &b) == 2) {
            set(a, b);
            rc = sesh_update(rec);
        } else if (sscanf(call, "cas:%llu,%llu", &a, &b) == 2) {
            set(a, b);
            rc = sesh_compare_and_set(rec);
        } else if (strcmp(call, "delete") == 0) {
            rc = sesh_delete();
        } else if (strcmp(call, "release") == 0) {
            rc = sesh_release();
        } else {
            return 2;
        }
        printf("%s: %s version %llu record %llu %llu%s%s\n", call, code(rc),
               sesh_version(), field(0), field(8), rc ? " | " : "",
               rc ? sesh_error() : "");
    }
    return 0;
}
"""
)
