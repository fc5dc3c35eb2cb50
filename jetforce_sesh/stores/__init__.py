"""Stores: fixed-size, versioned records as bytes under 32-byte keys.

The store writer's surface: the contract every store fills (``contract``), what
stores share (``support``), and the three stores, in memory, in SQLite and in
Redis. Stores know bytes and keys only: no attrs classes (that is ``records``)
and no Jetforce (that is ``session``).
"""

from jetforce_sesh.stores.contract import (
    ABSENT,
    ANY_VERSION,
    KEY_SIZE,
    MAX_VERSION,
    Hook,
    IImmediateSessionStore,
    ISessionStore,
    RecordPage,
    Stored,
    StoredRecord,
    StoreFactory,
    StoreSpec,
    StoreStats,
    check_data,
    check_key,
    conflict,
    refused,
)
from jetforce_sesh.stores.memory import MemoryStore, memory_stores
from jetforce_sesh.stores.redis import RedisStore, RedisStores
from jetforce_sesh.stores.sqlite import SQLiteStore, SQLiteStores, StateDirectory
from jetforce_sesh.stores.support import DeferredMethods, HookMethods, Hooks, IdleSweep

__all__ = [
    "ABSENT",
    "ANY_VERSION",
    "KEY_SIZE",
    "MAX_VERSION",
    "DeferredMethods",
    "Hook",
    "HookMethods",
    "Hooks",
    "IImmediateSessionStore",
    "ISessionStore",
    "IdleSweep",
    "MemoryStore",
    "RecordPage",
    "RedisStore",
    "RedisStores",
    "SQLiteStore",
    "SQLiteStores",
    "StateDirectory",
    "StoreFactory",
    "StoreSpec",
    "StoreStats",
    "Stored",
    "StoredRecord",
    "check_data",
    "check_key",
    "conflict",
    "memory_stores",
    "refused",
]
