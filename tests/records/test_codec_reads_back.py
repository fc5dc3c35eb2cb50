"""What encode accepts, decode accepts: a record its own class would refuse when
read back is refused when it is encoded (``RecordInvalid``), never stored.

attrs runs validators on ``__init__`` and on assignment, not on a change made in
place (``list.append``), and a layout may round a float a validator then
refuses. The oracle here is the class itself, built from the values the record
holds (or from the values as the layout stores them): the codec's own decode is
what is checked, not what decides.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import LayoutCodec, MsgpackCodec, RecordInvalid, RecordTooLarge
from jetforce_sesh.errors import ConfigError
from tests.strategies import int64


def at_most(limit: int) -> Any:
    return attrs.validators.max_len(limit)


@attrs.define
class Bag:
    """A list field with a length limit, and a number with a range."""

    items: list[str] = attrs.field(factory=list, validator=at_most(3))
    level: int = attrs.field(default=1, validator=[attrs.validators.ge(1)])


@attrs.define
class Span:
    """A rule across fields, in __attrs_post_init__."""

    low: int = 0
    high: int = 0

    def __attrs_post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")


def _positive(value: int) -> int:
    if value < 0:
        raise ValueError(f"{value} is negative")
    return value


@attrs.define
class Converted:
    """A converter that refuses some values."""

    count: int = attrs.field(default=0, converter=_positive)


@attrs.define
class Migrated:
    """A migration hook that refuses some stored maps."""

    word: str = ""

    @staticmethod
    def __sesh_migrate__(values: dict[str, Any]) -> dict[str, Any]:
        if values.get("word") == "forbidden":
            raise ValueError("that word was retired")
        return values


@attrs.define
class Plain:
    """No validator at all: every value its types allow reads back."""

    items: list[str] = attrs.Factory(list)
    level: int = 1


def forced(record: Any, **values: Any) -> Any:
    """``record`` with ``values`` set past its validators, as an in-place change
    would leave it."""
    for name, value in values.items():
        object.__setattr__(record, name, value)
    return record


def accepted(record_type: type, values: dict[str, Any]) -> bool:
    """Whether the class builds a record from ``values``, as its migration hook
    (if any) hands them on (the oracle)."""
    try:
        migrate = getattr(record_type, "__sesh_migrate__", None)
        record_type(**(migrate(dict(values)) if migrate else values))
    except Exception:
        return False
    return True


CLASSES: dict[type, Any] = {
    Bag: st.fixed_dictionaries(
        {
            "items": st.lists(st.text(max_size=3), max_size=6),
            "level": st.integers(-3, 3),
        }
    ),
    Span: st.fixed_dictionaries(
        {"low": st.integers(-5, 5), "high": st.integers(-5, 5)}
    ),
    Converted: st.fixed_dictionaries({"count": st.integers(-5, 5)}),
    Migrated: st.fixed_dictionaries(
        {"word": st.sampled_from(["", "fine", "forbidden"])}
    ),
    Plain: st.fixed_dictionaries(
        {"items": st.lists(st.text(max_size=3), max_size=6), "level": int64}
    ),
}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(CLASSES, key=lambda c: c.__name__)), st.data())
def test_what_msgpack_encodes_decodes_and_what_the_class_accepts_encodes(
    record_type: type, data: st.DataObject
) -> None:
    values = data.draw(CLASSES[record_type])
    codec = MsgpackCodec(record_type, 4096)
    record = forced(record_type(), **values)
    try:
        stored = codec.encode(record)
    except RecordInvalid:
        assert not accepted(record_type, values)
        return
    assert accepted(record_type, values)
    assert record_type(**values) == codec.decode(stored)


def test_a_list_grown_in_place_past_its_limit_is_refused_naming_the_limit() -> None:
    codec = MsgpackCodec(Bag, 256)
    record = Bag(["a", "b", "c"])
    record.items.append("d")  # no validator runs
    with pytest.raises(RecordInvalid) as raised:
        codec.encode(record)
    assert (
        "Bag would not read back what was saved (Bag refused the stored values:"
        " ValueError: Length of 'items' must be <= 3: 4): nothing was stored; a"
        " record is kept only if its class reads it back"
    ) == str(raised.value)


def test_a_rule_of_post_init_broken_in_place_is_refused() -> None:
    codec = MsgpackCodec(Span, 256)
    record = Span(1, 2)
    record.high = 0  # attrs runs no __attrs_post_init__ on assignment
    with pytest.raises(RecordInvalid) as raised:
        codec.encode(record)
    assert (
        "Span would not read back what was saved (Span refused the stored values:"
        " ValueError: low 1 is above high 0): nothing was stored; a record is kept"
        " only if its class reads it back"
    ) == str(raised.value)


def test_a_record_its_migration_hook_refuses_is_refused() -> None:
    codec = MsgpackCodec(Migrated, 256)
    with pytest.raises(RecordInvalid) as raised:
        codec.encode(Migrated("forbidden"))
    assert (
        "Migrated would not read back what was saved (Migrated.__sesh_migrate__"
        " failed: ValueError: that word was retired): nothing was stored; a record"
        " is kept only if its class reads it back"
    ) == str(raised.value)


@attrs.define
class Retired:
    word: str = "forbidden"

    @staticmethod
    def __sesh_migrate__(values: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("no record reads back")


def test_defaults_that_would_not_read_back_fail_at_start_up() -> None:
    """A migration hook that refuses even a new player's record would lock
    every player out at their second visit."""
    with pytest.raises(ConfigError) as raised:
        MsgpackCodec(Retired, 64)
    assert (
        "the defaults do not read back: Retired.__sesh_migrate__ failed:"
        " ValueError: no record reads back"
    ) == str(raised.value)


# -- layouts ----------------------------------------------------------------------


def _above_zero(instance: Any, attribute: Any, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be above 0, not {value!r}")


@attrs.define
class Probe:
    """A half-precision float that must stay above 0, and a counted name."""

    weight: float = attrs.field(default=1.0, validator=_above_zero)
    tag: str = attrs.field(default="", validator=at_most(3))


PROBE = "<e4s"


def as_stored(values: dict[str, Any]) -> dict[str, Any]:
    """The values as the layout keeps them: the float rounded to 'e', the text
    with its trailing NULs gone (the oracle's own reading of struct)."""
    (weight,) = struct.unpack("<e", struct.pack("<e", values["weight"]))
    return {"weight": weight, "tag": values["tag"].rstrip("\0")}


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "weight": st.floats(-1.0, 1.0, width=32)
            | st.sampled_from([1e-8, -1e-8, 6e-8, 0.0, -0.0]),
            "tag": st.text(alphabet="ab\0é", max_size=4),
        }
    )
)
def test_what_a_layout_encodes_decodes(values: dict[str, Any]) -> None:
    codec = LayoutCodec(Probe, PROBE)
    record = forced(Probe(), **values)
    try:
        stored = codec.encode(record)
    except (RecordInvalid, RecordTooLarge):
        return
    decoded = codec.decode(stored)
    assert accepted(Probe, as_stored(values))
    assert Probe(**as_stored(values)) == decoded


def test_a_float_a_layout_rounds_to_what_a_validator_refuses_is_refused() -> None:
    """1e-8 is above 0, but 'e' keeps it as 0.0: stored, it would lock the
    player out."""
    codec = LayoutCodec(Probe, PROBE)
    with pytest.raises(RecordInvalid) as raised:
        codec.encode(Probe(weight=1e-8))
    assert (
        "Probe would not read back what was saved (Probe refused the stored values:"
        " ValueError: weight must be above 0, not 0.0): nothing was stored; a"
        " record is kept only if its class reads it back"
    ) == str(raised.value)
