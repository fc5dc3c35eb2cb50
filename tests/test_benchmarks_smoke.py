"""The load harness still runs end to end: every scenario, tiny counts, no errors.

No timings are asserted: figures on a shared machine say nothing about the code.
This only keeps ``python -m benchmarks`` from rotting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.scenarios import NAMES
from tests.support import REPO

# Stores the harness may skip, with a reason, where they cannot run.
NOT_BUILT = {"persist"}


@pytest.mark.e2e
def test_harness_runs_every_scenario_without_errors(tmp_path: Path) -> None:
    """Each scenario's server starts through the launcher, answers every request
    with its page, and appears in the table; only the unbuilt stores (and the C
    CGI on a machine without gcc) are skipped."""
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            *("--requests", "4", "--rounds", "1", "--concurrency", "2"),
            *("--certs", "4", "--clients", "1", "--json", str(figures)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert 0 == result.returncode, result.stderr
    rows = {row["name"]: row for row in json.loads(figures.read_text())["rows"]}
    no_gcc = {"cgi-c", "cgi-bridge"} if shutil.which("gcc") is None else set()
    may_skip = NOT_BUILT | no_gcc
    assert set(NAMES) == set(rows)
    ran = {name for name, row in rows.items() if row["skipped"] is None}
    assert set(NAMES) - may_skip <= ran
    assert {name: 0 for name in ran} == {name: rows[name]["errors"] for name in ran}
    assert all(rows[name]["requests"] > 0 for name in ran)
    for name in NAMES:
        assert f"| {name}: " in result.stdout


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_codec_comparison_runs() -> None:
    result = run_module("benchmarks.codecs", "--records", "50", "--repeats", "1")
    assert 0 == result.returncode, result.stderr
    assert "MsgpackCodec" in result.stdout
    assert "cattrs + msgpack" in result.stdout


@pytest.mark.e2e
def test_the_stall_benchmark_runs_on_the_real_reactor() -> None:
    result = run_module(
        "benchmarks.stall", "--records", "2000", "--views-seconds", "0.5"
    )
    assert 0 == result.returncode, result.stderr
    lines = result.stdout.splitlines()
    assert "Reading across players, 2,000 records per slab:" in lines
    assert 3 == sum("longest stall" in line for line in lines)
    (viewed,) = [line for line in lines if "hall of fame views" in line]
    # Views 500 times a second for half a second, just after a ranking: ranked
    # again once at most, not once a view.
    assert re.search(
        r" in 0\.5 s; (0 rankings|1 ranking) read( \(and one under way\))?$", viewed
    ), viewed


@pytest.mark.e2e
def test_the_persistence_benchmark_runs_on_the_real_reactor() -> None:
    result = run_module(
        "benchmarks.persist",
        *("--records", "2000", "--seconds", "0.5"),
        *("--operations", "200", "--repeats", "1"),
    )
    assert 0 == result.returncode, result.stderr
    lines = result.stdout.splitlines()
    assert 3 == sum("µs (" in line for line in lines)
    assert any("start-up" in line and "2,000 records" in line for line in lines)
    assert any("longest stall" in line for line in lines)


@pytest.mark.e2e
def test_the_bridge_round_trip_benchmark_runs() -> None:
    result = run_module("benchmarks.bridgetrip", "--trips", "20", "--rounds", "1")
    assert 0 == result.returncode, result.stderr
    lines = result.stdout.splitlines()
    assert 4 == sum("µs per trip" in line for line in lines)
    assert 2 == sum(line.startswith("  bridge ÷ daemon") for line in lines)


@pytest.mark.e2e
def test_the_redis_listing_benchmark_runs_against_a_real_valkey() -> None:
    result = run_module("benchmarks.redislist", "--players", "600", "--limit", "256")
    assert 0 == result.returncode, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("filled 600 records of 20 bytes in ")
    assert "every record (600, 3 pages)" in lines[1]
