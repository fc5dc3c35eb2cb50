"""``python -m benchmarks --scenarios NAME@DIR``: a scenario served by another
checkout's code, beside the same scenario on this one's, in one interleaved
run; and how the harness reports it (no load is run here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.harness import Sample, comparisons
from benchmarks.load import LoadResult
from benchmarks.scenarios import by_name
from tests.support import REPO


def test_a_scenario_at_a_checkout_keeps_its_name_and_says_whose_code() -> None:
    [here, there] = by_name(["redis", f"redis@{REPO}"])
    assert "redis" == here.name
    assert f"redis@{REPO}" == there.name
    assert f"{here.title}, code of {REPO.resolve()}" == there.title
    assert here.path == there.path


def test_a_directory_that_is_no_checkout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        by_name([f"redis@{tmp_path}"])
    assert f"redis@{tmp_path}: {tmp_path} is not a jetforce-sesh checkout" == str(
        raised.value
    )


def sample(requests: int, cpu: float, redis: float) -> Sample:
    load = LoadResult(requests, 0, 1.0, (), 0.0, ())
    return Sample(load, cpu, redis)


def test_the_redis_rows_are_compared_with_the_memory_slab_and_each_other() -> None:
    """Per round: (server + Redis) over the memory slab's, its median and
    spread, the server and Redis apart; and a row over its other checkout's."""
    samples = {
        "session": [sample(1000, 0.8, 0.0), sample(1000, 1.0, 0.0)],
        "redis": [sample(1000, 1.0, 0.1), sample(1000, 1.3, 0.1)],
        "redis@/x": [sample(1000, 1.1, 0.1), sample(1000, 1.3, 0.1)],
    }
    assert [
        "- redis ÷ session (server + daemons): 1.275 (rounds 1.250–1.300);"
        " server 1.050 + daemons 0.100 ms/req",
        "- redis@/x ÷ session (server + daemons): 1.337 (rounds 1.300–1.375);"
        " server 1.100 + daemons 0.100 ms/req",
        "- redis ÷ redis@/x (this checkout over that one): 0.955 (rounds 0.909–1.000)",
    ] == comparisons(samples)
