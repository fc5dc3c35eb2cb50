"""The code stays ruff- and mypy-clean: part of the suite so CI cannot skip it."""

from __future__ import annotations

import subprocess
import sys

from tests.support import REPO

PYTHON_TREES = (
    "jetforce_sesh",
    "tests",
    "examples",
    "benchmarks",
    "sesh_bridge.py",
)


def check(*command: str) -> tuple[int, str]:
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    return result.returncode, result.stdout + result.stderr


def test_ruff_check() -> None:
    assert (0, "All checks passed!\n") == check(
        sys.executable, "-m", "ruff", "check", "."
    )


def test_ruff_format() -> None:
    # Python only: ruff also formats code blocks in Markdown, which the docs
    # keep as readers see them.
    code, output = check(
        sys.executable, "-m", "ruff", "format", "--check", *PYTHON_TREES
    )
    assert 0 == code, output


def test_mypy_strict() -> None:
    code, output = check(sys.executable, "-m", "mypy")
    assert 0 == code, output
