"""MsgpackCodec.decode: no bytes whatever make it raise anything but
RecordUnreadable or return anything but a well-typed record; every unreadable
record's message, whole; and schema changes, with and without __sesh_migrate__."""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs
import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import MsgpackCodec, RecordUnreadable
from tests.records.codec_support import PLAYER, Player, players, unreadable
from tests.strategies import int64, packable, plain_scalars

#: Maps whose keys are mostly Player's fields, holding right and wrong values.
field_maps = st.dictionaries(
    st.sampled_from([field.alias for field in attrs.fields(Player)])
    | st.text(max_size=4),
    plain_scalars
    | st.lists(plain_scalars, max_size=3)
    | st.dictionaries(plain_scalars, plain_scalars | st.lists(int64), max_size=3),
    max_size=8,
)


# -- helpers ----------------------------------------------------------------------


def _plain(value: object) -> bool:
    if type(value) in (int, float, bool, str, bytes) or value is None:
        return True
    if type(value) is list:
        return all(_plain(item) for item in value)
    if type(value) is dict:
        return all(_plain(key) and _plain(item) for key, item in value.items())
    return False


def conforms(value: object, tp: Any) -> bool:
    """Whether ``value`` is of type ``tp`` as a decoded record's field must be:
    exact types, no bool for an int, no int for a float, lists not tuples."""
    if tp in (int, float, bool, str, bytes):
        return type(value) is tp
    if tp is type(None):
        return value is None
    if tp in (list, dict):
        return type(value) is tp and _plain(value)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return type(value) is list and all(conforms(item, args[0]) for item in value)
    if origin is dict:
        return type(value) is dict and all(
            conforms(key, args[0]) and conforms(item, args[1])
            for key, item in value.items()
        )
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, arg) for arg in args)
    raise AssertionError(f"no rule for {tp!r}")


def decodes_or_refuses(data: bytes) -> None:
    """``data`` decodes to a Player whose fields have their declared types, or
    raises RecordUnreadable; anything else fails the test."""
    try:
        record = PLAYER.decode(data)
    except RecordUnreadable:
        return
    assert Player is type(record)
    for field in attrs.fields(Player):
        assert conforms(getattr(record, field.name), field.type), field.name


# -- decoding anything ------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_decode_to_a_player_or_are_refused(data: bytes) -> None:
    decodes_or_refuses(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_tagged_arbitrary_bytes_decode_to_a_player_or_are_refused(
    data: bytes,
) -> None:
    decodes_or_refuses(b"\x01" + data)


@settings(max_examples=200, deadline=None)
@given(packable)
def test_any_msgpack_value_decodes_to_a_player_or_is_refused(value: Any) -> None:
    decodes_or_refuses(b"\x01" + msgpack.packb(value))


@settings(max_examples=200, deadline=None)
@given(field_maps)
def test_any_map_of_fields_decodes_to_a_player_or_is_refused(
    fields: dict[Any, Any],
) -> None:
    decodes_or_refuses(b"\x01" + msgpack.packb(fields))


@settings(max_examples=150, deadline=None)
@given(players, st.data())
def test_a_damaged_record_decodes_to_a_player_or_is_refused(
    player: Player, data: st.DataObject
) -> None:
    stored = bytearray(PLAYER.encode(player))
    at = data.draw(st.integers(0, len(stored) - 1))
    stored[at] = data.draw(st.integers(0, 255))
    decodes_or_refuses(bytes(stored[: data.draw(st.integers(0, len(stored)))]))


# -- unreadable records -----------------------------------------------------------


def test_empty_bytes_are_no_record() -> None:
    assert (
        "not a Player record: it starts with nothing, not format tag 01"
    ) == unreadable(PLAYER, b"")


def test_a_record_with_another_tag_is_refused() -> None:
    """Another format, or a record the marshal codec wrote (marshal starts a dict
    with 0xfb)."""
    assert ("not a Player record: it starts with 02, not format tag 01") == unreadable(
        PLAYER, b"\x02" + PLAYER.encode(Player())[1:]
    )
    assert ("not a Player record: it starts with fb, not format tag 01") == unreadable(
        PLAYER, b"\xfb\xda\x05score\xe9\x03\x00\x00\x000"
    )


def test_a_truncated_record_is_refused() -> None:
    data = PLAYER.encode(Player(name="Ann"))
    assert (
        "not a Player record: ValueError: Unpack failed: incomplete input"
    ) == unreadable(PLAYER, data[:-1])


def test_bytes_after_the_record_are_refused() -> None:
    assert (
        "not a Player record: ExtraData: unpack(b) received extra data."
    ) == unreadable(PLAYER, PLAYER.encode(Player()) + b"\x00")


def test_a_value_that_is_not_a_map_is_refused() -> None:
    assert ("not a Player record: it holds [1, 2], not a map of fields") == unreadable(
        PLAYER, b"\x01\x92\x01\x02"
    )


def test_text_that_is_not_utf8_is_refused() -> None:
    assert (
        "not a Player record: UnicodeDecodeError: 'utf-8' codec can't decode byte"
        " 0xff in position 0: invalid start byte"
    ) == unreadable(PLAYER, b"\x01\x81\xa4name\xa2\xff\xfe")


def test_values_nested_too_deeply_are_refused() -> None:
    """Deeper than the interpreter's recursion limit, and deeper than msgpack's
    own limit: refused either way, not a RecursionError."""
    assert (
        "not a Player record: Player.notes nests lists or dicts too deeply"
    ) == unreadable(PLAYER, b"\x01\x81\xa5notes" + b"\x91" * 1000 + b"\xc0")
    assert "not a Player record: StackError" == unreadable(
        PLAYER, b"\x01\x81\xa5notes" + b"\x91" * 2000 + b"\xc0"
    )


def test_a_stored_value_of_the_wrong_type_is_refused_naming_where() -> None:
    assert (
        "Player.scores[1] was stored as 'x' (str) but is now an int: add"
        " __sesh_migrate__ to the class to carry old records over"
    ) == unreadable(PLAYER, b"\x01" + msgpack.packb({"scores": [1, "x"]}))
    assert (
        "Player.seen key 1 was stored as 1 (int) but is now a str: add"
        " __sesh_migrate__ to the class to carry old records over"
    ) == unreadable(PLAYER, b"\x01" + msgpack.packb({"seen": {1: 2}}))
    assert (
        "Player.alive was stored as 1 (int) but is now a bool: add"
        " __sesh_migrate__ to the class to carry old records over"
    ) == unreadable(PLAYER, b"\x01" + msgpack.packb({"alive": 1}))


@attrs.define
class Guarded:
    level: int = attrs.field(default=1, validator=attrs.validators.in_([1, 2, 3]))


def test_a_record_its_class_refuses_is_unreadable() -> None:
    """A validator's error is shown by its message, not its argument tuple."""
    assert (
        "Guarded refused the stored values: ValueError: 'level' must be in"
        " [1, 2, 3] (got 7)"
    ) == unreadable(MsgpackCodec(Guarded, 64), b"\x01\x81\xa5level\x07")


# -- schema changes ---------------------------------------------------------------


@attrs.define
class ScoreV1:
    score: int = 0
    level: int = 1


@attrs.define
class ScoreV2:
    score: int = 0
    bonus: list[int] = attrs.Factory(lambda: [5])


def test_a_field_added_with_a_default_is_filled_and_a_removed_one_ignored() -> None:
    old = MsgpackCodec(ScoreV1, 64).encode(ScoreV1(score=7, level=3))
    assert ScoreV2(score=7, bonus=[5]) == MsgpackCodec(ScoreV2, 64).decode(old)


@attrs.define
class LevelV1:
    level: int = 0


@attrs.define
class LevelV2:
    level: str = "easy"


def test_a_field_whose_type_changed_makes_old_records_unreadable() -> None:
    old = MsgpackCodec(LevelV1, 64).encode(LevelV1(level=1))
    assert (
        "LevelV2.level was stored as 1 (int) but is now a str: add __sesh_migrate__"
        " to the class to carry old records over"
    ) == unreadable(MsgpackCodec(LevelV2, 64), old)


#: What LevelV3's hook was called with, in order.
migrated: list[object] = []


@attrs.define
class LevelV3:
    level: str = "easy"

    @staticmethod
    def __sesh_migrate__(fields: dict[str, Any]) -> dict[str, Any]:
        migrated.append(fields)
        if type(fields.get("level")) is int:
            return {**fields, "level": ["easy", "hard"][fields["level"]]}
        return fields


def test_the_migration_hook_carries_a_changed_type_over() -> None:
    """The hook sees the stored map on every decode, before the checks, and on
    the reading back of every encode (what encode stores, decode must read)."""
    codec = MsgpackCodec(LevelV3, 64)
    old = MsgpackCodec(LevelV1, 64).encode(LevelV1(level=1))
    migrated.clear()
    assert LevelV3(level="hard") == codec.decode(old)
    assert LevelV3(level="easy") == codec.decode(codec.encode(LevelV3()))
    assert [{"level": 1}, {"level": "easy"}, {"level": "easy"}] == migrated


@attrs.define
class Unmigratable:
    level: str = "easy"

    @staticmethod
    def __sesh_migrate__(fields: dict[str, Any]) -> dict[str, Any]:
        if type(fields.get("level")) is str:
            return fields
        return {"level": fields["rank"]}


def test_a_migration_hook_that_raises_makes_the_record_unreadable() -> None:
    assert "Unmigratable.__sesh_migrate__ failed: KeyError: 'rank'" == unreadable(
        MsgpackCodec(Unmigratable, 64), b"\x01\x81\xa5level\x01"
    )


@attrs.define
class Listing:
    level: str = "easy"

    @staticmethod
    def __sesh_migrate__(fields: dict[str, Any]) -> dict[str, Any] | list[object]:
        return fields if type(fields.get("level")) is str else list(fields)


def test_a_migration_hook_must_return_a_map() -> None:
    assert "not a Listing record: it holds ['level'], not a map of fields" == (
        unreadable(MsgpackCodec(Listing, 64), b"\x01\x81\xa5level\x01")
    )
