"""A module whose __getattr__ fails oddly: --app must say so in one line."""

from __future__ import annotations


def __getattr__(name: str) -> object:
    raise RuntimeError(f"no {name} here")
