"""A SessionApplication in a plain ``GeminiServer(app).run()`` script: its stores
open as the reactor starts, with the settings given in code, and close as it stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from jetforce.app.base import Request, Response, Status
from twisted.internet.task import Clock

from jetforce_sesh import SessionApplication, SlabOptions
from jetforce_sesh.errors import ConfigError
from jetforce_sesh.session import autostart
from jetforce_sesh.testing import Page, SessionHarness, later_stores
from tests.support import AGUNUA, REPO, ClientCert, Reply, gemini_request


@attrs.define
class Visits:
    count: int = 0


@attrs.define
class Steps:
    count: int = 0


def counting(app: SessionApplication, path: str, record: type) -> None:
    def visit(request: Request, record: Visits | Steps) -> Response:
        record.count += 1
        return Response(Status.SUCCESS, "text/plain", str(record.count))

    app.session_route(path, record=record)(visit)


def test_the_served_app_opens_with_its_own_settings_and_the_game_it_includes() -> None:
    game = SessionApplication("game")
    counting(game, "/game", Steps)
    capsule = SessionApplication("capsule", defaults=SlabOptions(max_records=7))
    counting(capsule, "/visit", Visits)
    capsule.include(game)
    clock = Clock()
    opened = autostart.open_served([game, capsule], clock)
    assert opened.called
    assert (True, False) == (capsule.started, game.started)
    assert [7, 7] == [slab.options.max_records for slab in capsule.slabs.values()]
    closed = autostart.close_opened()
    assert closed.called
    assert [False, False] == [
        slab._opened is not None for slab in capsule.slabs.values()
    ]


def test_an_app_opened_already_is_left_as_it_is() -> None:
    app = SessionApplication("opened by the launcher")
    counting(app, "/visit", Visits)
    clock = Clock()
    app.open(clock, SlabOptions(max_records=3))
    autostart.open_served([app], Clock())
    slab = app.slabs[Visits]
    assert (3, clock) == (slab.options.max_records, slab.clock)
    app.close(grace=0)


def test_a_slab_that_cannot_open_stops_the_reactor_saying_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = SessionApplication("too big", defaults=SlabOptions(record_size=8))

    @attrs.define
    class Big:
        name: str = "x" * 100

    counting(app, "/big", Big)  # type: ignore[arg-type]
    stopped: list[bool] = []

    class Reactor(Clock):
        def stop(self) -> None:
            stopped.append(True)

    autostart.open_served([app], Reactor())
    assert [True] == stopped
    error = capsys.readouterr().err
    assert error.startswith("jetforce-sesh: error: the stores could not be opened:")


def test_a_bad_grace_is_refused_when_the_app_is_made() -> None:
    with pytest.raises(ConfigError) as caught:
        SessionApplication("x", grace=-1)
    assert str(caught.value) == (
        "shutdown grace must be a number of seconds from 0 to 3600 (got -1): use"
        " e.g. 10 (--shutdown-grace 10)"
    )


def test_a_request_while_the_stores_open_is_told_to_come_back() -> None:
    app = SessionApplication("opening")
    counting(app, "/visit", Visits)
    harness = SessionHarness(app, stores=later_stores(1.0))
    early = harness.get("/visit")
    harness.clock.advance(1.0)
    assert (
        41,
        "The capsule is restarting; your previous state is kept: try again in a moment",
    ) == (early.status, early.meta)
    pages: list[Page] = []
    harness.request("/visit").addCallback(pages.append)
    harness.clock.advance(1.0)  # loaded
    harness.clock.advance(1.0)  # saved
    assert ["1"] == [page.body for page in pages]


# -- a real script, as a user runs it ------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Script:
    """``examples/server_script.py`` in its own process, as a user starts it."""

    def __init__(self, state_dir: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "examples/server_script.py",
                str(self.port),
                str(state_dir),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.output: list[str] = []
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        for line in self.process.stdout:
            self.output.append(line)
            if re.match(rf"Listening on 127\.0\.0\.1:{self.port}$", line):
                return
            assert time.monotonic() < deadline, "".join(self.output)
        raise AssertionError("the script did not start:\n" + "".join(self.output))

    def request(self, path: str, cert: ClientCert | None = None) -> Reply:
        return gemini_request(self.port, path, cert)

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        rest, _ = self.process.communicate(timeout=30)
        return self.process.returncode, "".join(self.output) + rest


@pytest.mark.e2e
def test_a_server_script_serves_keeps_and_closes_its_records(
    tmp_path: Path, make_cert: Callable[[str], ClientCert]
) -> None:
    alice = make_cert("embedded-alice")
    script = Script(tmp_path)
    try:
        seen = [script.request("/visit", alice) for _ in range(2)]
        anonymous = script.request("/visit")
    finally:
        status, output = script.stop()
    assert [Reply(20, "text/gemini", f"# Visit {n}\n") for n in (1, 2)] == seen
    assert 60 == anonymous.status
    assert 0 == status
    assert "Traceback" not in output
    # Closed and flushed at SIGTERM: the next run goes on where it stopped,
    # as an independent client sees it.
    script = Script(tmp_path)
    try:
        again = subprocess.run(
            [
                *(AGUNUA, "--no-tofu"),
                *("-c", str(alice.cert_path), "-k", str(alice.key_path)),
                f"gemini://localhost:{script.port}/visit",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        status, output = script.stop()
    assert (0, "# Visit 3", 0) == (again.returncode, again.stdout.strip(), status)
