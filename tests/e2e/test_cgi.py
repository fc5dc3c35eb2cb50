"""CGI programs under ``--dir``, run by a real server: they find the server's
Python with ``#!/usr/bin/env python3`` even when the system's comes first on
PATH, what they write to standard error reaches the server's log (bounded, one
escaped line an event), a program that fails or answers garbage gets a ``42``
that says so, and their pages never reach the access log."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest

from tests.support import MakeCert, Reply, Server, serve

pytestmark = pytest.mark.e2e

PROGRAMS = {
    # The shebang of the how-to, as written: which python3 does it find?
    "which.py": """#!/usr/bin/env python3
import os, sys
sys.stderr.write("which: starting\\n")
print("20 text/plain\\r")
print(os.path.realpath(sys.executable))
print("A page for " + os.environ.get("TLS_CLIENT_HASH", "nobody"))
""",
    "fails.py": """#!/usr/bin/env python3
import no_such_module_anywhere
""",
    "garbled.sh": "#!/bin/sh\necho 'Hello, world'\n",
    "killed.sh": "#!/bin/sh\nkill -9 $$\n",
    "late.sh": "#!/bin/sh\nprintf '20 text/plain\\r\\nhalf a page'\nexit 3\n",
    "flood.sh": """#!/bin/sh
printf 'forged \\033[31mline\\n2026-01-01 [admin#info] nothing\\n' >&2
i=0
while [ $i -lt 500 ]; do echo "line $i"; i=$((i+1)); done >&2
printf '20 text/plain\\r\\nflooded\\n'
""",
    "interpreter.py": "#!/no/such/python\nprint('20 text/plain\\r')\n",
    # A module only the server's PYTHONPATH holds.
    "marker.py": """#!/usr/bin/env python3
import capsule_marker
print("20 text/plain\\r")
print(capsule_marker.WHERE)
""",
}


@pytest.fixture(scope="module")
def cgi_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("cgi")
    capsule = home / "capsule"
    (capsule / "cgi-bin").mkdir(parents=True)
    modules = home / "modules"
    modules.mkdir()
    (modules / "capsule_marker.py").write_text("WHERE = 'the server path'\n")
    for name, text in PROGRAMS.items():
        program = capsule / "cgi-bin" / name
        program.write_text(text)
        program.chmod(0o755)
    # A machine whose system Python comes first on PATH, without this one's
    # packages: the server must not leave its CGI programs to it.
    # (The server's PYTHONPATH, if the suite runs with one, and a directory
    # of modules after it.)
    pythonpath = ":".join(filter(None, [os.environ.get("PYTHONPATH"), str(modules)]))
    command = [
        "/usr/bin/env",
        "PATH=/usr/bin:/bin",
        f"PYTHONPATH={pythonpath}",
        sys.executable,
        "-m",
        "jetforce_sesh",
    ]
    yield from serve(["--dir", str(capsule)], command=command, drain=True)


def settled(server: Server) -> str:
    """All the server printed, once what it printed for the requests so far
    has been read: a request is made and its access log line waited for."""
    marker = f"/settled-{len(server.output)}-{time.monotonic_ns()}"
    server.request(marker)
    deadline = time.monotonic() + 20
    while not any(marker in line for line in server.output):
        assert time.monotonic() < deadline, "".join(server.output)
        time.sleep(0.02)
    return "".join(server.output)


def log_lines(server: Server, needle: str) -> list[str]:
    """The server's log lines about ``needle``, without their timestamps."""
    settled(server)
    return [
        line.split(" ", 1)[1]
        for line in "".join(server.output).splitlines()
        if needle in line and line[:4].isdigit()
    ]


def test_env_python3_is_the_servers_python(
    cgi_server: Server, make_cert: MakeCert
) -> None:
    assert os.path.exists("/usr/bin/python3")  # the one PATH offers first
    reply = cgi_server.request("/cgi-bin/which.py", make_cert("cgi-which"))
    assert (20, "text/plain") == (reply.status, reply.meta)
    assert os.path.realpath(sys.executable) == reply.body.splitlines()[0]


def test_the_servers_pythonpath_is_the_programs_too(cgi_server: Server) -> None:
    assert Reply(20, "text/plain", "the server path\n") == cgi_server.request(
        "/cgi-bin/marker.py"
    )


def test_standard_error_reaches_the_log_and_the_page_does_not(
    cgi_server: Server, make_cert: MakeCert
) -> None:
    player = make_cert("cgi-private")
    reply = cgi_server.request("/cgi-bin/which.py", player)
    assert f"A page for {player.tls_client_hash}" == reply.body.splitlines()[1]
    assert [
        "[jetforce_sesh.server.files#warn] CGI /cgi-bin/which.py: which: starting"
    ] == log_lines(cgi_server, "which: starting")[-1:]
    # Jetforce 1.0.0 would print every piece of the answer on stdout.
    assert f"A page for {player.tls_client_hash}" not in settled(cgi_server)


@pytest.mark.parametrize(
    ("program", "meta", "logged"),
    [
        (
            "fails.py",
            "CGI program /cgi-bin/fails.py exited with status 1 before it"
            " answered; the server's log has its error output",
            [
                "CGI /cgi-bin/fails.py: ModuleNotFoundError: No module named"
                " 'no_such_module_anywhere'",
                "CGI /cgi-bin/fails.py exited with status 1 before it answered",
            ],
        ),
        (
            "garbled.sh",
            "CGI program /cgi-bin/garbled.sh answered no status line: its first"
            " line must be a status and a meta, e.g. '20 text/gemini'",
            ['CGI /cgi-bin/garbled.sh answered no status line: "Hello, world"'],
        ),
        (
            "killed.sh",
            "CGI program /cgi-bin/killed.sh was killed by signal 9 before it"
            " answered; the server's log has its error output",
            ["CGI /cgi-bin/killed.sh was killed by signal 9 before it answered"],
        ),
        (
            "interpreter.py",
            "CGI program /cgi-bin/interpreter.py cannot be run (No such file or"
            " directory); check its #! line and its mode",
            ["CGI /cgi-bin/interpreter.py cannot be run: No such file or directory"],
        ),
    ],
)
def test_a_program_that_fails_gets_a_42_that_says_so_and_a_log_line(
    cgi_server: Server, program: str, meta: str, logged: list[str]
) -> None:
    assert Reply(42, meta, "") == cgi_server.request(f"/cgi-bin/{program}")
    shown = [
        line.split("] ", 1)[1] for line in log_lines(cgi_server, f"/cgi-bin/{program}")
    ]
    assert (
        logged
        == [line for line in shown if line in logged or "CGI " in line][-len(logged) :]
    )


def test_a_program_that_fails_after_answering_is_logged(cgi_server: Server) -> None:
    assert Reply(20, "text/plain", "half a page") == cgi_server.request(
        "/cgi-bin/late.sh"
    )
    assert [
        "[jetforce_sesh.server.files#warn] CGI /cgi-bin/late.sh exited with status 3"
        " after it answered (the page may be cut short)"
    ] == log_lines(cgi_server, "CGI /cgi-bin/late.sh")


def test_a_flood_of_error_output_is_bounded_and_cannot_forge_a_line(
    cgi_server: Server,
) -> None:
    assert "flooded\n" == cgi_server.request("/cgi-bin/flood.sh").body
    flood = [
        line.split("] ", 1)[1] for line in log_lines(cgi_server, "CGI /cgi-bin/flood")
    ]
    assert [
        # Each line of the program's is one line of the log, named, escaped.
        "CGI /cgi-bin/flood.sh: forged \\x1b[31mline",
        "CGI /cgi-bin/flood.sh: 2026-01-01 [admin#info] nothing",
        *(f"CGI /cgi-bin/flood.sh: line {n}" for n in range(98)),
        "CGI /cgi-bin/flood.sh: (more error output left out after 100 lines)",
    ] == flood
