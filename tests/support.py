"""Real parts for end-to-end tests: client certificates, a Gemini client, a server.

The server is the real ``jetforce-sesh`` launcher in its own process, on port 0;
the client speaks TLS with Python's ``ssl`` module and a real client certificate.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

import attrs

from jetforce_sesh.testing import (
    ClientCertificate,
    client_context,
    exchange,
    make_client_certificate,
)

REPO = Path(__file__).resolve().parent.parent
#: The agunua client installed with the test extra: next to this Python, which
#: need not be on PATH (``venv/bin/python -m pytest``).
AGUNUA = str(Path(sys.executable).parent / "agunua")


# The suite's names for the public helpers game authors use too.
ClientCert = ClientCertificate
make_client_cert = make_client_certificate
#: The ``make_cert`` fixture: a named client certificate, made once.
MakeCert = Callable[..., ClientCert]


@attrs.frozen
class Reply:
    """A Gemini response: status, meta and body."""

    status: int
    meta: str
    body: str


def gemini_request(
    port: int,
    path: str,
    cert: ClientCert | None = None,
    *,
    query: str | None = None,
    host: str = "localhost",
    timeout: float = 10.0,
) -> Reply:
    """One Gemini request over real TLS, presenting ``cert`` if given."""
    context = (
        client_context()
        if cert is None
        else client_context(cert.cert_path, cert.key_path)
    )
    url = f"gemini://{host}:{port}{path}"
    if query is not None:
        url += "?" + quote(query)
    data = exchange(context, port, url.encode() + b"\r\n", host=host, timeout=timeout)
    header, _, body = data.partition(b"\r\n")
    status, _, meta = header.decode().partition(" ")
    return Reply(int(status), meta, body.decode())


def interruptible() -> None:
    """In a server's child process: SIGINT stops it, as Ctrl-C does.

    A shell without job control starts background commands with SIGINT
    ignored, and the suite started that way would hand that on: a server that
    inherits it ignores SIGINT, as Python and Twisted leave an ignored signal
    ignored, and the test of stopping by SIGINT would wait in vain.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Server:
    """A ``jetforce-sesh`` process listening on a port the OS chose."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        command: Sequence[str] | None = None,
        cwd: Path | None = None,
        listening: str = r"Listening on 127\.0\.0\.1:(\d+)",
        drain: bool = False,
    ) -> None:
        base = list(command) if command else [sys.executable, "-m", "jetforce_sesh"]
        self.process = subprocess.Popen(
            [*base, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            preexec_fn=interruptible,
        )
        self.output: list[str] = []
        #: With ``drain``, a thread keeps reading what the server prints, so a
        #: long run that logs a lot never blocks on a full pipe.
        self._reader: threading.Thread | None = None
        self.port = self._wait_for_port(listening)
        if drain:
            self._reader = threading.Thread(target=self._read_on, daemon=True)
            self._reader.start()

    def _read_on(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)

    def _wait_for_port(self, listening: str) -> int:
        assert self.process.stdout is not None
        deadline = time.monotonic() + 60
        port = None
        for line in self.process.stdout:
            self.output.append(line)
            found = re.match(listening, line)
            if found:
                port = int(found.group(1))
            if port is not None and line.startswith(("Open ", "Serving gemini:")):
                return port  # the last line of the start-up banner
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("server did not start:\n" + "".join(self.output))

    def request(
        self, path: str, cert: ClientCert | None = None, **kwargs: object
    ) -> Reply:
        return gemini_request(self.port, path, cert, **kwargs)  # type: ignore[arg-type]

    def stop(self) -> str:
        """Stop the server; return everything it printed."""
        if self.process.stdout is None or self.process.stdout.closed:
            return "".join(self.output)  # stopped already
        if self._reader is not None:
            if self.process.poll() is None:
                self.process.terminate()
            self.process.wait(timeout=20)
            self._reader.join(timeout=20)
            self.process.stdout.close()
            return "".join(self.output)
        if self.process.poll() is None:
            self.process.terminate()
        try:
            rest, _ = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            rest, _ = self.process.communicate()
        self.output.append(rest or "")
        return "".join(self.output)


def serve(args: Sequence[str], **kwargs: object) -> Iterator[Server]:
    """Fixture body: a server for the test's duration."""
    server = Server(args, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


def visit_count(reply: Reply) -> int:
    """The visit count a visit counter page reports (in-process or CGI)."""
    assert 20 == reply.status, reply
    if "Welcome! This is your first visit." in reply.body:
        return 1
    found = re.search(r"Visit number (\d+)\.", reply.body)
    assert found is not None, reply.body
    return int(found.group(1))
