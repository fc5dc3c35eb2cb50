"""The processes a scenario runs: the launcher, helper daemons, and their CPU time.

CPU is read from ``/proc``: for the process itself, the scheduler's exact run time
of each of its threads (``/proc/<pid>/task/*/sched``, falling back to ``utime +
stime`` of ``/proc/<pid>/stat``), and ``cutime + cstime`` for the children it has
reaped. A Jetforce server reaps each CGI process before it finishes that request's
response, so for the CGI scenarios the children's time is every CGI run of the
measured window.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
START_TIMEOUT = 60.0
LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")


def _scheduler_seconds(pid: int) -> float | None:
    """CPU seconds of every live thread of ``pid``, to the nanosecond, if known."""
    total = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for line in (task / "sched").read_text().splitlines():
                if line.startswith("se.sum_exec_runtime"):
                    total += float(line.split(":")[1]) / 1000  # milliseconds
                    break
            else:
                return None
    except OSError:
        return None
    return total


def cpu_seconds(pid: int) -> float:
    """CPU seconds used by ``pid`` and by the children it has reaped."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: split after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    children = (cutime + cstime) / CLOCK_TICKS
    # /proc/PID/stat counts in whole clock ticks (10 ms), too coarse for a
    # window of a second or two; the scheduler's own sum is exact.
    own = _scheduler_seconds(pid)
    if own is None:
        own = (utime + stime) / CLOCK_TICKS
    return own + children


class StartError(RuntimeError):
    """A benchmark process did not come up; the message holds what it printed."""


CPUs = frozenset[int] | None


def _pin(process: subprocess.Popen[bytes], cpus: CPUs) -> None:
    # Children (CGI runs) inherit the mask, so a scenario's whole server side
    # stays on the cores it was given.
    if cpus is not None:
        os.sched_setaffinity(process.pid, cpus)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class LauncherServer:
    """``python -m jetforce_sesh ... --port 0``, as a user starts a capsule (or
    another ``module`` that takes ``--port``: stock Jetforce's).

    Its access log and jetforce's CGI echo go to the null device (writing them
    to a pipe nobody reads would stall the server); the banner and errors go
    to ``log``, where the listening port is read from.
    """

    def __init__(
        self,
        args: Sequence[str],
        log: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        cpus: CPUs = None,
        module: str = "jetforce_sesh",
    ) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"},
            cwd=cwd,
        )
        _pin(self.process, cpus)
        try:
            self.port = self._wait_for_port()
        except StartError:
            self.stop()
            raise

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise StartError(
            f"{' '.join(map(str, self.process.args))} did not start:\n"  # type: ignore[arg-type]
            + self.log.read_text(errors="replace")
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        _stop(self.process)
        self._log_file.close()


class UnixSocketService:
    """A helper daemon that serves a UNIX socket (the key-value store, Redis)."""

    def __init__(
        self,
        command: Sequence[str],
        socket_path: Path,
        log: Path,
        *,
        cpus: CPUs = None,
    ) -> None:
        self.socket_path = socket_path
        self.log = log
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            list(command),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        _pin(self.process, cpus)
        try:
            self._wait_for_socket()
        except StartError:
            self.stop()
            raise

    def _wait_for_socket(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    probe.connect(str(self.socket_path))
                return
            except OSError:
                time.sleep(0.05)
        raise StartError(
            f"{' '.join(map(str, self.process.args))} did not serve"  # type: ignore[arg-type]
            f" {self.socket_path}:\n" + self.log.read_text(errors="replace")
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        _stop(self.process)
        self._log_file.close()
