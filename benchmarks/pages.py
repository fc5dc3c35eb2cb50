"""The page every scenario answers, and the plain route's path: in a module that
imports nothing, so stock Jetforce (``benchmarks.stock``) serves it without
importing jetforce_sesh."""

from __future__ import annotations

PLAIN_PATH = "/plain"


def page(count: int) -> str:
    """The page every scenario returns; the C and Python CGIs print the same."""
    return f"# Visit counter\n\nVisit number {count}.\n"
