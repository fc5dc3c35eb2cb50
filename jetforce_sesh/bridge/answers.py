"""What the bridge answers besides ``K``, as exceptions its request code raises:
each becomes one reply (docs/reference/bridge.md, Replies)."""

from __future__ import annotations


class BadMessage(Exception):
    """A message the protocol does not allow: answered ``E``, then closed."""


class Refusal(Exception):
    """A request the bridge declines (``N``); the connection stays usable."""


class Closing(Refusal):
    """A refusal after which the connection is closed: a SELECT, or a connection
    past a cap. The client sent its first request with the SELECT, and that must
    not be answered as if the SELECT had worked."""


class NotValid(Refusal):
    """The certificate's dates say it cannot be used now (``V``): what the
    capsule's routes answer ``62``."""


class Moved(Exception):
    """A write met another record than the one it expected: answered ``X``
    with the record there now."""

    def __init__(self, version: int, data: bytes) -> None:
        super().__init__(version)
        self.version = version
        self.data = data
