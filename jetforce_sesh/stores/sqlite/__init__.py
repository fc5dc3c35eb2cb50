"""The SQLite store (``--state-dir``): every record also written to a file per
slab, so records survive restarts and crashes; a damaged file is kept aside,
never deleted."""

from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.store import SQLiteStore, SQLiteStores

__all__ = ["SQLiteStore", "SQLiteStores", "StateDirectory"]
