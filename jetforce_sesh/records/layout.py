"""Fixed binary layouts: a record that is a C struct to programs outside Python.

``app.slab(Visits, layout="<Q")`` stores each record as :func:`struct.pack` of its
fields, in the order attrs lists them, so a CGI program in C reads the very bytes
as ``struct { uint64_t count; }``. The layout fixes the record size. Each field
takes one code: an integer code (``bBhHiIlLqQnN``) for an ``int``, ``?`` for a
``bool``, ``e``, ``f`` or ``d`` for a ``float``, and ``Ns`` (N bytes) for ``bytes``
or for a ``str`` kept as UTF-8, padded with zero bytes. ``x`` pad bytes take no
field. There is no room for schema changes in a fixed layout: a layout that does
not match its fields fails at start-up, naming the field.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from jetforce_sesh.errors import (
    ConfigError,
    RecordInvalid,
    RecordTooLarge,
    RecordUnreadable,
    why,
)
from jetforce_sesh.records.msgpack import (
    Mismatch,
    accepts_what_it_holds,
    describe_type,
    record_fields,
    refused_on_reading,
)

R = TypeVar("R")

_INTEGERS = frozenset("bBhHiIlLqQnN")
_FLOATS = frozenset("efd")
_PREFIXES = frozenset("@=<>!")
_CODE = re.compile(r"(\d*)([xcbB?hHiIlLqQnNefdspP])")


def _prefix(layout: str) -> str:
    """The byte order and size mark of ``layout``; struct's default is "@"."""
    return layout[0] if layout and layout[0] in _PREFIXES else "@"


def _body(layout: str) -> str:
    return layout[1:] if layout and layout[0] in _PREFIXES else layout


def _codes(layout: str) -> list[str]:
    """One code per value in ``layout`` ("2i4s" gives ["i", "i", "4s"])."""
    # struct skips any ASCII whitespace between codes, not only spaces.
    body = "".join(_body(layout).split())
    codes: list[str] = []
    position = 0
    for found in _CODE.finditer(body):
        if found.start() != position:
            break
        position = found.end()
        count, code = found.groups()
        if code in "sp":
            codes.append(f"{count or 1}{code}")
        elif code != "x":
            codes.extend(code * int(count or 1))
    if position != len(body):
        raise ConfigError(
            f"layout {layout!r} is not a struct format: use codes such as '<Q' or"
            f" '<Iq16s' (see Python's struct module)"
        )
    return codes


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _fits(code: str, tp: Any) -> bool:
    if code[-1] in _INTEGERS:
        return tp is int
    if code in _FLOATS:
        return tp is float
    if code == "?":
        return tp is bool
    if code[-1] == "s":
        return tp in (bytes, str)
    return False


class LayoutCodec(Generic[R]):
    """Records as :mod:`struct`-packed fields, for programs outside Python."""

    def __init__(self, record_type: type[R], layout: str) -> None:
        self.record_type = record_type
        owner = record_type.__qualname__
        self._owner = owner
        fields = record_fields(record_type)
        try:
            self._struct = struct.Struct(layout)
        except struct.error as error:
            raise ConfigError(
                f"layout {layout!r} of {owner} is not a struct format ({error}):"
                f" use codes such as '<Q' or '<Iq16s'"
            ) from None
        codes = _codes(layout)
        if len(codes) != len(fields):
            names = ", ".join(field.name for field in fields)
            raise ConfigError(
                f"layout {layout!r} holds {_count(len(codes), 'value')} but {owner}"
                f" has {_count(len(fields), 'field')} ({names}): give one code per"
                f" field, in the order of the class"
            )
        for field, code in zip(fields, codes, strict=True):
            if not _fits(code, field.type):
                raise ConfigError(
                    f"field {owner}.{field.name} is {describe_type(field.type)} but"
                    f" layout {layout!r} gives it {code!r}: use an integer code for"
                    f" int, '?' for bool, 'e', 'f' or 'd' for float, 'Ns' for bytes"
                    f" or str"
                )
        self._plan = tuple(zip(fields, codes, strict=True))
        # One field packed alone, to name it when it does not fit its code.
        self._prefix = _prefix(layout)
        self._names = tuple(field.name for field in fields)
        self._keys = tuple(field.key for field in fields)
        self._text = tuple(field.type is str for field in fields)
        self._make: Callable[..., R] = record_type
        self.layout = layout
        self.format = f"struct/{layout}"
        self.record_size = self._struct.size
        # As MsgpackCodec: what decode would refuse, encode refuses.
        self._read_back = not accepts_what_it_holds(record_type)
        try:
            self.encode(self.new())
        except (RecordInvalid, RecordTooLarge) as error:
            raise ConfigError(f"the defaults do not fit: {error}") from None

    def new(self) -> R:
        return self._make()

    def encode(self, record: R) -> bytes:
        """The record's fields packed by the layout, which :meth:`decode` reads
        back: RecordInvalid if a field does not fit its code or the class would
        refuse the values as stored (a float rounded by ``e``, say, that a
        validator then refuses); RecordTooLarge if text or bytes are longer than
        their code holds."""
        data = self._pack(record)
        if self._read_back:
            try:
                self.decode(data)
            except RecordUnreadable as error:
                raise refused_on_reading(self._owner, error) from None
        return data

    def _pack(self, record: R) -> bytes:
        values = []
        for field, code in self._plan:
            value = getattr(record, field.name)
            try:
                value = field.check(value)
            except Mismatch:
                raise RecordInvalid(
                    f"{self._owner}.{field.name} holds {value!r}"
                    f" ({type(value).__name__}), not {describe_type(field.type)}:"
                    f" records keep only what their field types allow"
                ) from None
            if code[-1] == "s":
                if type(value) is str:
                    try:
                        value = value.encode()
                    except UnicodeEncodeError:
                        raise RecordInvalid(
                            f"{self._owner}.{field.name} holds {value!r} (str), not"
                            f" a str without lone surrogates"
                        ) from None
                if len(value) > int(code[:-1]):
                    # struct would cut it short without a word: refuse instead.
                    raise RecordTooLarge(
                        f"{self._owner}.{field.name} takes {len(value)} bytes but"
                        f" layout code {code!r} holds {code[:-1]}: store less"
                    )
            else:
                try:
                    struct.pack(self._prefix + code, value)
                except (struct.error, OverflowError) as error:
                    # OverflowError: a float too large for 'e' or 'f'.
                    raise RecordInvalid(
                        f"{self._owner}.{field.name} holds {value!r}, which layout"
                        f" code {code!r} cannot hold ({error})"
                    ) from None
            values.append(value)
        return self._struct.pack(*values)

    def decode(self, data: bytes) -> R:
        if len(data) != self.record_size:
            raise RecordUnreadable(
                f"not a {self._owner} record: {len(data)} bytes, where layout"
                f" {self.layout!r} takes {self.record_size}"
            )
        values = list(self._struct.unpack(data))
        for index, value in enumerate(values):
            if self._text[index]:
                try:
                    values[index] = value.rstrip(b"\0").decode()
                except UnicodeDecodeError as error:
                    raise RecordUnreadable(
                        f"{self._owner}.{self._names[index]} is not UTF-8: {error}"
                    ) from None
        try:
            return self._make(**dict(zip(self._keys, values, strict=True)))
        except Exception as error:
            raise RecordUnreadable(
                f"{self._owner} refused the stored values: {why(error)}"
            ) from None
