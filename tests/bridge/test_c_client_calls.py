"""Every call of the C client against the real bridge, in order, as another
CGI process would meet them: turns, conflicts, deletes, and each error's message.

The C programs and how they are built are in ``tests/bridge/c_client_support.py``;
the compiled programs and the real bridge are fixtures of ``tests/bridge/conftest.py``
(docs/reference/bridge.md).
"""

from __future__ import annotations

import pytest

from tests.bridge.c_client_support import Built
from tests.support import Server


@pytest.mark.e2e
def test_every_call_of_the_client(built: Built, bridge: tuple[Server, str]) -> None:
    _, socket_path = bridge
    done = built.run(
        built.calls,
        {"SESH_BRIDGE_SOCKET": socket_path},
        "SHA256:" + "C3" * 32,
        "d4" * 32,
    )
    assert ("", 0) == (done.stderr, done.status)
    assert [
        "update before sesh_init: PROTOCOL 0 record 0 0"
        " | sesh_init has not been called",
        "init: OK 0 record 0 0",
        "select: OK 0 record 0 0",
        "update before a lookup: PROTOCOL 0 record 0 0"
        " | sesh_update before a sesh_lookup",
        "lookup of a new player: OK 0 record 0 0",
        "update: OK v1 record 5 7",
        "lookup holds the turn: OK v1 record 5 7",
        "another process's lookup: REFUSED 0 record 5 7"
        " | this player's queue is full (0 may wait): try again later",
        # A write takes the turn too: none lands inside the turn held here,
        # so the holder's update goes through.
        "another process's compare-and-set: REFUSED v1 record 6 8"
        " | this player's queue is full (0 may wait): try again later",
        "update after that: OK v2 record 50 70",
        "compare-and-set redone: OK v3 record 51 71",
        "another process's compare-and-set: OK v4 record 8 10",
        "compare-and-set with a stale version: CONFLICT v4 record 8 10"
        " | the record moved: the buffer holds the one stored now",
        "lookup: OK v4 record 8 10",
        "release: OK v4 record 8 10",
        "delete: OK 0 record 8 10",
        "lookup after the delete: OK 0 record 0 0",
        "release: OK 0 record 0 0",
        "another process's compare-and-set: OK v5 record 1 1",
        "delete a stale version: CONFLICT v5 record 0 0"
        " | the record moved: sesh_version() is the one stored now",
        "delete again: OK 0 record 0 0",
        "lookup of another player by bare hex: OK 0 record 0 0",
        "release: OK 0 record 0 0",
        "peek: OK 0 record 0 0",
        "update after a peek: PROTOCOL 0 record 0 0 | sesh_update needs the turn"
        " of a sesh_lookup on this connection: use sesh_compare_and_set",
        "lookup of a fingerprint the server cannot read: PROTOCOL 0 record 0 0"
        " | not a fingerprint: fingerprint must be SHA256:<64 hex"
        " digits>, 64 hex digits or urlsafe base64 of 32 bytes (got 'nonsense')",
        "lookup after that connects again: OK 0 record 0 0",
        "release: OK 0 record 0 0",
        "wrong record size: PROTOCOL 0 record 0 0 | slab 'visits' has 16-byte records"
        " (layout '<QQ'), not 8: use that record size",
        "unknown slab: PROTOCOL 0 record 0 0 | no slab 'nosuch' is served over the"
        " bridge; these are: visits (only slabs declared with a layout are)",
        "no socket: UNAVAILABLE 0 record 0 0"
        " | cannot connect to /nonexistent/sesh.sock: No such file or directory",
        "record size 0: PROTOCOL 0 record 0 0 | record size 0 is not 1 to 65536 bytes",
        "lookup after that: PROTOCOL 0 record 0 0"
        " | record size 0 is not 1 to 65536 bytes",
    ] == done.stdout.splitlines()
