"""Exceptions, named for the condition; each message says what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # Only named in annotations: the base layer imports nothing of Jetforce.
    from jetforce.app.base import DeferredResponse, Response


class ConfigError(ValueError):
    """A setting is out of range or of the wrong kind; raised at start-up."""


class BadKey(ValueError):
    """A store was given a key that is not 32 bytes."""


class RecordTooLarge(ValueError):
    """An encoded record does not fit its slab's slot; nothing was stored."""


class RecordInvalid(TypeError):
    """A record holds a value its field's type does not allow; nothing was stored."""


class RecordUnreadable(ValueError):
    """Stored bytes are not a record of this slab's class (any more)."""


class Conflict(RuntimeError):
    """The record changed (or appeared, or went) since the version a save named."""


class StoreFull(RuntimeError):
    """The store holds ``max_records`` and its policy refuses new players."""


class StoreUnavailable(RuntimeError):
    """The store cannot keep the record right now (a disk, a server); nothing of
    this save was kept."""


class StoreUnsure(StoreUnavailable):
    """The store's answer to a save or delete was lost (a connection dropped, a
    server too slow): the change may or may not have been kept, whole."""


class StoreNotOpen(RuntimeError):
    """A session route ran before the application's stores were opened."""


class Abort(Exception):
    """Raised by a handler to answer ``response`` and keep nothing of the record.

    ``raise Abort(Response(Status.BAD_REQUEST, "That is not a move"))`` ends the
    request with that response; the record stays as it was stored, and nothing is
    logged.
    """

    def __init__(self, response: Response | DeferredResponse) -> None:
        super().__init__(response)
        self.response = response


def why(error: BaseException) -> str:
    """An exception in one line: its type, and its message if it has one."""
    message = str(error)
    args = error.args
    # attrs validators raise ValueError(message, attribute, ...), which str()
    # shows as the whole tuple, Attribute repr and all; the message comes first.
    if (
        len(args) > 1
        and isinstance(args[0], str)
        and type(error).__str__ is BaseException.__str__
    ):
        message = args[0]
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
