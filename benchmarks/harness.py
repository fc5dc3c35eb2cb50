"""``python -m benchmarks``: every scenario side by side, in interleaved rounds.

All scenario servers are started first and stay up; each round then loads every
one of them in turn, the order rotated from round to round, so that the noise of
a shared machine falls on all of them alike. Rates and CPU per request are
medians over rounds; ratios and differences to the ceiling (stock Jetforce) are
taken within each round, then their median. Latency percentiles pool every
round's requests. Every server gets the same EC P-256 certificate and key.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
from jetforce.tls import generate_ad_hoc_certificate

from benchmarks.load import ClientPool, LoadResult, make_certs
from benchmarks.processes import CPUs, StartError
from benchmarks.scenarios import NAMES, Place, Running, Scenario, by_name
from jetforce_sesh.cli.adhoc import ad_hoc_certificate

#: What every other row is compared with, within each round: stock Jetforce.
CEILING = "stock"
#: The Redis store's goal: server + Redis CPU per request over the memory slab's.
REDIS_GOAL = 1.20
SETTLE = (
    0.1  # seconds for a server to finish closing connections before its CPU is read
)


@attrs.frozen
class Sample:
    """One scenario in one round."""

    load: LoadResult
    cpu: float  # server-side CPU seconds over the window, daemons included
    service_cpu: float = 0.0  # of which the daemons' (Redis, the KV daemon)

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / max(self.load.requests, 1)

    @property
    def service_cpu_ms(self) -> float:
        return 1000 * self.service_cpu / max(self.load.requests, 1)

    @property
    def client_cpu_ms(self) -> float:
        return 1000 * self.load.client_cpu / max(self.load.requests, 1)


@attrs.frozen
class Row:
    name: str
    title: str
    requests: int = 0
    rate: float = float("nan")
    ratio: float = float("nan")  # to the ceiling's req/s, paired by round
    p50_ms: float = float("nan")
    p99_ms: float = float("nan")
    cpu_ms: float = float("nan")
    cpu_delta_ms: float = float("nan")  # minus the ceiling's, paired by round
    service_cpu_ms: float = float("nan")  # of cpu_ms, the daemons' (Redis...)
    client_cpu_ms: float = float("nan")
    errors: int = 0
    skipped: str | None = None


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def summarise(
    scenario: Scenario, mine: Sequence[Sample], ceiling: Sequence[Sample], errors: int
) -> Row:
    paired = list(zip(mine, ceiling, strict=False))
    latencies = sorted(lat for s in mine for lat in s.load.latencies)
    return Row(
        name=scenario.name,
        title=scenario.title,
        requests=sum(s.load.requests for s in mine),
        rate=_median([s.load.rate for s in mine]),
        ratio=_median([s.load.rate / c.load.rate for s, c in paired]),
        p50_ms=1000 * _percentile(latencies, 0.50),
        p99_ms=1000 * _percentile(latencies, 0.99),
        cpu_ms=_median([s.cpu_ms for s in mine]),
        cpu_delta_ms=_median([s.cpu_ms - c.cpu_ms for s, c in paired]),
        service_cpu_ms=_median([s.service_cpu_ms for s in mine]),
        client_cpu_ms=_median([s.client_cpu_ms for s in mine]),
        errors=errors + sum(s.load.errors for s in mine),
    )


def paired_ratio(samples: dict[str, list[Sample]], top: str, bottom: str) -> float:
    """Median over rounds of ``top``'s req/s over ``bottom``'s."""
    if not samples.get(top) or not samples.get(bottom):
        return float("nan")
    pairs = zip(samples[top], samples[bottom], strict=True)
    return _median([a.load.rate / b.load.rate for a, b in pairs])


def paired_cpu_ratio(samples: dict[str, list[Sample]], top: str, bottom: str) -> float:
    """Median over rounds of ``top``'s server CPU per request over ``bottom``'s."""
    if not samples.get(top) or not samples.get(bottom):
        return float("nan")
    pairs = zip(samples[top], samples[bottom], strict=True)
    return _median([a.cpu_ms / b.cpu_ms for a, b in pairs])


def paired_cpu_delta(samples: dict[str, list[Sample]], top: str, bottom: str) -> float:
    """Median over rounds of ``top``'s server CPU per request minus ``bottom``'s."""
    if not samples.get(top) or not samples.get(bottom):
        return float("nan")
    pairs = zip(samples[top], samples[bottom], strict=True)
    return _median([a.cpu_ms - b.cpu_ms for a, b in pairs])


def table(rows: Sequence[Row]) -> str:
    lines = [
        "| scenario | req/s | × ceiling | p50 ms | p99 ms | server CPU ms/req"
        " | of which daemons | Δ CPU ms/req | client CPU ms/req | requests | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        label = f"{row.name}: {row.title}"
        if row.skipped is not None:
            lines.append(f"| {label} | skipped: {row.skipped} | | | | | | | | | |")
            continue
        lines.append(
            f"| {label} | {row.rate:.0f} | {row.ratio:.3f}"
            f" | {row.p50_ms:.1f} | {row.p99_ms:.1f} | {row.cpu_ms:.3f}"
            f" | {row.service_cpu_ms:.3f}"
            f" | {row.cpu_delta_ms:+.3f} | {row.client_cpu_ms:.3f}"
            f" | {row.requests} | {row.errors} |"
        )
    return "\n".join(lines)


@attrs.frozen
class Target:
    what: str
    value: float
    goal: float
    at_most: bool = False

    @property
    def met(self) -> bool:
        return self.value <= self.goal if self.at_most else self.value >= self.goal

    def line(self) -> str:
        sign = "≤" if self.at_most else "≥"
        verdict = "met" if self.met else "MISSED"
        return (
            f"- {self.what}: {self.value:.3f} (target {sign} {self.goal:g}) — {verdict}"
        )


def targets(rows: Sequence[Row], samples: dict[str, list[Sample]]) -> list[Target]:
    """The issues' targets for the session route (and for persistence beside
    it), for the scenarios that ran. Ratios of CPU are paired by round."""
    ran = {row.name: row for row in rows if row.skipped is None}
    found = []
    if "demo" in ran and CEILING in ran:
        # The second running-it-for-real issue's goal: the demo capsule's
        # /counter within 5% of stock Jetforce's plain route, server CPU.
        found.append(
            Target(
                "demo /counter CPU ÷ stock Jetforce CPU per request",
                paired_cpu_ratio(samples, "demo", CEILING),
                1.05,
                at_most=True,
            )
        )
    if "session" not in ran or "plain" not in ran:
        return found
    session = ran["session"]
    found += [
        Target(
            "session req/s ÷ plain req/s",
            paired_ratio(samples, "session", "plain"),
            0.97,
        ),
        Target(
            "session CPU − plain CPU, ms/req",
            paired_cpu_delta(samples, "session", "plain"),
            0.03,
            at_most=True,
        ),
        Target(
            "session CPU ÷ plain CPU per request",
            paired_cpu_ratio(samples, "session", "plain"),
            1.05,
            at_most=True,
        ),
    ]
    if "persist" in ran:
        # The persistence issue's goal: --state-dir costs at most 5% more server
        # CPU per request than the memory slab, measured in the same run.
        found.append(
            Target(
                "persist CPU ÷ session CPU per request",
                ran["persist"].cpu_ms / session.cpu_ms,
                1.05,
                at_most=True,
            )
        )
    if "cgi-bridge" in ran and "cgi-c" in ran:
        # The bridge issue's goal: a C CGI through the bridge costs no more CPU
        # per request (server and CGI children) than through the daemon (server,
        # children and daemon), measured in the same run.
        found.append(
            Target(
                "C CGI via bridge CPU ÷ via daemon CPU per request",
                ran["cgi-bridge"].cpu_ms / ran["cgi-c"].cpu_ms,
                1.0,
                at_most=True,
            )
        )
    for name in ("redis", "cluster"):
        # The Redis store's goal (issues 22 and 23): server + Redis CPU per
        # request at most 1.20 times the memory slab's, on a single server and
        # on a cluster, paired by round in the same run.
        if name in ran:
            found.append(
                Target(
                    f"{name} (server + Redis) CPU ÷ session CPU per request",
                    paired_cpu_ratio(samples, name, "session"),
                    REDIS_GOAL,
                    at_most=True,
                )
            )
    for name, title, goal in (("cgi-c", "C", 2.2), ("cgi-py", "Python", 9.0)):
        if name in ran:
            ratio = paired_ratio(samples, "session", name)
            found.append(Target(f"session req/s ÷ {title} CGI req/s", ratio, goal))
    return found


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), Linux {platform.release()},"
        f" Python {platform.python_version()}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Load-test every state architecture side by side over real TLS.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    group = parser.add_argument_group("load")
    group.add_argument(
        "--requests",
        type=int,
        default=600,
        help="Requests per scenario per round (the CGI scenarios get a fraction)",
    )
    group.add_argument(
        "--concurrency", type=int, default=8, help="Requests in flight at once"
    )
    group.add_argument("--clients", type=int, default=2, help="Client processes")
    group.add_argument(
        "--certs", type=int, default=64, help="Distinct client certificates (players)"
    )
    group.add_argument(
        "--warmup",
        type=int,
        default=None,
        help="Requests per scenario before the first round (default: one per player)",
    )
    group.add_argument(
        "--pin",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Run each server (with its CGI runs and daemons) on one CPU and the"
        " clients on the others: steadier figures, but it takes from the CGI"
        " scenarios the second CPU their processes could otherwise use",
    )
    group.add_argument(
        "--server-key",
        choices=("ec", "rsa"),
        default="ec",
        help="ec: the EC P-256 certificate jetforce-sesh makes when given none,"
        " as users get by default; rsa: the RSA-2048 one stock jetforce makes,"
        " a costlier handshake",
    )
    group = parser.add_argument_group("rounds")
    group.add_argument("--rounds", type=int, default=20, help="Interleaved rounds")
    group.add_argument(
        "--scenarios", default=",".join(NAMES), help="Comma-separated scenarios to run"
    )
    group = parser.add_argument_group("output")
    group.add_argument("--json", type=Path, help="Also write every figure here")
    return parser


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _placement(pin: bool) -> tuple[CPUs, CPUs]:
    """CPUs for the servers and for the clients (None: wherever the OS likes)."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None
    return frozenset(cpus[:1]), frozenset(cpus[1:])


def order(scenarios: Sequence[Scenario], number: int) -> list[Scenario]:
    """Round ``number``'s order: rotated each round, and reversed every other
    round, so that no scenario always follows the same one and inherits its
    after-effects (processes being reaped, sockets closing) every time."""
    shift = number % len(scenarios) if scenarios else 0
    rotated = [*scenarios[shift:], *scenarios[:shift]]
    return rotated[::-1] if number % 2 else rotated


def _count(scenario: Scenario, requests: int) -> int:
    return max(1, round(requests * scenario.share))


@attrs.define
class Run:
    """Scenario servers that are up, and the clients that load them."""

    args: argparse.Namespace
    pool: ClientPool
    running: dict[str, Running]
    samples: dict[str, list[Sample]] = attrs.Factory(dict)
    errors: dict[str, int] = attrs.Factory(dict)

    def load(self, scenario: Scenario, requests: int) -> LoadResult:
        server = self.running[scenario.name]
        return self.pool.run(
            server.ports,
            scenario.path,
            requests,
            self.args.concurrency,
            scenario.expect,
        )

    def warm_up(self, scenario: Scenario, requests: int) -> None:
        """First visits for every player, and the server's first-request costs."""
        result = self.load(scenario, requests)
        self.errors[scenario.name] = result.errors
        for error in result.error_samples:
            _log(f"warm-up {scenario.name}: {error}")

    def measure(self, scenario: Scenario, label: str) -> None:
        server = self.running[scenario.name]
        before = server.cpu()
        services = server.service_cpu()
        result = self.load(scenario, _count(scenario, self.args.requests))
        time.sleep(SETTLE)
        sample = Sample(result, server.cpu() - before, server.service_cpu() - services)
        self.samples.setdefault(scenario.name, []).append(sample)
        _log(
            f"{label} {scenario.name}: {result.rate:.0f} req/s,"
            f" {sample.cpu_ms:.3f} ms CPU/req, {result.errors} errors"
        )
        for error in result.error_samples:
            _log(f"  error: {error}")


def run(args: argparse.Namespace) -> tuple[list[Row], dict[str, list[Sample]]]:
    """Start every scenario, load them in rotated rounds, stop them; the rows."""
    scenarios = by_name([n.strip() for n in args.scenarios.split(",") if n.strip()])
    skipped = {s.name: r for s in scenarios if (r := s.missing()) is not None}
    active = [s for s in scenarios if s.name not in skipped]
    server_cpus, client_cpus = _placement(args.pin)
    with tempfile.TemporaryDirectory(prefix="jetforce-sesh-bench-") as tmp:
        work = Path(tmp)
        (work / "certs").mkdir()
        certs = make_certs(work / "certs", args.certs)
        # One certificate for every server, stock Jetforce's too: the EC P-256
        # one jetforce-sesh makes when given none, or Jetforce's own RSA one.
        if args.server_key == "rsa":
            certfile, keyfile = generate_ad_hoc_certificate("localhost")
        else:
            certfile, keyfile = ad_hoc_certificate("localhost")
        server_args = ("--tls-certfile", certfile, "--tls-keyfile", keyfile)
        bench = Run(args, ClientPool(certs, args.clients, client_cpus), {})
        try:
            for number, scenario in enumerate(active):
                # NAME@DIR names a directory: its own home by number.
                home = work / f"{number}-{scenario.name.partition('@')[0]}"
                home.mkdir()
                place = Place(home, server_cpus, server_args)
                bench.running[scenario.name] = scenario.launch(place)
            warmup = args.certs if args.warmup is None else args.warmup
            for scenario in active:
                if warmup > 0:
                    bench.warm_up(scenario, warmup)
            for number in range(args.rounds):
                for scenario in order(active, number):
                    bench.measure(scenario, f"round {number + 1}/{args.rounds}")
        finally:
            bench.pool.close()
            for server in bench.running.values():
                server.stop()
    ceiling = bench.samples.get(CEILING, [])
    rows = [
        Row(s.name, s.title, skipped=skipped[s.name])
        if s.name in skipped
        else summarise(
            s, bench.samples.get(s.name, []), ceiling, bench.errors.get(s.name, 0)
        )
        for s in scenarios
    ]
    return rows, bench.samples


def comparisons(samples: dict[str, list[Sample]]) -> list[str]:
    """Server CPU per request of each row over stock Jetforce's, paired by round,
    and the noise of the run: the control row over the plain one (the same
    server twice)."""
    lines = []
    for name in samples:
        if name != CEILING and CEILING in samples:
            lines.append(
                f"- {name} ÷ {CEILING}: {paired_cpu_ratio(samples, name, CEILING):.3f}"
            )
    if "session" in samples:
        # The Redis rows (and any NAME@DIR) against the memory slab, round by
        # round: the median and the spread, server and daemons apart.
        for name in samples:
            if name == "session" or not any(s.service_cpu for s in samples[name]):
                continue
            ratios = sorted(
                a.cpu_ms / b.cpu_ms
                for a, b in zip(samples[name], samples["session"], strict=True)
            )
            server = _median([s.cpu_ms - s.service_cpu_ms for s in samples[name]])
            daemons = _median([s.service_cpu_ms for s in samples[name]])
            lines.append(
                f"- {name} ÷ session (server + daemons): {_median(ratios):.3f}"
                f" (rounds {ratios[0]:.3f}–{ratios[-1]:.3f}); server"
                f" {server:.3f} + daemons {daemons:.3f} ms/req"
            )
    for name in samples:
        # A scenario on another checkout's code against the same on this one's.
        base, _, where = name.partition("@")
        if where and base in samples:
            ratios = sorted(
                a.cpu_ms / b.cpu_ms
                for a, b in zip(samples[base], samples[name], strict=True)
            )
            lines.append(
                f"- {base} ÷ {name} (this checkout over that one):"
                f" {_median(ratios):.3f}"
                f" (rounds {ratios[0]:.3f}–{ratios[-1]:.3f})"
            )
    if "control" in samples and "plain" in samples:
        lines.append(
            f"- noise: control ÷ plain (one server twice):"
            f" {paired_cpu_ratio(samples, 'control', 'plain'):.3f}"
        )
    return lines


def report(
    args: argparse.Namespace,
    rows: Sequence[Row],
    checks: Sequence[Target],
    samples: dict[str, list[Sample]] | None = None,
) -> str:
    server, client = _placement(args.pin)
    placement = (
        f"servers on CPU {sorted(server)}, clients on CPU {sorted(client)}"
        if server is not None and client is not None
        else "servers and clients unpinned"
    )
    lines = [
        f"Machine: {machine()}",
        f"Load: {args.requests} requests per scenario per round (cgi-c and"
        f" cgi-bridge half,"
        f" cgi-py an eighth), concurrency {args.concurrency}, {args.clients} client"
        f" processes, {args.certs} client certificates, {args.rounds} rounds;"
        f" {placement}; {args.server_key.upper()} server key.",
        "",
        table(rows),
    ]
    compared = comparisons(samples or {})
    if compared:
        lines += ["", "Server CPU per request, paired by round:", *compared]
    if checks:
        lines += ["", "Targets:"]
        lines += [check.line() for check in checks]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        rows, samples = run(args)
    except (ValueError, StartError) as error:
        print(f"python -m benchmarks: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    checks = targets(rows, samples)
    print(report(args, rows, checks, samples))
    if args.json is not None:
        document = {
            "machine": machine(),
            "argv": list(sys.argv[1:] if argv is None else argv),
            "rows": [attrs.asdict(row) for row in rows],
            "targets": [attrs.asdict(t) | {"met": t.met} for t in checks],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
