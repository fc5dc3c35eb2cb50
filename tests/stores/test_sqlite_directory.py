"""The state directory: made 0700 with its files 0600, locked for one server,
and refused, saying why, when it cannot be used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import attrs
import pytest
from twisted.internet.task import Clock

from jetforce_sesh import ConfigError, SessionApplication
from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.store import SQLiteStores
from jetforce_sesh.testing import START
from tests.stores.sqlite_support import (
    FILE,
    A,
    B,
    C,
    Capsule,
    D,
    aside,
    asides,
    done,
    fill,
    save,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_missing_state_directory_is_made_0700_and_its_files_0600(
    capsule: Capsule,
) -> None:
    life = capsule.start(capacity=3)
    fill(life, [A, B, C])
    life.stop()
    second = capsule.start(capacity=2)  # sets a copy aside, too
    save(second, D, b"d")
    names = sorted(path.name for path in capsule.state.iterdir())
    assert 0o700 == mode_of(capsule.state)
    assert {name: 0o600 for name in names} == {
        name: mode_of(capsule.state / name) for name in names
    }
    assert {"jetforce-sesh.lock", FILE, f"{FILE}-wal", f"{FILE}-shm"} <= set(names)
    assert [aside(capsule.state, "before").name] == asides(capsule.state)


def test_a_state_directory_in_use_is_refused_naming_the_pid(tmp_path: Path) -> None:
    first = StateDirectory(tmp_path / "state")
    try:
        with pytest.raises(ConfigError) as raised:
            StateDirectory(tmp_path / "state")
        assert (
            f"state directory {str(tmp_path / 'state')!r} is in use by another"
            f" server (pid {os.getpid()}): stop it, or give another directory"
        ) == str(raised.value)
    finally:
        first.release()
    StateDirectory(tmp_path / "state").release()  # free again


@pytest.mark.parametrize(
    "where, why",
    [
        pytest.param("file/state", "Not a directory", id="under-a-file"),
        pytest.param("file", "File exists", id="a-file"),
    ],
)
def test_a_state_directory_that_cannot_be_made_is_refused(
    tmp_path: Path, where: str, why: str
) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(ConfigError) as raised:
        SQLiteStores(tmp_path / where)
    assert (
        f"state directory {str(tmp_path / where)!r} cannot be made ({why}): give a"
        f" directory this user may write"
    ) == str(raised.value)


def test_a_sync_mode_other_than_normal_or_full_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        SQLiteStores(tmp_path, "always")  # type: ignore[arg-type]
    assert (
        "sync must be 'normal' or 'full' (got 'always'): 'full' also survives"
        " power loss, at an fsync per save"
    ) == str(raised.value)
    assert [] == list(tmp_path.iterdir())  # nothing made, nothing locked


def two_slabs_named_alike() -> SessionApplication:
    app = SessionApplication("two")
    app.slab(Coins, name="game")
    app.slab(Notes, name="game")
    return app


@attrs.define
class Coins:
    coins: int = 0


@attrs.define
class Notes:
    note: str = ""


def test_two_slabs_named_alike_are_refused_at_start_up(tmp_path: Path) -> None:
    """One file each would be one file for both: each slab's records would come
    back as the other's after a restart. Refused, as the Redis store does."""
    stores = SQLiteStores(tmp_path / "state")
    clock = Clock()
    clock.advance(START)
    app = two_slabs_named_alike()
    try:
        with pytest.raises(ConfigError) as raised:
            app.open(clock, stores=stores)
        assert (
            f"two slabs named 'game' would share the file"
            f" {tmp_path / 'state' / 'game.sqlite3'}: give them different names"
        ) == str(raised.value)
    finally:
        app.close(grace=0)
        stores.directory.release()


def test_a_slab_closed_may_open_again_on_the_same_stores(tmp_path: Path) -> None:
    """The file is refused to a second store only while the first uses it."""
    stores = SQLiteStores(tmp_path / "state")
    clock = Clock()
    clock.advance(START)
    app = SessionApplication("one")
    app.slab(Coins, name="game")
    try:
        for _ in range(2):
            assert done(app.open(clock, stores=stores))
            done(app.close(grace=0))
    finally:
        stores.directory.release()


def test_a_slab_name_that_is_not_a_file_name_is_refused(tmp_path: Path) -> None:
    directory = StateDirectory(tmp_path / "state")
    try:
        with pytest.raises(ConfigError) as raised:
            directory.file_for("../elsewhere")
        assert (
            f"slab name '../elsewhere' cannot name a file in state directory"
            f" {str(tmp_path / 'state')!r}: give the slab a name without '/'"
        ) == str(raised.value)
    finally:
        directory.release()


# -- directories others may write, and links ---------------------------------------


@pytest.mark.parametrize("mode", [0o1777, 0o777, 0o770, 0o720], ids=oct)
def test_a_state_directory_others_may_write_is_refused(
    tmp_path: Path, mode: int
) -> None:
    """Whoever may write the directory may plant links in it for the server to
    follow (the lock file's target would be truncated), or swap its files."""
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    with pytest.raises(ConfigError) as raised:
        SQLiteStores(state)
    assert (
        f"state directory {str(state)!r} may be written by other users (mode"
        f" {mode:04o}): give one only this user may write (chmod 0700 {state})"
    ) == str(raised.value)
    assert [] == list(state.iterdir())  # nothing made, nothing locked


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory away")
def test_a_state_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 4242, 4242)
    with pytest.raises(ConfigError) as raised:
        SQLiteStores(state)
    assert (
        f"state directory {str(state)!r} belongs to uid 4242, not to this user"
        f" (uid {os.geteuid()}): give a directory of this user's own, mode 0700"
    ) == str(raised.value)
    assert [] == list(state.iterdir())


def planted(state: Path, name: str, tmp_path: Path) -> Path:
    """A link named ``name`` in ``state`` to a file of someone else's."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"someone else's file")
    (state / name).symlink_to(victim)
    return victim


def test_a_lock_file_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    victim = planted(state, "jetforce-sesh.lock", tmp_path)
    with pytest.raises(ConfigError) as raised:
        StateDirectory(state)
    assert (
        f"{state / 'jetforce-sesh.lock'} is a link, not a file: the server opens"
        f" nothing in its state directory through a link; remove it, and find out"
        f" who made it"
    ) == str(raised.value)
    assert b"someone else's file" == victim.read_bytes()


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", "-journal"])
def test_a_slab_file_or_sqlites_own_that_is_a_link_is_not_followed(
    capsule: Capsule, tmp_path: Path, suffix: str
) -> None:
    """SQLite follows links and Python cannot ask it not to: the store refuses
    to open on one, whichever of the files SQLite opens it stands for."""
    capsule.state.mkdir(mode=0o700)
    victim = planted(capsule.state, FILE + suffix, tmp_path)
    with pytest.raises(ConfigError) as raised:
        capsule.start()
    assert (
        f"{capsule.state / (FILE + suffix)} is a link, not a file: the server opens"
        f" nothing in its state directory through a link; remove it, and find out"
        f" who made it"
    ) == str(raised.value)
    assert b"someone else's file" == victim.read_bytes()
    capsule.lives.clear()  # it never opened
