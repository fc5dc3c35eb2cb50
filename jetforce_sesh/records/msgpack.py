"""Records: attrs classes, encoded into the bytes a store keeps.

Every slab has a codec. The default, :class:`MsgpackCodec`, writes a one-byte
format tag and then a MessagePack map of field name to value. MessagePack has a
published specification, so a record written under one Python version reads under
any other, and it decodes only to plain values, so bytes from elsewhere can fail
but never build objects. Keeping the field names in each record buys schema
changes: a field added with a default is filled from its default when an old record
is read, and a field that was removed is ignored. A field whose type changed can be
carried over by a migration hook on the record class (``__sesh_migrate__``).

Values are checked against the field types both ways. On the way in, a value of
the wrong type is refused before anything is stored (:class:`RecordInvalid`), and
values are put in one canonical form (floats as floats, dict keys sorted, tuples as
lists), so equal records encode to the same bytes and the same size. Two cases are
equal to Python yet stored apart: ``0.0`` and ``-0.0`` (same size, other bytes), and
values of different types inside a bare ``list`` or ``dict`` field (or one with no
annotation), which keep their own type: ``[1]`` is not stored as ``[1.0]``. On the
way out, bytes that do not hold a record of the class raise
:class:`RecordUnreadable`.

:mod:`jetforce_sesh.records.layout` is the other codec: fixed binary layouts, C structs.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs
import msgpack

from jetforce_sesh.errors import (
    ConfigError,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
    why,
)

R = TypeVar("R")

#: The first byte of every record the default codec writes. A later format gets
#: another tag, and its codec still reads records tagged with this one.
FORMAT_TAG = 0x01
_TAG = bytes([FORMAT_TAG])

#: Name of the optional migration hook on a record class.
MIGRATE = "__sesh_migrate__"


# -- value checks -------------------------------------------------------------


class Mismatch(Exception):
    """A value does not fit its type; ``where`` grows as it travels outwards."""

    def __init__(self, expected: str, value: object, where: str = "") -> None:
        self.expected = expected
        self.value = value
        self.where = where

    def at(self, step: str) -> Mismatch:
        return Mismatch(self.expected, self.value, step + self.where)


#: Turns a value into its canonical stored form, or raises Mismatch.
Check = Callable[[Any], Any]

_SCALARS: dict[Any, str] = {
    int: "an int",
    float: "a float",
    bool: "a bool",
    str: "a str",
    bytes: "bytes",
    type(None): "None",
    None: "None",
}


def _exact(tp: type, expected: str) -> Check:
    def check(value: Any) -> Any:
        if type(value) is tp:
            return value
        raise Mismatch(expected, value)

    return check


def _float(value: Any) -> Any:
    # An int is a fine float, but 1 and 1.0 must encode alike: store a float.
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise Mismatch("a float or an int within the float range", value) from None
    raise Mismatch("a float", value)


def _sort_key(item: tuple[Any, Any]) -> tuple[str, Any]:
    return type(item[0]).__name__, item[0]


def _list(item: Check) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not list and type(value) is not tuple:
            raise Mismatch("a list", value)
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except Mismatch as bad:
                raise bad.at(f"[{index}]") from None
        return out

    return check


#: Key types a dict's keys then all share; their plain order is _sort_key's order.
_ONE_KEY_TYPE = (str, int, bytes, bool, float)


def _dict(key: Check, item: Check, *, one_key_type: bool = False) -> Check:
    # Keys of one type sort as they are, which is much quicker than a key function.
    order = None if one_key_type else _sort_key

    def check(value: Any) -> Any:
        if type(value) is not dict:
            raise Mismatch("a dict", value)
        out = {}
        for k, v in value.items():
            try:
                k = key(k)
            except Mismatch as bad:
                raise bad.at(f" key {k!r}") from None
            try:
                out[k] = item(v)
            except Mismatch as bad:
                raise bad.at(f"[{k!r}]") from None
        # Sorted, so that equal dicts built in another order encode alike.
        return dict(sorted(out.items(), key=order)) if len(out) > 1 else out

    return check


def _union(arms: list[tuple[tuple[type, ...], Check]], expected: str) -> Check:
    def check(value: Any) -> Any:
        kind = type(value)
        for kinds, arm in arms:
            if kind in kinds:
                return arm(value)
        if kind is int:
            for _, arm in arms:
                if arm is _float:
                    return arm(value)
        raise Mismatch(expected, value)

    return check


_KEY_KINDS = (int, float, bool, str, bytes, type(None))


def _key(value: Any) -> Any:
    # Keys of a bare dict are scalars: a tuple key would become an unhashable list.
    if type(value) in _KEY_KINDS:
        return value
    raise Mismatch("an int, float, bool, str, bytes or None", value)


def _anything(value: Any) -> Any:
    kind = type(value)
    if kind in _KEY_KINDS:
        return value
    if kind in (list, tuple):
        return _list(_anything)(value)
    if kind is dict:
        return _dict(_key, _anything)(value)
    raise Mismatch("int, float, bool, str, bytes, None, list or dict", value)


def _unpackable(value: Any) -> Mismatch | None:
    """What in a checked value MessagePack cannot hold, if anything.

    Only looked for once packing has failed, so that the checks every record
    goes through stay cheap.
    """
    kind = type(value)
    if kind is int and not -(2**63) <= value < 2**64:
        return Mismatch("an int from -2**63 to 2**64 - 1", value)
    if kind is str:
        try:
            value.encode()
        except UnicodeEncodeError:
            return Mismatch("a str without lone surrogates", value)
    elif kind is list:
        for index, item in enumerate(value):
            found = _unpackable(item)
            if found is not None:
                return found.at(f"[{index}]")
    elif kind is dict:
        for key, item in value.items():
            found = _unpackable(key)
            if found is not None:
                return found.at(f" key {key!r}")
            found = _unpackable(item)
            if found is not None:
                return found.at(f"[{key!r}]")
    return None


def describe_type(tp: Any) -> str:
    if tp in _SCALARS:
        return _SCALARS[tp]
    if tp in (list, dict):
        return f"a {tp.__name__}"
    return str(tp).replace("typing.", "")


def _runtime_types(tp: Any) -> tuple[type, ...]:
    """The types a value of ``tp`` may have at run time (a tuple for a list)."""
    origin = typing.get_origin(tp) or tp
    if origin is list:
        return (list, tuple)
    if origin is None:
        return (type(None),)
    return (origin,)


def checker(tp: Any) -> Check | None:
    """The check for values of type ``tp``, or None if records cannot hold it."""
    if tp is float:
        return _float
    if tp in _SCALARS:
        real = type(None) if tp is None else tp
        return _exact(real, _SCALARS[tp])
    if tp is Any:
        return _anything
    if tp is list:
        return _list(_anything)
    if tp is dict:
        return _dict(_key, _anything)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is list and len(args) == 1:
        item = checker(args[0])
        return None if item is None else _list(item)
    if origin is dict and len(args) == 2:
        key, item = checker(args[0]), checker(args[1])
        if key is None or item is None:
            return None
        return _dict(key, item, one_key_type=args[0] in _ONE_KEY_TYPE)
    if origin in (typing.Union, types.UnionType):
        arms = []
        for arg in args:
            arm = checker(arg)
            if arm is None:
                return None
            arms.append((_runtime_types(arg), arm))
        return _union(arms, " or ".join(describe_type(arg) for arg in args))
    return None


# -- the record class ---------------------------------------------------------


@attrs.frozen
class Field:
    """One field of a record class, as the codecs see it."""

    name: str  # the attribute
    key: str  # its __init__ name, under which it is stored ("_n" is "n")
    type: Any
    check: Check


def record_fields(record_type: type) -> tuple[Field, ...]:
    """The fields of ``record_type``, checked for what a record needs.

    Raises ConfigError naming the field when the class cannot be a record: not an
    attrs class, a field without a default, outside ``__init__``, or of a type
    records cannot hold.
    """
    if not attrs.has(record_type):
        raise ConfigError(
            f"record type {record_type!r} is not an attrs class: decorate it"
            f" with @attrs.define"
        )
    attrs.resolve_types(record_type)
    owner = record_type.__qualname__
    fields = []
    for field in attrs.fields(record_type):
        if not field.init:
            raise ConfigError(
                f"field {owner}.{field.name} has init=False: a record is rebuilt"
                f" through its __init__, so every field must be an __init__ argument"
            )
        if field.default is attrs.NOTHING:
            raise ConfigError(
                f"field {owner}.{field.name} has no default: new players start from"
                f" the defaults, so give it one (e.g. = 0, or attrs.Factory(list))"
            )
        # resolve_types turns an annotated ``x: None`` into NoneType, so None here
        # is no annotation at all (``attr.ib()``): any value records can hold.
        tp = Any if field.type is None else field.type
        check = checker(tp)
        if check is None:
            raise ConfigError(
                f"field {owner}.{field.name} has type {field.type!r}: records hold"
                f" int, float, bool, str, bytes, None, and lists, dicts and unions"
                f" of those"
            )
        fields.append(Field(field.name, field.alias or field.name, tp, check))
    return tuple(fields)


def accepts_what_it_holds(record_type: type) -> bool:
    """True if ``record_type`` builds a record from any values its field types
    allow: its ``__init__`` is the one attrs generates, with no validator, no
    converter, no ``__attrs_pre_init__`` or ``__attrs_post_init__`` and no
    migration hook. Bytes encoded from a record of such a class always decode;
    a codec checks the bytes of any other class by decoding them (see
    ``encode``)."""
    method: object = record_type.__init__  # type: ignore[misc]
    init = getattr(method, "__code__", None)
    return (
        init is not None
        and init.co_filename.startswith("<attrs generated")
        and not hasattr(record_type, "__attrs_pre_init__")
        and not hasattr(record_type, "__attrs_post_init__")
        and getattr(record_type, MIGRATE, None) is None
        and all(
            field.validator is None and field.converter is None
            for field in attrs.fields(record_type)
        )
    )


def refused_on_reading(owner: str, error: RecordUnreadable) -> RecordInvalid:
    """The RecordInvalid of a record whose bytes its own class would not read
    back: saving them would lock its player out of their record."""
    return RecordInvalid(
        f"{owner} would not read back what was saved ({error}): nothing was"
        f" stored; a record is kept only if its class reads it back"
    )


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class MsgpackCodec(Generic[R]):
    """The default codec: a format tag, then a MessagePack map of the fields."""

    format = f"msgpack/{FORMAT_TAG}"

    def __init__(self, record_type: type[R], record_size: int) -> None:
        self.record_type = record_type
        self._fields = record_fields(record_type)
        self._owner = record_type.__qualname__
        self._make: Callable[..., R] = record_type
        self._migrate: Callable[[dict[Any, Any]], Any] | None = getattr(
            record_type, MIGRATE, None
        )
        self.record_size = record_size
        # What decode refuses, encode must refuse: a record the class would not
        # read back (a validator, a converter, __attrs_post_init__, a migration
        # hook) is read back before it is handed to a store.
        self._read_back = not accepts_what_it_holds(record_type)
        try:
            default_size = len(self.encode_unchecked(self.new()))
        except RecordInvalid as error:
            raise ConfigError(f"the defaults do not fit: {error}") from None
        if default_size > record_size:
            raise ConfigError(
                f"record type {self._owner} needs {default_size} bytes for its"
                f" defaults but its slots hold {record_size}: give it"
                f" record_size={default_size} or more"
            )
        self.default_size = default_size
        if self._read_back:
            try:
                self.decode(self.encode_unchecked(self.new()))
            except RecordUnreadable as error:
                raise ConfigError(f"the defaults do not read back: {error}") from None

    def new(self) -> R:
        return self._make()

    def _invalid(self, field: Field, bad: Mismatch) -> RecordInvalid:
        return RecordInvalid(
            f"{self._owner}.{field.name}{bad.where} holds {_shown(bad.value)}"
            f" ({type(bad.value).__name__}), not {bad.expected}: records keep only"
            f" what their field types allow"
        )

    def encode_unchecked(self, record: R) -> bytes:
        """The bytes of ``record`` whatever their size; RecordInvalid if none."""
        values = {}
        for field in self._fields:
            value = getattr(record, field.name)
            try:
                values[field.key] = field.check(value)
            except Mismatch as bad:
                raise self._invalid(field, bad) from None
            except RecursionError:
                raise RecordInvalid(
                    f"{self._owner}.{field.name} nests lists or dicts too deeply"
                    f" to store"
                ) from None
        try:
            packed: bytes = msgpack.packb(values)
        except (OverflowError, ValueError) as error:
            # Ints beyond 64 bits and lone surrogates pass the type checks.
            for field in self._fields:
                found = _unpackable(values[field.key])
                if found is not None:
                    raise self._invalid(field, found) from None
            raise RecordInvalid(
                f"{self._owner} cannot be stored: {why(error)}"
            ) from None
        return _TAG + packed

    def encode(self, record: R) -> bytes:
        """The bytes of ``record``, which :meth:`decode` reads back.

        RecordInvalid if a field holds what its type does not allow, or if the
        class would refuse the record when reading it back (its validators run
        on decode, not on an in-place change such as ``list.append``);
        RecordTooLarge if the bytes do not fit a slot.
        """
        data = self.encode_unchecked(record)
        if len(data) > self.record_size:
            raise RecordTooLarge(
                f"{self._owner} encodes to {len(data)} bytes but its slots hold"
                f" {self.record_size}: raise its record_size or store less"
            )
        if self._read_back:
            try:
                self.decode(data)
            except RecordUnreadable as error:
                raise refused_on_reading(self._owner, error) from None
        return data

    def decode(self, data: bytes) -> R:
        if data[:1] != _TAG:
            raise RecordUnreadable(
                f"not a {self._owner} record: it starts with"
                f" {data[:1].hex() or 'nothing'}, not format tag {FORMAT_TAG:02x}"
            )
        try:
            values = msgpack.unpackb(data[1:], strict_map_key=False)
        except Exception as error:
            raise RecordUnreadable(
                f"not a {self._owner} record: {why(error)}"
            ) from None
        if self._migrate is not None:
            try:
                values = self._migrate(values)
            except Exception as error:
                raise RecordUnreadable(
                    f"{self._owner}.{MIGRATE} failed: {why(error)}"
                ) from None
        if type(values) is not dict:
            raise RecordUnreadable(
                f"not a {self._owner} record: it holds {_shown(values)}, not a map"
                f" of fields"
            )
        given = {}
        for field in self._fields:
            if field.key in values:
                value = values[field.key]
                try:
                    given[field.key] = field.check(value)
                except Mismatch as bad:
                    raise RecordUnreadable(
                        f"{self._owner}.{field.name}{bad.where} was stored as"
                        f" {_shown(bad.value)} ({type(bad.value).__name__}) but is"
                        f" now {bad.expected}: add {MIGRATE} to the class to carry old"
                        f" records over"
                    ) from None
                except RecursionError:
                    raise RecordUnreadable(
                        f"not a {self._owner} record: {self._owner}.{field.name}"
                        f" nests lists or dicts too deeply"
                    ) from None
        try:
            return self._make(**given)
        except Exception as error:
            raise RecordUnreadable(
                f"{self._owner} refused the stored values: {why(error)}"
            ) from None
