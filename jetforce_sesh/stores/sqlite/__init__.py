"""The SQLite store (``--state-dir``): every record also written to a file per
slab, so records survive restarts and crashes; a damaged file is kept aside,
never deleted.

One module per job, each importing only those above it:

- ``file``: the file format (tables, row checksum, opening a file 0600 in WAL);
- ``directory``: the state directory and its lock;
- ``checkpoints``: the thread that copies the WAL into the database file;
- ``salvage``: a file kept aside, and the records read back from a damaged one;
- ``store``: the write-through store, ``SQLiteStore``, and its factory.
"""

from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.store import SQLiteStore, SQLiteStores

__all__ = ["SQLiteStore", "SQLiteStores", "StateDirectory"]
