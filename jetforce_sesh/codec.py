"""Records: attrs classes, encoded compactly into a slab slot.

A record is stored as a ``marshal``-ed dict of field name to value. ``marshal`` is
the interpreter's own C serializer for exactly the value types records allow, so
encoding and decoding a small record takes well under a microsecond. Keeping the
field names in each record costs a few bytes a field and buys schema changes for
free: a field added with a default is filled from its default when an old record is
read, and a field that was removed is ignored.
"""

from __future__ import annotations

import marshal
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import attrs

from jetforce_sesh.errors import ConfigError, RecordTooLarge

R = TypeVar("R")

_SCALARS: tuple[type, ...] = (int, float, bool, str, bytes, type(None))


def _check_type(owner: str, field: str, tp: Any) -> None:
    """Refuse field types the codec cannot store, naming the field."""
    if tp in _SCALARS or tp is None:
        return
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            _check_type(owner, field, arg)
        return
    if origin is list and len(args) == 1:
        _check_type(owner, field, args[0])
        return
    if origin is dict and len(args) == 2:
        _check_type(owner, field, args[0])
        _check_type(owner, field, args[1])
        return
    if tp in (list, dict):
        return
    raise ConfigError(
        f"field {owner}.{field} has type {tp!r}: records hold int, float, bool,"
        f" str, bytes, None, and lists or dicts of those"
    )


def _check_field(owner: str, field: attrs.Attribute[Any]) -> None:
    if not field.init:
        raise ConfigError(
            f"field {owner}.{field.name} has init=False: a record is rebuilt through"
            f" its __init__, so every field must be an __init__ argument"
        )
    if field.default is attrs.NOTHING:
        raise ConfigError(
            f"field {owner}.{field.name} has no default: new players start from the"
            f" defaults, so give it one (e.g. = 0, or attrs.Factory(list))"
        )
    _check_type(owner, field.name, field.type)


class RecordCodec(Generic[R]):
    """Encodes one attrs record class to bytes and back, within ``record_size``."""

    def __init__(self, record_type: type[R], record_size: int) -> None:
        if not attrs.has(record_type):
            raise ConfigError(
                f"record type {record_type!r} is not an attrs class: decorate it"
                f" with @attrs.define"
            )
        attrs.resolve_types(record_type)
        fields = attrs.fields(record_type)
        owner = record_type.__qualname__
        for field in fields:
            _check_field(owner, field)
        self.record_type = record_type
        # attrs.has() narrows the class to AttrsInstance; keep R for callers.
        self._make: Callable[..., R] = record_type  # type: ignore[assignment]
        self.record_size = record_size
        # Values are kept under each field's __init__ name (its alias: "_n" is
        # "n"), so a stored dict goes straight back into the class.
        self._names = tuple(field.name for field in fields)
        self._aliases = tuple(field.alias or field.name for field in fields)
        default_size = len(self.encode_unchecked(self.new()))
        if default_size > record_size:
            raise ConfigError(
                f"record type {record_type.__qualname__} needs {default_size} bytes"
                f" for its defaults but its slots hold {record_size}: give it"
                f" record_size={default_size} or more"
            )
        self.default_size = default_size

    def new(self) -> R:
        """A record holding the class's defaults: what a new player gets."""
        return self._make()

    def encode_unchecked(self, record: R) -> bytes:
        return marshal.dumps(
            {
                alias: getattr(record, name)
                for name, alias in zip(self._names, self._aliases, strict=True)
            }
        )

    def encode(self, record: R) -> bytes:
        """Bytes for ``record``; RecordTooLarge if they exceed the slot."""
        try:
            data = self.encode_unchecked(record)
        except ValueError as error:
            raise RecordTooLarge(
                f"{self.record_type.__qualname__} holds a value records cannot"
                f" store ({error}): use int, float, bool, str, bytes, list, dict"
            ) from None
        if len(data) > self.record_size:
            raise RecordTooLarge(
                f"{self.record_type.__qualname__} encodes to {len(data)} bytes but"
                f" its slots hold {self.record_size}: raise its record_size or"
                f" store less"
            )
        return data

    def decode(self, data: bytes) -> R:
        """The record in ``data``; fields the class no longer has are ignored."""
        values = marshal.loads(data)
        try:
            return self._make(**values)
        except TypeError:
            # A field was removed from the class since this record was written.
            known = {k: v for k, v in values.items() if k in self._aliases}
            return self._make(**known)
