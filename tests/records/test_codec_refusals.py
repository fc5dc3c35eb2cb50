"""What MsgpackCodec refuses, with every message whole: values a record cannot
keep (at encode), records that outgrow their slot, and classes that cannot be
records (at start-up)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from jetforce_sesh import ConfigError, MsgpackCodec, RecordTooLarge
from tests.records.codec_support import PLAYER, Player, invalid


def config_error(record_type: type, record_size: int = 256) -> str:
    with pytest.raises(ConfigError) as raised:
        MsgpackCodec(record_type, record_size)
    return str(raised.value)


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
            "record type <class 'tests.records.test_codec_refusals.NotAttrs'> is not an"
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
