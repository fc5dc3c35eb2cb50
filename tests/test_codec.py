"""Records: compact encoding, schema changes, and records that do not fit."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jetforce_sesh import ConfigError, RecordTooLarge
from jetforce_sesh.codec import RecordCodec


@attrs.define
class Player:
    name: str = ""
    score: int = 0
    ratio: float = 0.5
    alive: bool = True
    token: bytes = b""
    history: list[int] = attrs.Factory(list)
    seen: dict[str, int] = attrs.Factory(dict)
    nickname: str | None = None


@given(
    st.builds(
        Player,
        name=st.text(max_size=20),
        score=st.integers(-(2**62), 2**62),
        ratio=st.floats(allow_nan=False),
        alive=st.booleans(),
        token=st.binary(max_size=10),
        history=st.lists(st.integers(-1000, 1000), max_size=10),
        seen=st.dictionaries(st.text(max_size=5), st.integers(), max_size=5),
        nickname=st.none() | st.text(max_size=5),
    )
)
def test_round_trip(player: Player) -> None:
    codec = RecordCodec(Player, 4096)
    assert player == codec.decode(codec.encode(player))


def test_new_players_get_the_defaults() -> None:
    codec = RecordCodec(Player, 256)
    assert Player() == codec.new()


def test_small_record_is_small() -> None:
    @attrs.define
    class Visits:
        count: int = 0

    codec = RecordCodec(Visits, 64)
    assert len(codec.encode(Visits(count=3))) == 14


def test_field_added_with_default_reads_old_records() -> None:
    @attrs.define
    class V1:
        score: int = 0

    @attrs.define
    class V2:
        score: int = 0
        level: int = 1

    old = RecordCodec(V1, 64).encode(V1(score=7))
    assert V2(score=7, level=1) == RecordCodec(V2, 64).decode(old)


def test_removed_field_is_ignored() -> None:
    @attrs.define
    class V1:
        score: int = 0
        level: int = 1

    @attrs.define
    class V2:
        score: int = 0

    old = RecordCodec(V1, 64).encode(V1(score=7, level=3))
    assert V2(score=7) == RecordCodec(V2, 64).decode(old)


def test_record_that_outgrows_its_slot_is_refused() -> None:
    codec = RecordCodec(Player, 96)
    with pytest.raises(RecordTooLarge) as raised:
        codec.encode(Player(name="x" * 200))
    assert str(raised.value) == (
        "Player encodes to 291 bytes but its slots hold 96: raise its record_size"
        " or store less"
    )


def test_unstorable_value_is_refused_at_encode() -> None:
    codec = RecordCodec(Player, 256)
    with pytest.raises(RecordTooLarge) as raised:
        codec.encode(Player(history=[object()]))  # type: ignore[list-item]
    assert str(raised.value) == (
        "Player holds a value records cannot store (unmarshallable object):"
        " use int, float, bool, str, bytes, list, dict"
    )


def test_defaults_that_do_not_fit_fail_at_start_up() -> None:
    @attrs.define
    class Big:
        blob: str = "x" * 100

    with pytest.raises(ConfigError) as raised:
        RecordCodec(Big, 64)
    assert str(raised.value) == (
        "record type test_defaults_that_do_not_fit_fail_at_start_up.<locals>.Big"
        " needs 110 bytes for its defaults but its slots hold 64: give it"
        " record_size=110 or more"
    )


def test_field_types_are_checked() -> None:
    @attrs.define
    class Bad:
        when: set[int] = attrs.Factory(set)

    with pytest.raises(ConfigError) as raised:
        RecordCodec(Bad, 64)
    assert str(raised.value) == (
        "field test_field_types_are_checked.<locals>.Bad.when has type set[int]:"
        " records hold int, float, bool, str, bytes, None, and lists or dicts of"
        " those"
    )


def test_record_type_must_be_attrs() -> None:
    class Plain:
        pass

    with pytest.raises(ConfigError) as raised:
        RecordCodec(Plain, 64)
    assert str(raised.value).endswith(
        "is not an attrs class: decorate it with @attrs.define"
    )


def test_private_fields_round_trip_under_their_init_names() -> None:
    @attrs.define
    class Secretive:
        _n: int = 0

    codec = RecordCodec(Secretive, 64)
    assert Secretive(n=3) == codec.decode(codec.encode(Secretive(n=3)))


def test_field_without_default_fails_at_start_up() -> None:
    @attrs.define
    class NoDefault:
        n: int

    with pytest.raises(ConfigError) as raised:
        RecordCodec(NoDefault, 64)
    assert (
        "field test_field_without_default_fails_at_start_up.<locals>.NoDefault.n has"
        " no default: new players start from the defaults, so give it one (e.g. = 0,"
        " or attrs.Factory(list))"
    ) == str(raised.value)


def test_field_outside_init_fails_at_start_up() -> None:
    @attrs.define
    class Hidden:
        n: int = attrs.field(default=0, init=False)

    with pytest.raises(ConfigError) as raised:
        RecordCodec(Hidden, 64)
    assert (
        "field test_field_outside_init_fails_at_start_up.<locals>.Hidden.n has"
        " init=False: a record is rebuilt through its __init__, so every field must"
        " be an __init__ argument"
    ) == str(raised.value)
