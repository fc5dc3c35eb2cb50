"""``--workers 2`` against one process, on one Redis, in the same run.

    python -m benchmarks.workers [--rounds 5] [--requests 3000] [--concurrency 32]
                                 [--baseline REV]

Three servers stay up for the whole run, each on the counter
(``benchmarks.apps:counter``) and the same ``valkey-server`` on a UNIX socket
(a prefix each): one process, the same again (the control row: what two
identical rows differ by is the noise), ``--workers 2``, and ``--workers 2``
with ``--rate-limit`` and ``--rate-limit-cert`` counted in Redis (and, with
``--baseline REV``, the same again running the package as git revision ``REV``
had it: before and after a change, in one run). Rounds take them
in turn, in an order that changes each round. For each it reports requests per
second, the CPU per request of the server (the supervisor and every worker),
of Redis and of the load generator, and how much of the machine the load
generator took. From the CPU per request it projects what a machine with more
cores would serve: each part's cores divided by its CPU per request, the
least of them being the bottleneck (one Redis is one thread: one core at most).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
from pathlib import Path

from benchmarks.load import ClientPool, make_certs
from benchmarks.processes import LauncherServer, UnixSocketService, cpu_seconds
from benchmarks.scenarios import EXPECT, valkey_server
from jetforce_sesh.cli.adhoc import ad_hoc_certificate


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def server_cpu(pid: int) -> float:
    """CPU seconds of a server: its process and its live workers."""
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def checkout(revision: str, into: Path) -> Path:
    """The files of git ``revision`` of this checkout, in ``into``."""
    into.mkdir()
    archive = subprocess.run(
        ["git", "archive", revision], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="also run --workers 2 with both rate limits on the package of this"
        " git revision (e.g. a commit before a change)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        home = Path(work)
        sock = home / "redis.sock"
        redis = UnixSocketService(
            [
                str(valkey_server()),
                *("--port", "0", "--unixsocket", str(sock)),
                *("--save", "", "--appendonly", "no", "--dir", str(home)),
            ],
            sock,
            home / "redis.log",
        )
        certfile, keyfile = ad_hoc_certificate("localhost")
        base = [
            *("--app", "benchmarks.apps:counter", "--store", f"unix://{sock}"),
            *("--tls-certfile", certfile, "--tls-keyfile", keyfile),
            *("--max-queued", "1000"),
        ]
        limited = [
            *("--workers", "2", "--rate-limit", "1000000/1h"),
            *("--rate-limit-cert", "1000000/1h"),
        ]
        shapes: dict[str, list[str]] = {
            "1 process": [],
            "1 process (control)": [],
            "--workers 2": ["--workers", "2"],
            # The shared counters' cost: two more counts in Redis a request.
            "--workers 2, both rate limits": limited,
        }
        #: Where a row's package comes from, if not from here.
        elsewhere: dict[str, Path] = {}
        if args.baseline:
            name = f"--workers 2, both rate limits, at {args.baseline}"
            shapes[name] = limited
            elsewhere[name] = checkout(args.baseline, home / "base")
        servers = {
            name: LauncherServer(
                [*base, "--store-prefix", f"bench{n}", *extra],
                home / f"server{n}.log",
                # python -m imports from the working directory first.
                env={"PYTHONPATH": str(elsewhere[name])} if name in elsewhere else None,
                cwd=elsewhere.get(name),
            )
            for n, (name, extra) in enumerate(shapes.items())
        }
        pool = ClientPool(make_certs(home, 256), args.clients)
        samples: dict[str, list[tuple[float, float, float, float, float]]] = {
            name: [] for name in shapes
        }
        try:
            names = list(shapes)
            for server in servers.values():  # warm up: records made, code hot
                pool.run(server.port, "/counter", 500, args.concurrency, EXPECT)
            for number in range(args.rounds):
                turn = names[number % len(names) :] + names[: number % len(names)]
                for name in turn:
                    server = servers[name]
                    cpu0, redis0 = server_cpu(server.pid), cpu_seconds(redis.pid)
                    result = pool.run(
                        server.port, "/counter", args.requests, args.concurrency, EXPECT
                    )
                    cpu = server_cpu(server.pid) - cpu0
                    redis_cpu = cpu_seconds(redis.pid) - redis0
                    assert not result.errors, result.error_samples
                    n = result.requests
                    samples[name].append(
                        (
                            result.rate,
                            cpu / n * 1e3,
                            redis_cpu / n * 1e3,
                            result.client_cpu / n * 1e3,
                            result.client_cpu / result.elapsed / 2,
                        )
                    )
        finally:
            for server in servers.values():
                server.stop()
            redis.stop()
    print(
        "| server | req/s | server CPU ms/req | Redis CPU ms/req"
        " | load generator CPU ms/req | machine taken by the load generator |"
    )
    print("|---|---|---|---|---|---|")
    medians = {}
    for name, rows in samples.items():
        median = [statistics.median(column) for column in zip(*rows, strict=True)]
        medians[name] = median
        rate, server, redis_ms, client, share = median
        print(
            f"| {name} | {rate:.0f} | {server:.2f} | {redis_ms:.3f} | {client:.2f}"
            f" | {share:.0%} |"
        )
    _, server, redis_ms, client, _ = medians["--workers 2"]
    cores = args.cores
    print()
    print(f"Projected on {cores} cores, workers on all but the load generator's:")
    for generator in (0, cores // 2):
        serving = cores - generator
        limits = {
            f"{serving} workers' cores": serving / server * 1e3,
            "one Redis (one thread)": 1 / redis_ms * 1e3,
        }
        if generator:
            limits[f"a load generator on {generator} cores"] = generator / client * 1e3
        bottleneck = min(limits, key=limits.__getitem__)
        shown = ", ".join(f"{k}: {v:,.0f} req/s" for k, v in limits.items())
        print(f"- {shown}; bottleneck: {bottleneck}")


if __name__ == "__main__":
    main()
