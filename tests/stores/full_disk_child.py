"""A full disk met by a real SQLite store, in a process of its own.

``python -m tests.stores.full_disk_child MODE DIRECTORY SCENARIO`` runs one
scenario against a state directory in DIRECTORY and prints what happened as
one JSON object. MODE says how the disk fills up:

- ``tmpfs``: DIRECTORY is a small tmpfs the test mounted; a ballast file takes
  the space that is left, and removing it frees it. SQLite meets ``ENOSPC``.
- ``rlimit``: this process may not grow any file past its size now
  (``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored), and raising the limit again
  frees the disk. SQLite meets ``EFBIG``. No privilege needed.

Either way the write fails where a full disk makes it fail: when the log is
written, at COMMIT, after the statements of the transaction have run.
"""

from __future__ import annotations

import errno
import io
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.errors import StoreUnavailable
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.stores import ABSENT
from jetforce_sesh.stores.contract import StoreSpec
from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.store import SQLiteStore, SQLiteStores
from jetforce_sesh.testing import START, fingerprint_of


class Disk:
    """Fills the disk up and frees it again, by MODE."""

    def __init__(self, mode: str, directory: Path) -> None:
        self.mode = mode
        self.ballast = directory / "ballast"
        self.limits = resource.getrlimit(resource.RLIMIT_FSIZE)
        if mode == "rlimit":
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    def fill(self, largest: int = 0) -> None:
        """From now on, no file grows (past ``largest`` bytes, for rlimit)."""
        if self.mode == "rlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, (largest, self.limits[1]))
            return
        ballast = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            while os.write(ballast, b"\0" * 4096):
                pass
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
        finally:
            os.close(ballast)

    def free(self) -> None:
        if self.mode == "rlimit":
            resource.setrlimit(resource.RLIMIT_FSIZE, self.limits)
        elif self.ballast.exists():
            self.ballast.unlink()


def key(n: int) -> bytes:
    return fingerprint_of(f"player {n}")


def store_in(state: Path, clock: Clock) -> tuple[SQLiteStores, SQLiteStore]:
    stores = SQLiteStores(state)
    options = SlabOptions(max_records=100, record_size=256)
    store = stores(StoreSpec("test", options, clock, 256, "raw"))
    store.open()
    return stores, store


def largest(state: Path) -> int:
    return max(path.stat().st_size for path in state.iterdir())


def saves(disk: Disk, state: Path) -> dict[str, Any]:
    clock = Clock()
    clock.advance(START)
    stores, store = store_in(state, clock)
    told: list[str] = []
    store.on_created(lambda k: told.append(k.hex()[:8]))
    kept: dict[str, int] = {}
    for n in range(3):
        kept[key(n).hex()] = store.save_now(key(n), b"before" * 40, ABSENT)
    disk.fill(largest(state))
    failed = ""
    attempts = 0
    versions = dict(kept)
    for n in range(3, 200):  # new players, then changes, until the disk says no
        attempts += 1
        player = key(n % 6)
        try:
            versions[player.hex()] = store.save_now(
                player, b"x" * 250, versions.get(player.hex(), ABSENT)
            )
        except StoreUnavailable as error:
            failed = str(error)
            break
        kept = dict(versions)
    after = {
        k: None
        if (found := store.peek_now(bytes.fromhex(k))) is None
        else found.version
        for k in {*kept, *versions}
    }
    told_when_full = list(told)
    disk.free()
    again = store.save_now(key(99), b"after", ABSENT)
    kept[key(99).hex()] = again
    store.close()
    stores.directory.release()
    reopened_stores, reopened = store_in(state, clock)
    back = {r.key.hex(): r.version for r in reopened.records_now().records}
    reopened.close()
    reopened_stores.directory.release()
    return {
        "failed": failed,
        "attempts": attempts,
        "kept": kept,
        "in memory after": after,
        "told": told_when_full,
        "after freeing": again,
        "after a restart": back,
    }


def imports(disk: Disk, state: Path) -> dict[str, Any]:
    """An import that meets a full disk at its commit: one line, no traceback,
    nothing imported."""
    from tests.stores.test_sqlite_application import line_of, two_slabs

    note = b"\x01\x81\xa6visits\x01"
    lines = [line_of("notes", f"p{n}", note) for n in range(300)]
    directory = StateDirectory(state)
    disk.fill(4096)
    try:
        from jetforce_sesh.cli.transfer import import_

        import_(two_slabs, directory, None, lines)
        said = "imported"
    except UsageError as error:
        said = str(error)
    finally:
        disk.free()
        directory.release()
    left = sorted(p.name for p in state.iterdir())
    return {"said": said, "files": left}


def main() -> None:
    mode, where, scenario = sys.argv[1:4]
    directory = Path(where)
    state = directory / "state"
    disk = Disk(mode, directory)
    run = {"saves": saves, "imports": imports}[scenario]
    out = io.StringIO()
    json.dump(run(disk, state), out)
    print(out.getvalue())
    sys.stdout.flush()
    os._exit(0)  # the checkpoint threads are stopped; nothing else to wait for


if __name__ == "__main__":
    main()
