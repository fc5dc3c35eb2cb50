"""MsgpackCodec round trips: any record decodes back equal and re-encodes to the
same bytes, new players and reset records get the defaults, private and untyped
fields are kept."""

from __future__ import annotations

from typing import Any

import attr
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import MsgpackCodec
from jetforce_sesh.records.codec import reset
from tests.records.codec_support import PLAYER, Player, invalid, players

# -- round trips ------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(players)
def test_every_record_round_trips(player: Player) -> None:
    """Whatever the fields hold, decode(encode(record)) is an equal record."""
    assert player == PLAYER.decode(PLAYER.encode(player))


@settings(max_examples=100, deadline=None)
@given(players, st.floats())
def test_encoding_a_decoded_record_gives_the_same_bytes(
    player: Player, ratio: float
) -> None:
    """Stored bytes are already canonical: a load and save rewrites them unchanged
    (NaN included, which no record equals)."""
    player.ratio = ratio
    data = PLAYER.encode(player)
    assert data == PLAYER.encode(PLAYER.decode(data))


def test_new_players_get_the_defaults() -> None:
    assert Player() == PLAYER.new()
    assert PLAYER.new().scores is not PLAYER.new().scores


def test_codec_names_its_format_and_sizes() -> None:
    codec = MsgpackCodec(Player, 256)
    assert ("msgpack/1", 256, len(codec.encode(Player()))) == (
        codec.format,
        codec.record_size,
        codec.default_size,
    )


@attrs.define
class Visits:
    count: int = 0


def test_the_visit_counter_record_is_small() -> None:
    """The benchmark's 64-byte record: tag, 1-entry map, "count", one byte."""
    assert b"\x01\x81\xa5count\x03" == MsgpackCodec(Visits, 64).encode(Visits(3))


@attrs.define
class Secretive:
    _n: int = 0
    _tags: list[str] = attrs.Factory(list)


def test_private_fields_round_trip_under_their_init_names() -> None:
    codec = MsgpackCodec(Secretive, 64)
    data = codec.encode(Secretive(n=3, tags=["a"]))
    assert b"\x01\x82\xa1n\x03\xa4tags\x91\xa1a" == data
    assert Secretive(n=3, tags=["a"]) == codec.decode(data)


@attr.s
class Untyped:
    anything = attr.ib(default=0)


@pytest.mark.parametrize("value", [0, "x", None, [1, [b"y"]], {"k": 1.5}])
def test_a_field_without_annotation_holds_any_storable_value(value: object) -> None:
    codec = MsgpackCodec(Untyped, 64)
    assert Untyped(value) == codec.decode(codec.encode(Untyped(value)))


@attrs.define
class Loose:
    anything: Any = None
    options: dict[str, Any] = attrs.Factory(dict)


def test_any_holds_any_storable_value_as_a_missing_annotation_does() -> None:
    codec = MsgpackCodec(Loose, 64)
    record = Loose([1, "x"], {"volume": 0.5, "keys": {b"k": None}})
    assert record == codec.decode(codec.encode(record))
    assert (
        "Loose.options['when'] holds {2} (set), not int, float, bool, str, bytes,"
        " None, list or dict: records keep only what their field types allow"
    ) == invalid(codec, Loose(options={"when": {2}}))


def test_a_field_without_annotation_still_refuses_what_records_cannot_hold() -> None:
    assert (
        "Untyped.anything holds {1} (set), not int, float, bool, str, bytes, None,"
        " list or dict: records keep only what their field types allow"
    ) == invalid(MsgpackCodec(Untyped, 64), Untyped({1}))


# -- reset ------------------------------------------------------------------------


def test_reset_puts_the_defaults_back_in_place() -> None:
    """The same object, so the route saves it; fresh lists, not shared ones."""
    player = Player(name="Ann", score=3, scores=[1], seen={"a": 1}, notes=[2])
    scores = player.scores
    same = player
    reset(player)
    assert Player() == player
    assert same is player
    assert [1] == scores
    assert player.scores is not Player().scores


def test_reset_restores_private_fields() -> None:
    record = Secretive(n=5, tags=["x"])
    reset(record)
    assert Secretive() == record
