"""A disk that fills up under a running store, for real: a small tmpfs when
this runs as root and may mount one, else a file size limit (``RLIMIT_FSIZE``)
on a process of its own. Either way SQLite fails when it writes the log, at
COMMIT, after the transaction's statements ran: where a mock that raises
before ``BEGIN`` never reaches. See ``tests/stores/full_disk_child.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def mounted(where: Path) -> bool:
    """Mount a 2 MiB tmpfs at ``where``; whether this process may."""
    if os.geteuid() != 0:
        return False
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.fixture(params=["tmpfs", "rlimit"])
def disk(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    where = tmp_path / "disk"
    if request.param == "tmpfs":
        if not mounted(where):
            pytest.skip("cannot mount a tmpfs here (not root, or no CAP_SYS_ADMIN)")
        try:
            yield "tmpfs", where
        finally:
            subprocess.run(["umount", str(where)], check=True)
    else:
        where.mkdir()
        yield "rlimit", where


def run(disk: tuple[str, Path], scenario: str) -> dict[str, Any]:
    mode, where = disk
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.stores.full_disk_child",
            mode,
            str(where),
            scenario,
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert 0 == done.returncode, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_a_save_the_disk_refuses_at_commit_is_undone_and_the_store_goes_on(
    disk: tuple[str, Path],
) -> None:
    mode, where = disk
    got = run(disk, "saves")
    path = where / "state" / "test.sqlite3"
    error = "database or disk is full" if mode == "tmpfs" else "disk I/O error"
    assert (
        f"slab 'test' could not write {path} ({error}): the previous record is kept"
    ) == got["failed"]
    kept = got["kept"]
    # Memory is what the file has: every save that returned, not the one that
    # failed; a player the failed save would have made is not there.
    assert {k: kept.get(k) for k in got["in memory after"]} == got["in memory after"]
    assert len(got["told"]) == len([k for k in kept if k in got["in memory after"]])
    # Once the disk has room again, saves work: no transaction was left open.
    assert 0 < got["after freeing"]
    assert kept == got["after a restart"]


def test_an_import_the_disk_refuses_at_commit_imports_nothing(
    disk: tuple[str, Path],
) -> None:
    mode, where = disk
    got = run(disk, "imports")
    path = where / "state" / "notes.sqlite3"
    error = "database or disk is full" if mode == "tmpfs" else "disk I/O error"
    assert (
        f"{path} could not be written ({error}): nothing was imported",
        ["jetforce-sesh.lock"],
    ) == (got["said"], got["files"])
