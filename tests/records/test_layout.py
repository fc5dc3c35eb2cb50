"""LayoutCodec: records as C structs, for programs outside Python.

The layout fixes the bytes and the size; these tests pin both, every start-up
ConfigError and every encode and decode error, whole, and show that any bytes of
the right size decode to a well-typed record or raise RecordUnreadable.
"""

from __future__ import annotations

import struct
from typing import Any

import attr
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh import (
    ConfigError,
    LayoutCodec,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
)


@attrs.define
class Visits:
    count: int = 0


@attrs.define
class Row:
    id: int = 0
    score: int = 0
    ok: bool = False
    ratio: float = 0.0
    name: str = ""
    tag: bytes = b"\0\0\0\0"


ROW_LAYOUT = "<Iq?d8s4s"
ROW = LayoutCodec(Row, ROW_LAYOUT)


def unreadable(codec: LayoutCodec[Any], data: bytes) -> str:
    with pytest.raises(RecordUnreadable) as raised:
        codec.decode(data)
    return str(raised.value)


def config_error(record_type: type, layout: str) -> str:
    with pytest.raises(ConfigError) as raised:
        LayoutCodec(record_type, layout)
    return str(raised.value)


# -- the bytes --------------------------------------------------------------------


def test_the_visit_counter_is_a_little_endian_uint64() -> None:
    codec = LayoutCodec(Visits, "<Q")
    assert (8, "struct/<Q") == (codec.record_size, codec.format)
    assert b"\x03\0\0\0\0\0\0\0" == codec.encode(Visits(3))
    assert Visits(2**64 - 1) == codec.decode(b"\xff" * 8)


def test_fields_are_packed_in_class_order_as_struct_packs_them() -> None:
    data = ROW.encode(
        Row(id=1, score=-2, ok=True, ratio=0.5, name="Zoë", tag=b"ab\0\0")
    )
    assert (
        b"\x01\x00\x00\x00"  # id: uint32
        b"\xfe\xff\xff\xff\xff\xff\xff\xff"  # score: int64
        b"\x01"  # ok: bool
        b"\x00\x00\x00\x00\x00\x00\xe0\x3f"  # ratio: float64
        b"Zo\xc3\xab\x00\x00\x00\x00"  # name: UTF-8, padded with NULs
        b"ab\x00\x00"  # tag: 4 bytes
    ) == data


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Row,
        id=st.integers(0, 2**32 - 1),
        score=st.integers(-(2**63), 2**63 - 1),
        ok=st.booleans(),
        ratio=st.floats(allow_nan=False),
        name=st.text(max_size=8).filter(
            lambda text: len(text.encode()) <= 8 and not text.endswith("\0")
        ),
        tag=st.binary(min_size=4, max_size=4),
    )
)
def test_every_record_round_trips(row: Row) -> None:
    assert row == ROW.decode(ROW.encode(row))


def test_a_str_is_utf8_padded_with_nul_bytes_which_decoding_strips() -> None:
    """So a str that ends in NULs loses them, and one that fills its width exactly
    comes back whole."""
    codec = LayoutCodec(Row, ROW_LAYOUT)
    assert b"Zo\xc3\xab\0\0\0\0" == codec.encode(Row(name="Zoë"))[21:29]
    assert Row(name="a\0b") == codec.decode(codec.encode(Row(name="a\0b\0\0")))
    assert Row(name="ëëëë") == codec.decode(codec.encode(Row(name="ëëëë")))


def test_bytes_come_back_at_the_full_width_of_their_code() -> None:
    """A bytes field is a fixed-size char array: short values are padded with
    NULs, and the padding is part of the value read back."""
    assert Row(tag=b"a\0\0\0") == ROW.decode(ROW.encode(Row(tag=b"a")))
    assert Row(tag=b"\0\0\0\0") == ROW.decode(ROW.encode(Row(tag=b"")))


def test_a_bool_is_one_byte_and_any_nonzero_byte_reads_true() -> None:
    codec = LayoutCodec(Row, ROW_LAYOUT)
    data = bytearray(codec.encode(Row(ok=True)))
    assert 1 == data[12]
    data[12] = 7
    assert Row(ok=True) == codec.decode(bytes(data))


@attrs.define
class Floats:
    half: float = 0.0
    single: float = 0.0
    double: float = 0.0


def test_float_codes_keep_the_precision_of_their_width() -> None:
    codec = LayoutCodec(Floats, "<efd")
    decoded = codec.decode(codec.encode(Floats(0.1, 0.1, 0.1)))
    assert Floats(0.0999755859375, 0.10000000149011612, 0.1) == decoded


def test_an_int_in_a_float_field_is_stored_as_a_float() -> None:
    codec = LayoutCodec(Floats, "<efd")
    assert codec.encode(Floats(1.0, 2.0, 3.0)) == codec.encode(Floats(1, 2, 3))
    assert [float] * 3 == [type(v) for v in attrs.astuple(codec.decode(b"\0" * 14))]


@attrs.define
class Secretive:
    _n: int = 0


def test_private_fields_round_trip_under_their_init_names() -> None:
    codec = LayoutCodec(Secretive, "<i")
    assert Secretive(n=-5) == codec.decode(codec.encode(Secretive(n=-5)))


@attrs.define
class Native:
    small: int = 0
    big: int = 0


@pytest.mark.parametrize(
    ("layout", "size"),
    [("<bq", 9), ("@bq", 16), ("bq", 16), ("=bq", 9), ("!bq", 9), ("<b7xq", 16)],
)
def test_record_size_is_the_struct_size(layout: str, size: int) -> None:
    """Native layouts align as the C compiler does; pad bytes take no field."""
    codec = LayoutCodec(Native, layout)
    assert (size, size) == (codec.record_size, struct.calcsize(layout))
    assert Native(-1, 7) == codec.decode(codec.encode(Native(-1, 7)))


def test_whitespace_between_codes_is_allowed_as_struct_allows_it() -> None:
    assert 33 == LayoutCodec(Row, "< I q ?\td\n8s 4s").record_size


@attrs.define
class Empty:
    pass


def test_an_empty_layout_holds_a_record_without_fields() -> None:
    codec = LayoutCodec(Empty, "")
    assert (0, b"", Empty()) == (codec.record_size, codec.encode(Empty()), codec.new())
    assert Empty() == codec.decode(b"")


# -- start-up errors --------------------------------------------------------------

CODES_HINT = (
    ": use an integer code for int, '?' for bool, 'e', 'f' or 'd' for float,"
    " 'Ns' for bytes or str"
)


@attrs.define
class Pair:
    a: int = 0
    b: bool = False


@attrs.define
class Maybe:
    name: str | None = None


@pytest.mark.parametrize(
    ("record_type", "layout", "message"),
    [
        (
            Row,
            "<Iq",
            "layout '<Iq' holds 2 values but Row has 6 fields (id, score, ok, ratio,"
            " name, tag): give one code per field, in the order of the class",
        ),
        (
            Visits,
            "<2Q",
            "layout '<2Q' holds 2 values but Visits has 1 field (count): give one"
            " code per field, in the order of the class",
        ),
        (
            Visits,
            "<4x",
            "layout '<4x' holds 0 values but Visits has 1 field (count): give one"
            " code per field, in the order of the class",
        ),
        (
            Pair,
            "<q?4s",
            "layout '<q?4s' holds 3 values but Pair has 2 fields (a, b): give one"
            " code per field, in the order of the class",
        ),
        (Visits, "<d", "field Visits.count is an int but layout '<d' gives it 'd'"),
        (Visits, "<?", "field Visits.count is an int but layout '<?' gives it '?'"),
        (Visits, "<8s", "field Visits.count is an int but layout '<8s' gives it '8s'"),
        (Visits, "<c", "field Visits.count is an int but layout '<c' gives it 'c'"),
        (Pair, "<qB", "field Pair.b is a bool but layout '<qB' gives it 'B'"),
        (
            Floats,
            "<efq",
            "field Floats.double is a float but layout '<efq' gives it 'q'",
        ),
        (
            Row,
            "<Iq?d8p4s",
            "field Row.name is a str but layout '<Iq?d8p4s' gives it '8p'",
        ),
        (Row, "<Iq?dQ4s", "field Row.name is a str but layout '<Iq?dQ4s' gives it 'Q'"),
        (Maybe, "<8s", "field Maybe.name is str | None but layout '<8s' gives it '8s'"),
    ],
)
def test_a_layout_that_does_not_match_the_fields_fails_at_start_up(
    record_type: type, layout: str, message: str
) -> None:
    expected = message if "give one code" in message else message + CODES_HINT
    assert expected == config_error(record_type, layout)


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        ("<Z", "bad char in struct format"),
        (" <Q", "bad char in struct format"),
        ("<2 Q", "bad char in struct format"),
        ("<n", "bad char in struct format"),
        ("4", "repeat count given without format specifier"),
    ],
)
def test_a_layout_that_is_not_a_struct_format_fails_at_start_up(
    layout: str, why: str
) -> None:
    assert (
        f"layout {layout!r} of Visits is not a struct format ({why}): use codes"
        " such as '<Q' or '<Iq16s'"
    ) == config_error(Visits, layout)


@attrs.define
class Counter255:
    count: int = 256


@attrs.define
class LongName:
    name: str = "Zoë Zoë"


@attrs.define
class HugeHalf:
    ratio: float = 1e6


@attrs.define
class WrongDefault:
    count: int = "0"  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("record_type", "layout", "message"),
    [
        (
            Counter255,
            "<B",
            "Counter255.count holds 256, which layout code 'B' cannot hold (ubyte"
            " format requires 0 <= number <= 255)",
        ),
        (
            LongName,
            "<8s",
            "LongName.name takes 9 bytes but layout code '8s' holds 8: store less",
        ),
        (
            HugeHalf,
            "<e",
            "HugeHalf.ratio holds 1000000.0, which layout code 'e' cannot hold (float"
            " too large to pack with e format)",
        ),
        (
            WrongDefault,
            "<Q",
            "WrongDefault.count holds '0' (str), not an int"
            ": records keep only what their field types allow",
        ),
    ],
)
def test_defaults_that_do_not_fit_the_layout_fail_at_start_up(
    record_type: type, layout: str, message: str
) -> None:
    assert "the defaults do not fit: " + message == config_error(record_type, layout)


@attr.s
class Untyped:
    count = attr.ib(default=0)


def test_a_field_without_annotation_has_no_layout_code() -> None:
    assert (
        "field Untyped.count is Any but layout '<q' gives it 'q'" + CODES_HINT
    ) == config_error(Untyped, "<q")


class NotAttrs:
    count: int = 0


def test_a_class_that_cannot_be_a_record_fails_as_for_msgpack() -> None:
    assert (
        "record type <class 'tests.records.test_layout.NotAttrs'> is not an"
        " attrs class:"
        " decorate it with @attrs.define"
    ) == config_error(NotAttrs, "<Q")


# -- encode errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            Row(id=-1),
            "Row.id holds -1, which layout code 'I' cannot hold (argument out of"
            " range)",
        ),
        (
            Row(id=2**32),
            "Row.id holds 4294967296, which layout code 'I' cannot hold ('I' format"
            " requires 0 <= number <= 4294967295)",
        ),
        (
            Row(score=2**63),
            "Row.score holds 9223372036854775808, which layout code 'q' cannot hold"
            " (argument out of range)",
        ),
        (
            Row(score="3"),
            "Row.score holds '3' (str), not an int"
            ": records keep only what their field types allow",
        ),  # type: ignore[arg-type]
        (
            Row(score=True),
            "Row.score holds True (bool), not an int"
            ": records keep only what their field types allow",
        ),
        (
            Row(ok=1),
            "Row.ok holds 1 (int), not a bool"
            ": records keep only what their field types allow",
        ),  # type: ignore[arg-type]
        (
            Row(ratio="x"),
            "Row.ratio holds 'x' (str), not a float"
            ": records keep only what their field types allow",
        ),  # type: ignore[arg-type]
        (
            Row(name=b"x"),
            "Row.name holds b'x' (bytes), not a str"
            ": records keep only what their field types allow",
        ),  # type: ignore[arg-type]
        (
            Row(tag="x"),
            "Row.tag holds 'x' (str), not bytes"
            ": records keep only what their field types allow",
        ),  # type: ignore[arg-type]
        (
            Row(name="\udcff"),
            "Row.name holds '\\udcff' (str), not a str without lone surrogates",
        ),
    ],
)
def test_a_value_the_layout_cannot_hold_is_refused(record: Row, message: str) -> None:
    with pytest.raises(RecordInvalid) as raised:
        ROW.encode(record)
    assert message == str(raised.value)


def test_a_float_too_large_for_its_code_is_refused() -> None:
    with pytest.raises(RecordInvalid) as raised:
        LayoutCodec(Floats, "<efd").encode(Floats(single=1e300))
    assert (
        "Floats.single holds 1e+300, which layout code 'f' cannot hold (float too"
        " large to pack with f format)"
    ) == str(raised.value)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (
            Row(name="123456789"),
            "Row.name takes 9 bytes but layout code '8s' holds 8: store less",
        ),
        (
            Row(name="ëëëëë"),
            "Row.name takes 10 bytes but layout code '8s' holds 8: store less",
        ),
        (
            Row(tag=b"abcde"),
            "Row.tag takes 5 bytes but layout code '4s' holds 4: store less",
        ),
    ],
)
def test_a_value_longer_than_its_code_is_refused_not_cut(
    record: Row, message: str
) -> None:
    with pytest.raises(RecordTooLarge) as raised:
        ROW.encode(record)
    assert message == str(raised.value)


# -- decode errors ----------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 8, 32, 34])
def test_bytes_of_another_size_are_unreadable(size: int) -> None:
    assert (
        f"not a Row record: {size} bytes, where layout '<Iq?d8s4s' takes 33"
    ) == unreadable(ROW, b"\0" * size)


def test_a_str_that_is_not_utf8_is_unreadable() -> None:
    data = bytearray(ROW.encode(Row()))
    data[21:23] = b"\xff\xfe"
    assert (
        "Row.name is not UTF-8: 'utf-8' codec can't decode byte 0xff in position 0:"
        " invalid start byte"
    ) == unreadable(ROW, bytes(data))


@attrs.define
class Guarded:
    level: int = attrs.field(default=1, validator=attrs.validators.in_([1, 2, 3]))


def test_a_record_its_class_refuses_is_unreadable() -> None:
    assert (
        "Guarded refused the stored values: ValueError: 'level' must be in"
        " [1, 2, 3] (got 7)"
    ) == unreadable(LayoutCodec(Guarded, "<B"), b"\x07")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=33, max_size=33))
def test_any_bytes_of_the_right_size_decode_to_a_row_or_are_refused(
    data: bytes,
) -> None:
    try:
        row = ROW.decode(data)
    except RecordUnreadable:
        return
    assert Row is type(row)
    assert [int, int, bool, float, str, bytes] == [type(v) for v in attrs.astuple(row)]
    assert 4 == len(row.tag)
    assert len(row.name.encode()) <= 8


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=1))
def test_any_byte_decodes_to_a_guarded_record_or_is_refused(data: bytes) -> None:
    try:
        record = LayoutCodec(Guarded, "<B").decode(data)
    except RecordUnreadable:
        assert data[0] not in (1, 2, 3)
        return
    assert Guarded(data[0]) == record
