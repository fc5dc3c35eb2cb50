"""``python -m benchmarks.insitu``: what the route costs inside a real server.

The micro benchmark calls a route in a tight loop, where everything it touches
stays in the CPU's caches. In a server, each request's route runs after a TLS
handshake and the event loop's own work have pushed all of that out, so the same
code costs several times more. This measures it where it happens: the plain and
the session capsules are served by the launcher over real TLS, each wrapped in
:class:`TimedApplication`, which adds up the thread CPU time spent inside the
application call (routing, the route, the handler) and reports it at exit.
"""

from __future__ import annotations

import argparse
import atexit
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from jetforce.app.base import ApplicationResponse, EnvironDict, WriteStatusCallable

from benchmarks import apps
from benchmarks.load import ClientPool, make_certs
from benchmarks.processes import LauncherServer, cpu_seconds
from jetforce_sesh import SessionApplication

REPO = Path(__file__).resolve().parent.parent
REPORT = re.compile(r"app call CPU: (\d+) calls, (\d+) ns")


class TimedApplication(SessionApplication):
    """Serves another application's routes, timing each application call."""

    def __init__(self, inner: SessionApplication) -> None:
        super().__init__(inner.title)
        self.include(inner)
        self.calls = 0
        self.nanoseconds = 0
        atexit.register(self.report)

    def __call__(
        self, environ: EnvironDict, send_status: WriteStatusCallable
    ) -> ApplicationResponse:
        started = time.thread_time_ns()
        # Run the route now, not when Jetforce pulls the body, so that the
        # whole call falls inside the timing.
        chunks = list(super().__call__(environ, send_status))
        self.nanoseconds += time.thread_time_ns() - started
        self.calls += 1
        return chunks

    def report(self) -> None:
        print(
            f"app call CPU: {self.calls} calls, {self.nanoseconds} ns",
            file=sys.stderr,
            flush=True,
        )


def __getattr__(name: str) -> TimedApplication:
    # Made on demand, so that a server builds (and reports) only the one it
    # serves, and the client processes, which import this module, build none.
    inner = {"timed_plain": apps.plain, "timed_counter": apps.counter}.get(name)
    if inner is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    timed = TimedApplication(inner)
    globals()[name] = timed
    return timed


SERVERS = (
    ("plain", "benchmarks.insitu:timed_plain", apps.PLAIN_PATH, ()),
    ("session", "benchmarks.insitu:timed_counter", apps.COUNTER_PATH, ()),
    # The same capsule with every save written through to SQLite.
    (
        "persist",
        "benchmarks.insitu:timed_counter",
        apps.COUNTER_PATH,
        ("--state-dir", "{work}/state"),
    ),
)


def measure(
    requests: int, rounds: int, concurrency: int, certs: int
) -> dict[str, tuple[float, float]]:
    """Per server: µs of app-call CPU per request, and ms of server CPU per request."""
    with tempfile.TemporaryDirectory(prefix="jetforce-sesh-insitu-") as tmp:
        work = Path(tmp)
        pool = ClientPool(make_certs(work, certs), 2)
        servers = {
            name: LauncherServer(
                ["--app", spec, *(arg.format(work=work) for arg in extra)],
                work / f"{name}.log",
                cwd=REPO,
            )
            for name, spec, _, extra in SERVERS
        }
        cpu: dict[str, list[float]] = {name: [] for name in servers}
        try:
            for name, _, path, _ in SERVERS:
                pool.run(servers[name].port, path, certs, concurrency, b"Visit")
            for number in range(rounds):
                order = SERVERS[number % 3 :] + SERVERS[: number % 3]
                order = order if number % 2 == 0 else order[::-1]
                for name, _, path, _ in order:
                    before = cpu_seconds(servers[name].pid)
                    load = pool.run(
                        servers[name].port, path, requests, concurrency, b"Visit"
                    )
                    cpu[name].append(
                        1000 * (cpu_seconds(servers[name].pid) - before) / load.requests
                    )
        finally:
            pool.close()
            for server in servers.values():
                server.stop()
        results = {}
        for name, server in servers.items():
            found = REPORT.search(server.log.read_text())
            if found is None:
                raise RuntimeError(f"{name} server reported no timing:\n{server.log}")
            calls, nanoseconds = int(found.group(1)), int(found.group(2))
            results[name] = (nanoseconds / calls / 1000, statistics.median(cpu[name]))
        return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.insitu",
        description="CPU spent in the application call inside a real server.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--requests", type=int, default=1000, help="Per round")
    parser.add_argument("--rounds", type=int, default=6, help="Alternating rounds")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--certs", type=int, default=64, help="Distinct players")
    args = parser.parse_args(argv)
    results = measure(args.requests, args.rounds, args.concurrency, args.certs)
    for name, (app_us, server_ms) in results.items():
        print(
            f"{name:<8} app call {app_us:6.1f} µs CPU per request;"
            f" whole server {server_ms:.3f} ms CPU per request"
        )
    plain_us, plain_ms = results["plain"]
    session_us, session_ms = results["session"]
    persist_us, persist_ms = results["persist"]
    print(
        f"session − plain: app call {session_us - plain_us:+.1f} µs;"
        f" whole server {1000 * (session_ms - plain_ms):+.0f} µs (noisier)"
    )
    print(
        f"persist − session: app call {persist_us - session_us:+.1f} µs;"
        f" whole server {1000 * (persist_ms - session_ms):+.0f} µs (noisier)"
    )


if __name__ == "__main__":
    main()
