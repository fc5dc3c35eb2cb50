"""jetforce-sesh: per-certificate session records for Jetforce Gemini capsules."""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

from jetforce_sesh.application import SessionApplication
from jetforce_sesh.codec import MsgpackCodec, reset
from jetforce_sesh.errors import (
    Abort,
    BadKey,
    ConfigError,
    Conflict,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
    StoreFull,
    StoreNotOpen,
    StoreUnavailable,
    StoreUnsure,
)
from jetforce_sesh.identity import (
    BadFingerprint,
    fingerprint_of_request,
    parse_fingerprint,
)
from jetforce_sesh.keys import FingerprintKeys, IPlayerKeys, player_key
from jetforce_sesh.layout import LayoutCodec
from jetforce_sesh.memory import MemoryStore, memory_stores
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.persist import PersistentStore, PersistentStores, StateDirectory
from jetforce_sesh.redisstore import RedisStore, RedisStores
from jetforce_sesh.route import SessionRoute, after_save
from jetforce_sesh.slab import Slab
from jetforce_sesh.store import (
    ABSENT,
    ANY_VERSION,
    IImmediateSessionStore,
    ISessionStore,
    RecordPage,
    Stored,
    StoredRecord,
    StoreSpec,
    StoreStats,
)

__all__ = [
    "ABSENT",
    "ANY_VERSION",
    "Abort",
    "BadFingerprint",
    "BadKey",
    "ConfigError",
    "Conflict",
    "FingerprintKeys",
    "IImmediateSessionStore",
    "IPlayerKeys",
    "ISessionStore",
    "LayoutCodec",
    "MemoryStore",
    "MsgpackCodec",
    "PersistentStore",
    "PersistentStores",
    "RecordInvalid",
    "RecordPage",
    "RecordTooLarge",
    "RecordUnreadable",
    "RedisStore",
    "RedisStores",
    "SessionApplication",
    "SessionRoute",
    "Slab",
    "SlabOptions",
    "StateDirectory",
    "StoreFull",
    "StoreNotOpen",
    "StoreSpec",
    "StoreStats",
    "StoreUnavailable",
    "StoreUnsure",
    "Stored",
    "StoredRecord",
    "after_save",
    "app",
    "fingerprint_of_request",
    "memory_stores",
    "parse_fingerprint",
    "player_key",
    "reset",
]


def __getattr__(name: str) -> Any:
    # The demo capsule imports the games, which import this package: load it
    # only when asked for, as in ``--app jetforce_sesh:app``.
    if name == "app":
        from jetforce_sesh.demo import app

        return app
    raise AttributeError(f"module 'jetforce_sesh' has no attribute {name!r}")
