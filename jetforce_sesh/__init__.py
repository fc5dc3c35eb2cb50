"""jetforce-sesh: per-certificate session records for Jetforce Gemini capsules."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from jetforce_sesh.application import SessionApplication
from jetforce_sesh.codec import RecordCodec
from jetforce_sesh.errors import ConfigError, RecordTooLarge, StoreFull, StoreNotOpen
from jetforce_sesh.identity import (
    BadFingerprint,
    fingerprint_of_request,
    parse_fingerprint,
)
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.route import SessionRoute
from jetforce_sesh.sessions import RecordSlab
from jetforce_sesh.slab import MemorySlab
from jetforce_sesh.store import IImmediateSessionStore, ISessionStore, StoreStats

__all__ = [
    "BadFingerprint",
    "ConfigError",
    "IImmediateSessionStore",
    "ISessionStore",
    "MemorySlab",
    "RecordCodec",
    "RecordSlab",
    "RecordTooLarge",
    "SessionApplication",
    "SessionRoute",
    "SlabOptions",
    "StoreFull",
    "StoreNotOpen",
    "StoreStats",
    "app",
    "fingerprint_of_request",
    "parse_fingerprint",
]


def __getattr__(name: str) -> Any:
    # The demo capsule imports the games, which import this package: load it
    # only when asked for, as in ``--app jetforce_sesh:app``.
    if name == "app":
        from jetforce_sesh.demo import app

        return app
    raise AttributeError(f"module 'jetforce_sesh' has no attribute {name!r}")
