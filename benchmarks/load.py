"""The load generator: real TLS, one Gemini request per connection, many players.

Each client process holds an ``ssl.SSLContext`` per client certificate and runs a
few threads; each thread owns its own certificates, so no two requests of one
player are ever in flight together (a player's requests are serialised by the
session route anyway, and that wait is not what is measured). Every connection
is a full handshake, as a Gemini client that does not resume sessions makes.
"""

from __future__ import annotations

import multiprocessing
import os
import ssl
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import attrs

from benchmarks.processes import CPUs
from jetforce_sesh.testing import (
    ClientCertificate,
    client_context,
    exchange,
    make_client_certificate,
)

HOST = "localhost"
TIMEOUT = 30.0
ERROR_SAMPLES = 5


def make_certs(directory: Path, count: int) -> list[ClientCertificate]:
    """``count`` client certificates, one per player."""
    return [
        make_client_certificate(directory, f"player{number}") for number in range(count)
    ]


@attrs.frozen
class Job:
    """One client process's share of a measurement."""

    #: The servers' ports: a thread sends its requests to each in turn, as a
    #: round-robin load balancer would (one port: one server).
    ports: tuple[int, ...]
    path: str
    expect: bytes
    # Per thread: how many requests, and which certificates (by index) it uses.
    counts: tuple[int, ...]
    certs: tuple[tuple[int, ...], ...]


@attrs.frozen
class Tally:
    """What one client process saw."""

    latencies: tuple[float, ...]
    errors: int
    error_samples: tuple[str, ...]
    cpu: float


@attrs.frozen
class LoadResult:
    """A measurement: every client process's tally, over ``elapsed`` seconds."""

    requests: int
    errors: int
    elapsed: float
    latencies: tuple[float, ...]  # seconds, sorted
    client_cpu: float
    error_samples: tuple[str, ...]

    @property
    def rate(self) -> float:
        return self.requests / self.elapsed


def _contexts(certs: Sequence[tuple[Path, Path]]) -> list[ssl.SSLContext]:
    return [client_context(*files) for files in certs]


def _run_thread(
    contexts: Sequence[ssl.SSLContext],
    job: Job,
    thread: int,
    latencies: list[float],
    failures: list[str],
) -> None:
    urls = [f"gemini://{HOST}:{port}{job.path}\r\n".encode() for port in job.ports]
    mine = job.certs[thread]
    for number in range(job.counts[thread]):
        turn = (number + thread) % len(job.ports)
        started = time.perf_counter()
        try:
            reply = exchange(
                contexts[mine[number % len(mine)]],
                job.ports[turn],
                urls[turn],
                timeout=TIMEOUT,
            )
        except OSError as error:
            failures.append(f"{type(error).__name__}: {error}")
            continue
        if not reply.startswith(b"20 ") or job.expect not in reply:
            failures.append(repr(reply[:120]))
            continue
        latencies.append(time.perf_counter() - started)


def run_job(contexts: Sequence[ssl.SSLContext], job: Job) -> Tally:
    latencies: list[float] = []
    failures: list[str] = []
    cpu = time.process_time()
    threads = [
        threading.Thread(
            target=_run_thread, args=(contexts, job, n, latencies, failures)
        )
        for n in range(len(job.counts))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Tally(
        tuple(latencies),
        len(failures),
        tuple(failures[:ERROR_SAMPLES]),
        time.process_time() - cpu,
    )


def _worker(conn: Connection, certs: Sequence[tuple[Path, Path]], cpus: CPUs) -> None:
    if cpus is not None:
        os.sched_setaffinity(0, cpus)
    contexts = _contexts(certs)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(run_job(contexts, job))


def split(total: int, parts: int) -> list[int]:
    """``total`` spread over ``parts`` as evenly as whole numbers allow."""
    return [total // parts + (1 if n < total % parts else 0) for n in range(parts)]


class ClientPool:
    """Client processes that stay up for the whole run, so their start-up is never
    inside a measured window."""

    def __init__(
        self,
        certs: Sequence[ClientCertificate],
        processes: int,
        cpus: CPUs = None,
    ) -> None:
        self.certs = list(certs)
        context = multiprocessing.get_context("spawn")
        self._conns: list[Connection] = []
        self._procs = []
        for _ in range(processes):
            mine, theirs = context.Pipe()
            # Paths only: a spawned process cannot be sent certificate objects.
            paths = [(c.cert_path, c.key_path) for c in self.certs]
            proc = context.Process(target=_worker, args=(theirs, paths, cpus))
            proc.daemon = True
            proc.start()
            self._conns.append(mine)
            self._procs.append(proc)
        for conn in self._conns:
            conn.recv()

    def run(
        self,
        port: int | Sequence[int],
        path: str,
        requests: int,
        concurrency: int,
        expect: bytes,
    ) -> LoadResult:
        """Send ``requests`` requests, ``concurrency`` at a time, to the server
        on ``port`` (or to the servers on several, in turn), and wait."""
        ports = (port,) if isinstance(port, int) else tuple(port)
        processes = len(self._conns)
        concurrency = min(concurrency, len(self.certs), max(requests, 1))
        threads = split(concurrency, processes)
        counts = split(requests, concurrency)
        # Deal the certificates out to threads like cards, so each owns its own.
        owned = [
            tuple(range(t, len(self.certs), concurrency)) for t in range(concurrency)
        ]
        jobs = []
        first = 0
        for n in threads:
            thread_range = range(first, first + n)
            jobs.append(
                Job(
                    ports,
                    path,
                    expect,
                    tuple(counts[t] for t in thread_range),
                    tuple(owned[t] for t in thread_range),
                )
            )
            first += n
        started = time.perf_counter()
        active = [
            conn for conn, job in zip(self._conns, jobs, strict=True) if job.counts
        ]
        for conn, job in zip(self._conns, jobs, strict=True):
            if job.counts:
                conn.send(job)
        tallies: list[Tally] = [conn.recv() for conn in active]
        elapsed = time.perf_counter() - started
        latencies = sorted(lat for tally in tallies for lat in tally.latencies)
        return LoadResult(
            requests=len(latencies),
            errors=sum(t.errors for t in tallies),
            elapsed=elapsed,
            latencies=tuple(latencies),
            client_cpu=sum(t.cpu for t in tallies),
            error_samples=tuple(s for t in tallies for s in t.error_samples),
        )

    def close(self) -> None:
        for conn in self._conns:
            conn.send(None)
        for proc in self._procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
