"""Exceptions, named for the condition; each message says what to do about it."""

from __future__ import annotations

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
