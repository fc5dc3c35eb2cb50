"""Exceptions, named for the condition; each message says what to do about it."""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting is out of range or of the wrong kind; raised at start-up."""


class RecordTooLarge(ValueError):
    """An encoded record does not fit its slab's slot; nothing was stored."""


class StoreFull(RuntimeError):
    """The store holds ``max_records`` and its policy refuses new players."""


class StoreNotOpen(RuntimeError):
    """A session route ran before the application's stores were opened."""
