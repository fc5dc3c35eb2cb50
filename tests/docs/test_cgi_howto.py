"""The CGI how-to, run as written on a reader's machine: a clean checkout with
jetforce-sesh installed in a fresh venv (the tutorial's install step), the C
counter built with the how-to's line, the server started with its command, and
one certificate's visits counted across /counter, the Python CGI (its
``#!/usr/bin/env python3`` as shipped) and the C CGI.

Two changes to what it says: the server listens on a free port, and the socket
is in a directory of the test's own rather than /tmp (runs may overlap). The
server runs with the venv's bin first on PATH, as after ``. .venv/bin/activate``,
and the system's Python (without jetforce-sesh) next.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.docs.machine import blocks, run
from tests.support import REPO, MakeCert, Server, visit_count

pytestmark = pytest.mark.e2e

HOWTO = REPO / "docs" / "howto" / "cgi-programs.md"


def test_the_cgi_howto_counts_one_player_across_route_python_and_c(
    reader: dict[str, Path], tmp_path: Path, make_cert: MakeCert
) -> None:
    checkout, venv = reader["checkout"], reader["venv"]
    env: dict[str, str] = reader["env"]  # type: ignore[assignment]
    shells = blocks(HOWTO, "sh")
    (build,) = [block for block in shells if block.startswith("cc ")]
    built = run(build, checkout / "examples" / "cgi-bin", env)
    assert 0 == built.returncode, built.stderr
    (check,) = [block for block in shells if "--dir examples" in block]
    words = shlex.split(check)
    assert ["jetforce-sesh", "--app", "jetforce_sesh:app", "--dir", "examples"] == (
        words[:5]
    )
    assert ["--bridge-socket", "/tmp/sesh.sock"] == words[5:]
    assert (
        (checkout / "examples" / "cgi-bin" / "counter.py")
        .read_text()
        .startswith("#!/usr/bin/env python3\n")
    )
    command = [
        "/usr/bin/env",
        "-u",
        "PYTHONPATH",
        f"PATH={venv / 'bin'}:/usr/bin:/bin",
        "jetforce-sesh",
    ]
    server = Server(
        [*words[1:5], "--bridge-socket", str(tmp_path / "sesh.sock")],
        command=command,
        cwd=checkout,
        drain=True,
    )
    try:
        player = make_cert("howto-reader")
        paths = ["/counter", "/cgi-bin/counter.py", "/cgi-bin/counter.cgi"]
        replies = [server.request(path, player) for path in paths * 2]
    finally:
        output = server.stop()
    assert [20] * 6 == [reply.status for reply in replies], (replies, output)
    assert [1, 2, 3, 4, 5, 6] == [visit_count(reply) for reply in replies]
    assert "Traceback" not in output
