"""The bridge's C client and the C CGI counter, as their tests build and drive
them: the strict compiler flags, the programs (the counter, one that makes every
call, a driver that makes the calls it is told), and a scripted stand-in for the
bridge socket (docs/reference/bridge.md)."""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path

import attrs

from tests.support import REPO

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
    """The programs, compiled once for the session, and how to run them."""

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


OK = frame(b"K")


class Doorman:
    """A stand-in for a bridge that turns one connection away, as the real one
    does past a cap: it answers ``reply`` at once, before reading anything, and
    closes."""

    def __init__(self, path: Path, reply: bytes) -> None:
        self.path = str(path)
        self.reply = reply
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen()
        self.listener.settimeout(10)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> Doorman:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.thread.join(timeout=10)
        self.listener.close()

    def _serve(self) -> None:
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return
        with connection:
            connection.sendall(self.reply)


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
    case SESH_NOT_VALID: return "NOT_VALID";
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
