"""A bridge LOOKUP holds the player's record as an in-process visit does: from
the load until the turn ends, the slab tells its store the record is in use
(``Turns.in_use``, ``StoreSpec.held``), so neither the sweep nor an eviction
drops it under the CGI program."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest

import sesh_bridge as wire
from jetforce_sesh.bridge.protocol import BridgeFactory
from jetforce_sesh.bridge.service import bridged
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.testing import SessionHarness, fingerprint_of, later_stores
from tests.bridge.protocol_support import (
    HASH,
    PAIR,
    UNBOUNDED_HOLDS,
    Client,
    Visits,
    app,
    factory_of,
    found,
)

ALICE = fingerprint_of("alice")


@pytest.fixture
def harness() -> SessionHarness:
    return SessionHarness(app, defaults=SlabOptions(max_queued=2))


@pytest.fixture
def factory(harness: SessionHarness) -> Iterator[BridgeFactory]:
    made = factory_of(app, harness.clock, UNBOUNDED_HOLDS)
    yield made
    made.doStop()


def in_use() -> set[bytes]:
    return set(app.slabs[Visits].opened.turns.in_use)


def test_a_lookup_holds_the_record_until_its_update(factory: BridgeFactory) -> None:
    client = Client(factory)
    assert b"K" == client.select()
    assert set() == in_use()
    assert found(0, 0) == client.ask(wire.LOOKUP + HASH.encode())
    assert {ALICE} == in_use()
    assert b"K" == client.ask(wire.UPDATE + PAIR.pack(1, 1))[:1]
    assert set() == in_use()


def test_a_lookup_holds_the_record_until_its_release(factory: BridgeFactory) -> None:
    client = Client(factory)
    client.select()
    client.ask(wire.LOOKUP + HASH.encode())
    assert {ALICE} == in_use()
    assert b"K" == client.ask(wire.RELEASE)
    assert set() == in_use()


def test_a_lookup_through_a_store_that_answers_later_holds_it_too() -> None:
    harness = SessionHarness(app, stores=later_stores(1))
    harness.clock.advance(1)  # the stores open
    factory = BridgeFactory(bridged(app.slabs.values()), harness.clock)
    factory.doStart()
    client = Client(factory)
    client.send(wire.SELECT + struct.pack("!I", 16) + b"visits")
    assert [b"K"] == client.replies()
    client.send(wire.LOOKUP + HASH.encode())
    assert set() == in_use()  # not read yet
    harness.clock.advance(1)
    assert [found(0, 0)] == client.replies()
    assert {ALICE} == in_use()
    client.send(wire.RELEASE)
    assert [b"K"] == client.replies()
    assert set() == in_use()
    factory.doStop()
