"""MsgpackCodec: the on-disk format, determinism, checks both ways, schema changes.

The codec writes a format tag and a MessagePack map of field name to value. These
tests pin the bytes (a golden record), show that equal records encode alike, that
no bytes whatever can make ``decode`` raise anything but RecordUnreadable or return
anything but a well-typed record of the class, and assert every error message whole.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

import attr
import attrs
import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import (
    ConfigError,
    MsgpackCodec,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
)
from jetforce_sesh.records.codec import reset
from tests.strategies import int64, packable, plain_scalars, plain_values


@attrs.define
class Player:
    name: str = ""
    score: int = 0
    ratio: float = 0.5
    alive: bool = True
    token: bytes = b""
    nickname: str | None = None
    scores: list[int] = attrs.Factory(list)
    seen: dict[str, int] = attrs.Factory(dict)
    notes: list = attrs.Factory(list)  # type: ignore[type-arg]
    extra: dict = attrs.Factory(dict)  # type: ignore[type-arg]


PLAYER = MsgpackCodec(Player, 1 << 16)


# -- strategies of this module's record class ----------------------------------

players = st.builds(
    Player,
    name=st.text(max_size=20),
    score=int64,
    ratio=st.floats(allow_nan=False),
    alive=st.booleans(),
    token=st.binary(max_size=10),
    nickname=st.none() | st.text(max_size=5),
    scores=st.lists(int64, max_size=6),
    seen=st.dictionaries(st.text(max_size=5), int64, max_size=5),
    notes=st.lists(plain_values, max_size=3),
    extra=st.dictionaries(plain_scalars, plain_values, max_size=3),
)

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


def unreadable(codec: MsgpackCodec[Any], data: bytes) -> str:
    with pytest.raises(RecordUnreadable) as raised:
        codec.decode(data)
    return str(raised.value)


def invalid(codec: MsgpackCodec[Any], record: object) -> str:
    with pytest.raises(RecordInvalid) as raised:
        codec.encode(record)
    return str(raised.value)


def config_error(record_type: type, record_size: int = 256) -> str:
    with pytest.raises(ConfigError) as raised:
        MsgpackCodec(record_type, record_size)
    return str(raised.value)


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


# -- the on-disk format -----------------------------------------------------------


@attrs.define
class Golden:
    name: str = ""
    score: int = 0
    ratio: float = 0.5
    alive: bool = True
    token: bytes = b""
    nickname: str | None = "?"
    history: list[int] = attrs.Factory(list)
    seen: dict[str, int] = attrs.Factory(dict)
    extra: dict = attrs.Factory(dict)  # type: ignore[type-arg]
    _n: int = 0


#: A Golden record as every version must write and read it. Changing these bytes
#: changes the format: give it a new FORMAT_TAG and keep reading this one.
GOLDEN = (
    b"\x01"  # format tag 1
    b"\x8a"  # a map of 10 entries, in field order, under the __init__ names
    b"\xa4name\xa4Zo\xc3\xab"  # "Zoë": str, UTF-8
    b"\xa5score\xd1\xfe\xd4"  # -300: int16
    b"\xa5ratio\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00"  # given 1, stored as float 1.0
    b"\xa5alive\xc2"  # False
    b"\xa5token\xc4\x02\x00\xff"  # bin 8: two bytes
    b"\xa8nickname\xc0"  # nil
    b"\xa7history\x92\x07\xcf\x00\x00\x01\x00\x00\x00\x00\x00"  # [7, 2**40]
    b"\xa4seen\x82\xa1a\x01\xa1b\x02"  # keys sorted: a, then b
    b"\xa5extra\x82\x02\xa1x\xa1a\x91\xc3"  # sorted by key type, then key: 2, "a"
    b"\xa1n\xcf\xff\xff\xff\xff\xff\xff\xff\xff"  # _n is stored as n; 2**64 - 1
)

GOLDEN_RECORD = Golden(
    name="Zoë",
    score=-300,
    ratio=1.0,
    alive=False,
    token=b"\x00\xff",
    nickname=None,
    history=[7, 2**40],
    seen={"a": 1, "b": 2},
    extra={2: "x", "a": [True]},
    n=2**64 - 1,
)


def test_golden_bytes_decode_to_the_golden_record() -> None:
    """The format is pinned: these bytes are this record in every version."""
    decoded = MsgpackCodec(Golden, 256).decode(GOLDEN)
    assert GOLDEN_RECORD == decoded
    assert float is type(decoded.ratio)


def test_golden_record_encodes_to_the_golden_bytes() -> None:
    """Built another way (an int for the float, dicts in other orders), the
    golden record still encodes to exactly the golden bytes."""
    record = Golden(
        name="Zoë",
        score=-300,
        ratio=1,
        alive=False,
        token=b"\x00\xff",
        nickname=None,
        history=[7, 2**40],
        seen={"b": 2, "a": 1},
        extra={"a": (True,), 2: "x"},
        n=2**64 - 1,
    )
    assert GOLDEN == MsgpackCodec(Golden, 256).encode(record)


# -- determinism ------------------------------------------------------------------


@attrs.define
class Log:
    words: list[str] = attrs.Factory(list)


def test_shared_and_distinct_equal_strings_encode_alike() -> None:
    """The marshal codec's bug: 12 references to one str took fewer bytes than 12
    equal strs made from request data, so a record could fit in a test and
    overflow in production."""
    word = "a-twenty-char-word!!"
    shared = Log([word] * 12)
    distinct = Log(["".join(list(word)) for _ in range(12)])
    assert distinct.words[0] is not distinct.words[1]
    assert shared == distinct
    codec = MsgpackCodec(Log, 512)
    data = codec.encode(shared)
    assert (data, 261) == (codec.encode(distinct), len(data))
    assert data == codec.encode(codec.decode(codec.encode(distinct)))


def test_dicts_built_in_another_order_encode_alike() -> None:
    one = Player(seen={"b": 1, "a": 2}, extra={b"k": None, 3: 1.5, "z": {"y": 1}})
    two = Player(seen={"a": 2, "b": 1}, extra={"z": {"y": 1}, 3: 1.5, b"k": None})
    assert PLAYER.encode(one) == PLAYER.encode(two)


@attrs.define
class Keyed:
    by_number: dict[int, str] = attrs.Factory(dict)
    by_either: dict[int | str, int] = attrs.Factory(dict)
    bare: dict = attrs.Factory(dict)  # type: ignore[type-arg]


def test_dict_keys_are_stored_in_order_of_key_type_then_key() -> None:
    """Keys of one type in their own order; mixed keys grouped by type name."""
    codec = MsgpackCodec(Keyed, 256)
    record = Keyed(
        {10: "a", -1: "b", 2: "c"},
        {"b": 1, 3: 2, "a": 3, 1: 4},
        {"s": 0, 2.5: 0, None: 0, b"b": 0, False: 0, 1: 0},
    )
    stored = msgpack.unpackb(codec.encode(record)[1:], strict_map_key=False)
    assert {
        "by_number": [-1, 2, 10],
        "by_either": [1, 3, "a", "b"],
        "bare": [None, False, b"b", 2.5, 1, "s"],
    } == {name: list(values) for name, values in stored.items()}


def test_an_int_in_a_float_field_is_stored_as_a_float() -> None:
    data = PLAYER.encode(Player(ratio=2))
    assert data == PLAYER.encode(Player(ratio=2.0))
    assert float is type(PLAYER.decode(data).ratio)


def test_tuples_are_stored_as_lists() -> None:
    as_tuples = Player(scores=(1, 2), notes=[(1, (2,))])  # type: ignore[arg-type]
    as_lists = Player(scores=[1, 2], notes=[[1, [2]]])
    assert PLAYER.encode(as_lists) == PLAYER.encode(as_tuples)
    assert as_lists == PLAYER.decode(PLAYER.encode(as_tuples))


def test_negative_zero_is_the_one_equal_float_stored_apart() -> None:
    """0.0 == -0.0, yet the sign is kept: other bytes, but the same size."""
    positive, negative = (
        PLAYER.encode(Player(ratio=0.0)),
        PLAYER.encode(Player(ratio=-0.0)),
    )
    assert Player(ratio=0.0) == Player(ratio=-0.0)
    assert positive != negative
    assert len(positive) == len(negative)


def _twin(value: Any) -> Any:
    """An equal value built of other objects: strs rebuilt, dicts reversed."""
    if type(value) is str:
        return "".join(list(value))
    if type(value) is list:
        return [_twin(item) for item in value]
    if type(value) is dict:
        return {_twin(key): _twin(item) for key, item in reversed(value.items())}
    return value


@settings(max_examples=100, deadline=None)
@given(players)
def test_equal_records_encode_to_equal_bytes(player: Player) -> None:
    ratio: float = player.ratio
    if ratio.is_integer() and abs(ratio) < 2**53 and math.copysign(1, ratio) > 0:
        ratio = int(ratio)
    twin = Player(
        **{
            field.alias: _twin(getattr(player, field.name))
            for field in attrs.fields(Player)
        }
    )
    twin.ratio = ratio
    assert player == twin
    assert PLAYER.encode(player) == PLAYER.encode(twin)


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
    """The hook sees the stored map on every decode, before the checks."""
    migrated.clear()
    codec = MsgpackCodec(LevelV3, 64)
    old = MsgpackCodec(LevelV1, 64).encode(LevelV1(level=1))
    assert LevelV3(level="hard") == codec.decode(old)
    assert LevelV3(level="easy") == codec.decode(codec.encode(LevelV3()))
    assert [{"level": 1}, {"level": "easy"}] == migrated


@attrs.define
class Unmigratable:
    level: str = "easy"

    @staticmethod
    def __sesh_migrate__(fields: dict[str, Any]) -> dict[str, Any]:
        return {"level": fields["rank"]}


def test_a_migration_hook_that_raises_makes_the_record_unreadable() -> None:
    assert "Unmigratable.__sesh_migrate__ failed: KeyError: 'rank'" == unreadable(
        MsgpackCodec(Unmigratable, 64), b"\x01\x81\xa5level\x01"
    )


@attrs.define
class Listing:
    level: str = "easy"

    @staticmethod
    def __sesh_migrate__(fields: dict[str, Any]) -> list[object]:
        return list(fields)


def test_a_migration_hook_must_return_a_map() -> None:
    assert "not a Listing record: it holds ['level'], not a map of fields" == (
        unreadable(MsgpackCodec(Listing, 64), b"\x01\x81\xa5level\x01")
    )


# -- values records cannot keep ---------------------------------------------------

SUFFIX = ": records keep only what their field types allow"


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (Player(score="3"), "Player.score holds '3' (str), not an int"),  # type: ignore[arg-type]
        (Player(score=True), "Player.score holds True (bool), not an int"),
        (Player(ratio="1"), "Player.ratio holds '1' (str), not a float"),  # type: ignore[arg-type]
        (Player(alive=1), "Player.alive holds 1 (int), not a bool"),  # type: ignore[arg-type]
        (Player(token="ab"), "Player.token holds 'ab' (str), not bytes"),  # type: ignore[arg-type]
        (
            Player(nickname=3),  # type: ignore[arg-type]
            "Player.nickname holds 3 (int), not a str or None",
        ),
        (Player(scores=[1, "x"]), "Player.scores[1] holds 'x' (str), not an int"),  # type: ignore[list-item]
        (Player(scores={1}), "Player.scores holds {1} (set), not a list"),  # type: ignore[arg-type]
        (Player(seen={"a": "b"}), "Player.seen['a'] holds 'b' (str), not an int"),  # type: ignore[dict-item]
        (Player(seen={1: 2}), "Player.seen key 1 holds 1 (int), not a str"),  # type: ignore[dict-item]
        (
            Player(notes=[[{1}]]),
            "Player.notes[0][0] holds {1} (set), not int, float, bool, str, bytes,"
            " None, list or dict",
        ),
        (
            Player(extra={(1, 2): 3}),
            "Player.extra key (1, 2) holds (1, 2) (tuple), not an int, float, bool,"
            " str, bytes or None",
        ),
        (
            Player(score=2**64),
            "Player.score holds 18446744073709551616 (int), not an int from -2**63"
            " to 2**64 - 1",
        ),
        (
            Player(scores=[0, -(2**63) - 1]),
            "Player.scores[1] holds -9223372036854775809 (int), not an int from"
            " -2**63 to 2**64 - 1",
        ),
        (
            Player(extra={"k": [2**70]}),
            "Player.extra['k'][0] holds 1180591620717411303424 (int), not an int"
            " from -2**63 to 2**64 - 1",
        ),
        (
            Player(name="\udcff"),
            "Player.name holds '\\udcff' (str), not a str without lone surrogates",
        ),
        (
            Player(ratio=10**400),
            "Player.ratio holds "
            + "1"
            + "0" * 56
            + "... (int), not a float or an int within the float range",
        ),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_at_encode(
    record: Player, message: str
) -> None:
    assert message + SUFFIX == invalid(PLAYER, record)


def test_values_nested_too_deeply_are_refused_at_encode() -> None:
    nested: list[Any] = []
    for _ in range(1000):
        nested = [nested]
    assert "Player.notes nests lists or dicts too deeply to store" == invalid(
        PLAYER, Player(notes=nested)
    )


def test_a_record_that_outgrows_its_slot_is_refused() -> None:
    codec = MsgpackCodec(Player, 96)
    with pytest.raises(RecordTooLarge) as raised:
        codec.encode(Player(name="x" * 200))
    assert (
        "Player encodes to 284 bytes but its slots hold 96: raise its record_size"
        " or store less"
    ) == str(raised.value)


def test_a_record_that_fills_its_slot_exactly_is_kept() -> None:
    size = len(PLAYER.encode(Player(name="x" * 50)))
    codec = MsgpackCodec(Player, size)
    assert Player(name="x" * 50) == codec.decode(codec.encode(Player(name="x" * 50)))


# -- classes that cannot be records -----------------------------------------------


class NotAttrs:
    n: int = 0


@attrs.define
class NoDefault:
    n: int


@attrs.define
class Hidden:
    n: int = attrs.field(default=0, init=False)


@attrs.define
class TupleField:
    at: tuple[int, int] = (0, 0)


@attrs.define
class SetInList:
    seen: list[set[int]] = attrs.Factory(list)


@attrs.define
class Big:
    blob: str = "x" * 100


@attrs.define
class WrongDefault:
    n: int = "zero"  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("record_type", "message"),
    [
        (
            NotAttrs,
            "record type <class 'tests.records.test_codec.NotAttrs'> is not an"
            " attrs class:"
            " decorate it with @attrs.define",
        ),
        (
            NoDefault,
            "field NoDefault.n has no default: new players start from the defaults,"
            " so give it one (e.g. = 0, or attrs.Factory(list))",
        ),
        (
            Hidden,
            "field Hidden.n has init=False: a record is rebuilt through its __init__,"
            " so every field must be an __init__ argument",
        ),
        (
            TupleField,
            "field TupleField.at has type tuple[int, int]: records hold int, float,"
            " bool, str, bytes, None, and lists, dicts and unions of those",
        ),
        (
            SetInList,
            "field SetInList.seen has type list[set[int]]: records hold int, float,"
            " bool, str, bytes, None, and lists, dicts and unions of those",
        ),
        (
            Big,
            "record type Big needs 109 bytes for its defaults but its slots hold 64:"
            " give it record_size=109 or more",
        ),
        (
            WrongDefault,
            "the defaults do not fit: WrongDefault.n holds 'zero' (str), not an int:"
            " records keep only what their field types allow",
        ),
    ],
)
def test_a_class_that_cannot_be_a_record_fails_at_start_up(
    record_type: type, message: str
) -> None:
    assert message == config_error(record_type, 64)


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
