"""MsgpackCodec's bytes: the on-disk format is pinned by a golden record, and
equal records encode alike (shared or distinct strings, dicts in any order, ints in
float fields, tuples)."""

from __future__ import annotations

import math
from typing import Any

import attrs
import msgpack
from hypothesis import given, settings

from jetforce_sesh import MsgpackCodec
from tests.records.codec_support import PLAYER, Player, players

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
