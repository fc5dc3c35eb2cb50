"""The reader's machine, one per run, for every doc run as written."""

from tests.docs.machine import reader

__all__ = ["reader"]
