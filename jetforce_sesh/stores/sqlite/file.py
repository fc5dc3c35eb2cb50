"""The file format: what one slab's SQLite file holds, and how it is opened.

A file has two tables: ``meta``, what the file says of itself (its format, its
slab, its codec, and the highest version it ever gave), and ``records``, a row
per record whose CRC-32 of its key, bytes and version tells a row damaged on
disk from a record. Files are made 0600 before SQLite writes a byte of them,
and opened in WAL mode.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from jetforce_sesh.errors import ConfigError

Sync = Literal["normal", "full"]
Row = tuple[bytes, bytes, int, float]

#: The layout of our SQLite files; a file of another gets moved aside.
FILE_FORMAT = "jetforce-sesh/1"
#: Bytes the WAL file is cut back to once a checkpoint has emptied it. Large:
#: a WAL cut back after every checkpoint grows again by fresh pages, and that
#: costs more CPU per save than writing over pages it already has (measured: a
#: 4 MiB limit made a save 7% of a request dearer end to end).
WAL_LIMIT = 64 * 1024 * 1024
#: Seconds a write waits for the file's lock: nothing else should hold it (the
#: state directory is ours alone), and a request must never wait long.
BUSY_TIMEOUT = 0.1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    key BLOB PRIMARY KEY,
    data BLOB NOT NULL,
    version INTEGER NOT NULL,
    last_used REAL NOT NULL,
    checksum INTEGER NOT NULL
) WITHOUT ROWID;
"""
#: The same tables in a database attached as ``aside``.
ASIDE_SCHEMA = _SCHEMA.replace("EXISTS meta", "EXISTS aside.meta").replace(
    "EXISTS records", "EXISTS aside.records"
)
#: Every row, as a file holds it: what :func:`whole` checks.
SELECT_ROWS = "SELECT key, data, version, last_used, checksum FROM records"
UPSERT = (
    "INSERT INTO records (key, data, version, last_used, checksum)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET data = excluded.data,"
    " version = excluded.version, last_used = excluded.last_used,"
    " checksum = excluded.checksum"
)


def checksum(key: bytes, data: bytes, version: int) -> int:
    """CRC-32 of a row's key, bytes and version."""
    return zlib.crc32(data, zlib.crc32(key + version.to_bytes(8, "little")))


def make_private(path: Path) -> None:
    """Make ``path`` empty and 0600 if it does not exist: SQLite then writes
    into it (and makes its ``-wal`` and ``-shm`` with the same mode), so no
    record is ever in a file others may read, whatever the umask. A link
    there is not followed (``O_EXCL``), and :func:`check_not_links` refuses it.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, flags, 0o600))


#: The files SQLite opens beside a database file, by their suffix.
SQLITE_FILES = ("", "-wal", "-shm", "-journal")


def check_not_links(path: Path) -> None:
    """ConfigError if the database file ``path`` or a file SQLite opens beside
    it is a link: SQLite follows links, and would write where one points.
    Python's sqlite3 cannot ask SQLite for ``SQLITE_OPEN_NOFOLLOW``, so this is
    checked before every open; in a directory no other user may write (see
    ``StateDirectory``) nobody else can plant one in between."""
    for suffix in SQLITE_FILES:
        found = Path(f"{path}{suffix}")
        if found.is_symlink():
            raise ConfigError(not_a_file(found))


def not_a_file(path: Path) -> str:
    """What the server says of a link where it expects one of its files."""
    return (
        f"{path} is a link, not a file: the server opens nothing in its state"
        f" directory through a link; remove it, and find out who made it"
    )


def connect(path: Path, sync: Sync = "normal") -> sqlite3.Connection:
    """A slab's file, made (mode 0600) with its tables if it is new."""
    make_private(path)
    check_not_links(path)
    db = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT
    )
    try:
        db.execute("PRAGMA journal_mode=wal")
        db.execute(f"PRAGMA synchronous={sync}")
        db.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
        db.executescript(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def meta(slab: str, codec_format: str) -> dict[str, str]:
    """What a slab's file says of itself: its format, its slab, its codec."""
    return {"format": FILE_FORMAT, "slab": slab, "codec": codec_format}


def whole(
    key: object, data: object, version: object, used: object, check: object
) -> bool:
    """Whether a row read from a file is a record, untouched since it was written."""
    return (
        type(key) is bytes
        and len(key) == 32
        and type(data) is bytes
        and type(version) is int
        and version > 0
        and type(used) is float
        and checksum(key, data, version) == check
    )


@contextlib.contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction: committed whole, or rolled back whole.

    A COMMIT can fail too (a full disk meets the log only then): it is rolled
    back like any other failure, so the connection is never left inside a
    transaction that every later BEGIN would trip over. SQLite may have rolled
    back already (it does for some errors): then there is nothing to undo.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
        raise


def begin_log(db: sqlite3.Connection) -> None:
    """A change SQLite cannot skip (it writes no row over itself unchanged),
    of a number the store never reads (``user_version``): a commit of it
    starts a WAL all copied afresh, and nothing else. Within a transaction."""
    (count,) = db.execute("PRAGMA user_version").fetchone()
    db.execute(f"PRAGMA user_version={(int(count) + 1) % 2**31}")


def locked(error: sqlite3.Error) -> bool:
    """Whether ``error`` is another connection's lock, not damage or a disk."""
    return getattr(error, "sqlite_errorname", "") in ("SQLITE_BUSY", "SQLITE_LOCKED")
