"""``python -m benchmarks.micro``: the per-request session path, and memory per record.

Timing: the session route of ``benchmarks.apps.counter`` (a 64-byte record) is
called directly with jetforce ``Request`` objects, one per player, for thousands
of players so that every call goes through the index. Each request carries a
real ``cryptography`` certificate, as Jetforce's own environ does, so the
certificate date check is part of the path. The same requests go to a route
that returns a constant (the ceiling) and, for scale, through each
application's full ``__call__`` (URL parsing and routing, Jetforce's part).
Timings alternate between the routes, repeat, and report the median and best.

Memory: a :class:`~jetforce_sesh.MemoryStore` of 64-byte records is filled to
capacity at 100k and 1M records; the resident memory it adds (``/proc/self/statm``)
and the bytes Python allocated for it (``tracemalloc``) are divided by the count.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from jetforce.app.base import JetforceApplication, Request
from twisted.internet.task import Clock

from benchmarks import apps
from jetforce_sesh import MsgpackCodec, SlabOptions
from jetforce_sesh.accounts.records import Member
from jetforce_sesh.identity import parse_fingerprint
from jetforce_sesh.stores import ANY_VERSION, MemoryStore
from jetforce_sesh.testing import fingerprint_of, make_client_certificate, make_environ

RECORD_SIZE = 64
PATH_TARGET_US = 10.0
MEMORY_TARGET = RECORD_SIZE + 128  # bytes per record, index included
PAGE = os.sysconf("SC_PAGE_SIZE")


def _certificate() -> x509.Certificate:
    with tempfile.TemporaryDirectory() as directory:
        return make_client_certificate(Path(directory), "micro").certificate


def environs(path: str, players: int) -> list[dict[str, Any]]:
    """One environ per player, each with the certificate object Jetforce adds."""
    cert = _certificate()
    made = []
    for number in range(players):
        environ = make_environ(path, player=f"player{number}")
        environ["client_certificate"] = cert
        made.append(environ)
    return made


def _per_call(call: Callable[[Any], object], items: Sequence[Any]) -> float:
    """Seconds per call of ``call`` over ``items``."""
    started = time.perf_counter()
    for item in items:
        call(item)
    return (time.perf_counter() - started) / len(items)


def _through_app(app: JetforceApplication) -> Callable[[dict[str, Any]], object]:
    def status(code: int, meta: str) -> None:
        pass

    return lambda environ: list(app(environ, status))


Way = tuple[Callable[[Any], object], Sequence[Any]]


def _ways(players: int) -> dict[str, Way]:
    """Each way into a route, with the requests (or environs) it is called with."""
    plain_env = environs(apps.PLAIN_PATH, players)
    session_env = environs(apps.COUNTER_PATH, players)
    linked = [Request(e) for e in session_env]
    return {
        "constant route": (apps.constant, [Request(e) for e in plain_env]),
        "session route": (apps.count_visit, [Request(e) for e in session_env]),
        "session route, accounts on": (apps.count_account_visit, linked),
        "plain app __call__": (_through_app(apps.plain), plain_env),
        "session app __call__": (_through_app(apps.counter), session_env),
    }


def _open_counter(players: int) -> None:
    clock = Clock()
    clock.advance(time.time())  # certificates are checked against this clock
    options = SlabOptions(max_records=max(players, 16))
    apps.counter.open(clock, options)
    apps.accounted.open(clock, options)
    # Every player linked (a certificate's link record exists): the key step's
    # dearer case, a hit and a decode, not a miss.
    members = apps.accounts.members
    for number in range(players):
        key = fingerprint_of(f"player{number}")
        data = members.codec.encode(Member(account=key, last_seen=clock.seconds()))
        members.opened.immediate.save_now(key, data, ANY_VERSION)  # type: ignore[union-attr]


def time_routes(players: int, repeats: int) -> dict[str, list[float]]:
    """Microseconds per call for each way in, over ``repeats`` alternating passes."""
    _open_counter(players)
    ways = _ways(players)
    # The first pass makes every player's record: that is the new-player cost.
    session, requests = ways["session route"]
    results = {"session route, first visit": [1e6 * _per_call(session, requests)]}
    results.update({name: [] for name in ways})
    for _ in range(repeats):
        for name, (call, items) in ways.items():
            results[name].append(1e6 * _per_call(call, items))
    apps.counter.close(grace=0)
    apps.accounted.close(grace=0)
    return results


def time_steps(players: int, repeats: int) -> dict[str, float]:
    """Best microseconds per call of each step of the path, alone."""
    clock = Clock()
    clock.advance(time.time())
    slab = MemoryStore("steps", record_size=RECORD_SIZE, capacity=players, clock=clock)
    codec = MsgpackCodec(apps.Visits, RECORD_SIZE)
    hashes_ = [
        make_environ("/", player=f"player{n}")["TLS_CLIENT_HASH"]
        for n in range(players)
    ]
    keys = [parse_fingerprint(h) for h in hashes_]
    record = codec.encode(apps.Visits(count=12345))
    for key in keys:
        slab.save_now(key, record, ANY_VERSION)
    visits = [codec.decode(record) for _ in keys]
    steps: dict[str, tuple[Callable[[Any], object], Sequence[Any]]] = {
        "identity: parse_fingerprint": (parse_fingerprint, hashes_),
        "slab: load_now": (slab.load_now, keys),
        "decode": (codec.decode, [record] * players),
        "handler body (count += 1, page)": (
            lambda v: apps.page(v.count + 1),
            visits,
        ),
        "encode": (codec.encode, visits),
        "store: save_now": (lambda k: slab.save_now(k, record, ANY_VERSION), keys),
    }
    return {
        name: min(1e6 * _per_call(call, items) for _ in range(repeats))
        for name, (call, items) in steps.items()
    }


def _rss() -> int:
    resident = int(Path("/proc/self/statm").read_text().split()[1])
    return resident * PAGE


def _fill(slab: MemoryStore, count: int) -> None:
    record = bytes(range(RECORD_SIZE))
    for number in range(count):
        slab.save_now(number.to_bytes(32, "little"), record, ANY_VERSION)


def memory_per_record(count: int) -> dict[str, float]:
    """Bytes per record of a full slab, by three measures."""
    gc.collect()
    before = _rss()
    slab = MemoryStore("memory", record_size=RECORD_SIZE, capacity=count, clock=Clock())
    _fill(slab, count)
    rss = _rss() - before
    reserved = slab.reserved_bytes
    del slab
    gc.collect()
    tracemalloc.start()
    slab = MemoryStore("memory", record_size=RECORD_SIZE, capacity=count, clock=Clock())
    _fill(slab, count)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del slab
    gc.collect()
    return {
        "RSS delta": rss / count,
        "tracemalloc current": current / count,
        "tracemalloc peak": peak / count,
        "reserved_bytes": reserved / count,
    }


def _stats(values: Sequence[float]) -> str:
    return f"{statistics.median(values):7.2f} µs median, {min(values):7.2f} best"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.micro",
        description="Time the per-request session path; measure memory per record.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--players", type=int, default=10_000, help="Distinct players")
    parser.add_argument("--repeats", type=int, default=7, help="Passes per route")
    parser.add_argument(
        "--memory",
        default="100000,1000000",
        help="Slab sizes to measure, comma-separated (empty: skip)",
    )
    args = parser.parse_args(argv)

    print(f"Per-request path, {args.players} players, {RECORD_SIZE}-byte record:")
    routes = time_routes(args.players, args.repeats)
    for name, values in routes.items():
        print(f"  {name:<28} {_stats(values)}")
    session = statistics.median(routes["session route"])
    constant = statistics.median(routes["constant route"])
    full_plain = statistics.median(routes["plain app __call__"])
    full_session = statistics.median(routes["session app __call__"])
    verdict = "met" if session <= PATH_TARGET_US else "MISSED"
    print(
        f"  session path: {session:.2f} µs per request (target ≤ {PATH_TARGET_US:g} µs)"
        f" — {verdict}"
    )
    print(
        f"  over the constant route: +{session - constant:.2f} µs"
        f" ({session / constant:.1f}×); through the app:"
        f" +{full_session - full_plain:.2f} µs ({full_session / full_plain:.2f}×)"
    )
    print("Steps alone (best of passes):")
    for name, value in time_steps(args.players, args.repeats).items():
        print(f"  {name:<34} {value:6.2f} µs")

    sizes = [int(n) for n in args.memory.split(",") if n.strip()]
    if sizes:
        print(f"Memory per record, {RECORD_SIZE}-byte records, slab filled:")
    for size in sizes:
        figures = memory_per_record(size)
        shown = ", ".join(f"{name} {value:.1f} B" for name, value in figures.items())
        worst = max(figures["RSS delta"], figures["tracemalloc peak"])
        verdict = "met" if worst <= MEMORY_TARGET else "MISSED"
        print(f"  {size:>9,} records: {shown}")
        print(f"  {'':>9}          target ≤ {MEMORY_TARGET} B per record — {verdict}")


if __name__ == "__main__":
    main()
