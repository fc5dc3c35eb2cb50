"""The state directory (``--state-dir``): made if need be, checked, and locked
so that one server at a time writes its slab files."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from jetforce_sesh.errors import ConfigError
from jetforce_sesh.stores.sqlite.file import not_a_file

#: How every file in a state directory is opened: never through a link (one
#: planted there would make the server write where it points), and not
#: inherited by the CGI programs the server starts.
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC


def check_private(path: Path) -> None:
    """ConfigError unless only this user may write the directory ``path``:
    whoever else may (a mode like 1777, another owner) could plant links in
    it for the server to follow, or replace its files."""
    found = os.stat(path)
    me = os.geteuid()
    if found.st_uid != me:
        raise ConfigError(
            f"state directory {str(path)!r} belongs to uid {found.st_uid}, not to"
            f" this user (uid {me}): give a directory of this user's own, mode 0700"
        )
    if found.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"state directory {str(path)!r} may be written by other users (mode"
            f" {stat.S_IMODE(found.st_mode):04o}): give one only this user may"
            f" write (chmod 0700 {path})"
        )


class StateDirectory:
    """``--state-dir``: made if need be, checked, and locked for this process.

    Two servers writing one slab file would each overwrite the other's players:
    the lock (``flock`` on ``jetforce-sesh.lock``) lets one server use the
    directory at a time, and goes with the process, however it ends. A
    directory other users may write is refused (see :func:`check_private`),
    and no file in it is opened through a link.
    """

    LOCK = "jetforce-sesh.lock"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"state directory {str(self.path)!r} cannot be made"
                f" ({error.strerror}): give a directory this user may write"
            ) from None
        if not self.path.is_dir() or not os.access(self.path, os.W_OK | os.X_OK):
            raise ConfigError(
                f"state directory {str(self.path)!r} is not a directory this user"
                f" may write: give another, or fix its owner and mode"
            )
        check_private(self.path)
        lock = self.path / self.LOCK
        try:
            handle = os.open(lock, _OPEN | os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            if error.errno != errno.ELOOP:
                raise
            raise ConfigError(not_a_file(lock)) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 32).decode(errors="replace").strip()
            os.close(handle)
            raise ConfigError(
                f"state directory {str(self.path)!r} is in use by another server"
                f" (pid {holder or 'unknown'}): stop it, or give another directory"
            ) from None
        os.ftruncate(handle, 0)
        os.write(handle, f"{os.getpid()}\n".encode())
        self._lock = handle

    def file_for(self, slab: str) -> Path:
        """The file of slab ``slab``: ``DIR/<slab>.sqlite3``. ConfigError for a
        name that is not a file name (a ``/``, a NUL), which would put the file
        elsewhere than in the directory."""
        if "/" in slab or "\0" in slab:
            raise ConfigError(
                f"slab name {slab!r} cannot name a file in state directory"
                f" {str(self.path)!r}: give the slab a name without '/'"
            )
        return self.path / f"{slab}.sqlite3"

    def release(self) -> None:
        """Unlock the directory (the process ending does it too)."""
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1
