"""``--dir``: Jetforce's file server, made safe to point at a capsule's directory.

Jetforce's ``StaticDirectoryApplication`` serves hidden files (``/.env``) and
follows symbolic links out of its directory, and a NUL in the path makes it fail
with a traceback. A capsule owner expects none of that: here hidden files and
anything that resolves outside the directory are ``51``, a NUL is ``59``, and
everything else is served as Jetforce serves it.

Its CGI programs are run as Jetforce runs them (the request's variables,
``GATEWAY_INTERFACE``), with three differences:

- **They find the server's Python.** Jetforce passes no ``PATH``, so
  ``#!/usr/bin/env python3`` finds the system's Python, which has neither
  ``sesh_bridge`` nor anything else the capsule installed. Here ``PATH`` is the
  server's, the directory of the Python running the server first, and a
  ``PYTHONPATH`` the server was started with is passed on too: that Python then
  imports the very ``sesh_bridge`` the server has.
- **What they write to standard error reaches the server's log**, a line an
  event (Jetforce throws it away), and a program that fails, or answers no
  status line, gets a ``42`` that says so and a log line.
- **Their pages stay out of the log**: Jetforce 1.0.0 ``print``\\ s every piece
  of every CGI answer to standard output, where the access log goes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from jetforce.app.base import (
    DeferredResponse,
    EnvironDict,
    Request,
    Response,
    Status,
)
from jetforce.app.static import CGISubprocessProtocol, StaticDirectoryApplication
from twisted.internet.defer import succeed
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.server.protocol import escaped

NOT_FOUND = Response(Status.NOT_FOUND, "Not Found")

#: Lines of one run's standard error logged, at most; then one line says so.
MAX_ERROR_LINES = 100
#: Characters of one line of standard error logged, at most.
MAX_ERROR_LINE = 1000

_log = Logger()


def cgi_variables() -> dict[str, str]:
    """What every CGI program gets besides the request's variables: ``PATH``
    (see :func:`cgi_path`), and the server's ``PYTHONPATH`` if it has one (a
    server run from a checkout: its programs import that checkout's
    ``sesh_bridge``, not another one installed for that Python)."""
    found = {"PATH": cgi_path()}
    if os.environ.get("PYTHONPATH"):
        found["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return found


def cgi_path() -> str:
    """``PATH`` for CGI programs: the server's, with the directory of the Python
    that runs the server first, so ``#!/usr/bin/env python3`` is that Python
    (its venv's, with ``sesh_bridge``), however the server was started."""
    here = os.path.dirname(sys.executable)
    rest = [p for p in os.environ.get("PATH", os.defpath).split(os.pathsep) if p]
    return os.pathsep.join([here, *(p for p in rest if p != here)])


class CGIRun(CGISubprocessProtocol):
    """One run of a CGI program: Jetforce's, without its ``print``, with the
    program's standard error logged and its failures said."""

    def __init__(self, script: str) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.script = script
        self._error = b""
        self._error_lines = 0

    # -- the answer -------------------------------------------------------------

    def outReceived(self, data: bytes) -> None:
        if self.error_occurred:
            return
        if self.status_line_sent:
            self._resolve_pending(data)
            return
        self.status_line_buffer += data
        if b"\n" not in self.status_line_buffer:
            if len(self.status_line_buffer) >= self.CGI_MAX_RESPONSE_HEADER_SIZE:
                self._bad_header(self.status_line_buffer)
            return
        line, rest = self.status_line_buffer.split(b"\n", 1)
        if len(line) >= self.CGI_MAX_RESPONSE_HEADER_SIZE:
            self._bad_header(line)
            return
        try:
            parts = line.decode("utf-8").strip().split(maxsplit=1)
        except UnicodeDecodeError:
            parts = []
        if len(parts) != 2 or not parts[0].isdecimal():
            self._bad_header(line)
            return
        self._resolve_status(int(parts[0]), parts[1])
        self.status_line_sent = True
        if rest:
            self._resolve_pending(rest)

    def _bad_header(self, line: bytes) -> None:
        self.error_occurred = True
        shown = escaped(line[:80].decode("utf-8", "replace"))
        _log.warn(
            'CGI {script} answered no status line: "{line}"',
            script=self.script,
            line=shown,
            event="cgi failed",
        )
        self._resolve_status(
            Status.CGI_ERROR,
            f"CGI program {self.script} answered no status line: its first line"
            f" must be a status and a meta, e.g. '20 text/gemini'",
        )

    # -- standard error ---------------------------------------------------------

    def errReceived(self, data: bytes) -> None:
        self._error += data
        while b"\n" in self._error:
            line, self._error = self._error.split(b"\n", 1)
            self._log_error(line)
        if len(self._error) > MAX_ERROR_LINE:
            # A line that never ends: its start is logged, the rest waits for
            # the end of the line and is dropped.
            self._log_error(self._error)
            self._error = b""

    def _log_error(self, line: bytes) -> None:
        self._error_lines += 1
        if self._error_lines > MAX_ERROR_LINES + 1:
            return
        if self._error_lines == MAX_ERROR_LINES + 1:
            text = f"(more error output left out after {MAX_ERROR_LINES} lines)"
        else:
            text = escaped(line.rstrip(b"\r").decode("utf-8", "replace"))
            if len(text) > MAX_ERROR_LINE:
                text = text[:MAX_ERROR_LINE] + "…"
        _log.warn(
            "CGI {script}: {line}", script=self.script, line=text, event="cgi stderr"
        )

    # -- the end ----------------------------------------------------------------

    def processEnded(self, reason: Failure) -> None:
        if self._error:
            self._log_error(self._error)
            self._error = b""
        self.process_ended = True
        ended = _how(reason)
        if not self.status_line_sent and not self.error_occurred:
            self.error_occurred = True
            _log.warn(
                "CGI {script} {ended} before it answered",
                script=self.script,
                ended=ended,
                event="cgi failed",
            )
            self._resolve_status(
                Status.CGI_ERROR,
                f"CGI program {self.script} {ended} before it answered; the"
                f" server's log has its error output",
            )
        elif not isinstance(reason.value, ProcessDone):
            _log.warn(
                "CGI {script} {ended} after it answered (the page may be cut short)",
                script=self.script,
                ended=ended,
                event="cgi failed",
            )
        self._resolve_pending(b"")


def _how(reason: Failure) -> str:
    """How a process ended, in words: "exited with status 1"."""
    value = reason.value
    if isinstance(value, ProcessTerminated) and value.signal is not None:
        return f"was killed by signal {value.signal}"
    if isinstance(value, ProcessTerminated):
        return f"exited with status {value.exitCode}"
    return "exited"


class CapsuleFiles(StaticDirectoryApplication):
    """Files and CGI programs of one directory, and nothing outside it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Variables every CGI program gets besides the request's: PATH (and
        #: PYTHONPATH), and the launcher adds the bridge's socket.
        self.cgi_environ: dict[str, str] = cgi_variables()

    def run_cgi_script(
        self, filesystem_path: str | Path, environ: EnvironDict
    ) -> DeferredResponse:
        from twisted.internet import reactor

        # For the log and the meta: one line, whatever the file is called.
        script = escaped(str(environ.get("SCRIPT_NAME") or filesystem_path))
        cgi_env = {k: str(v) for k, v in environ.items() if k.isupper()}
        cgi_env["GATEWAY_INTERFACE"] = "CGI/1.1"
        cgi_env.update(self.cgi_environ)
        run = CGIRun(script)
        try:
            reactor.spawnProcess(
                run, str(filesystem_path), [str(filesystem_path)], env=cgi_env
            )
        except OSError as error:
            # posix_spawn reports here what a fork would in the child: a
            # program (or its #! interpreter) that cannot be run.
            _log.warn(
                "CGI {script} cannot be run: {reason}",
                script=script,
                reason=error.strerror,
                event="cgi failed",
            )
            meta = (
                f"CGI program {script} cannot be run ({error.strerror}); check its"
                f" #! line and its mode"
            )
            return DeferredResponse(succeed((Status.CGI_ERROR, meta)), [])
        return DeferredResponse(run.send_status, run.body_generator())

    def serve_static_file(self, request: Request) -> Response | DeferredResponse:
        path = request.path.strip("/")
        if "\x00" in path:
            return Response(Status.BAD_REQUEST, "Request holds a NUL byte")
        if any(part.startswith(".") for part in PurePosixPath(path).parts):
            return NOT_FOUND  # hidden files, and "." and ".." steps
        root = str(self.root)
        real = os.path.realpath(os.path.join(root, path))
        if real != root and not real.startswith(root + os.sep):
            return NOT_FOUND  # a symbolic link out of the directory
        return super().serve_static_file(request)
