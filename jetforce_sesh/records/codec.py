"""What a slab needs of a codec, and what a handler may do to any record.

Knows attrs classes and bytes; nothing of stores, slabs or Jetforce.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import attrs

R = TypeVar("R")


class Codec(Protocol[R]):
    """What a slab needs to turn its records into bytes and back."""

    #: Names the encoding, for stores that keep bytes between runs.
    format: str
    #: The most bytes one encoded record may take: the slot size.
    record_size: int

    def new(self) -> R:
        """A record of the class defaults: what a new player gets."""
        ...

    def encode(self, record: R) -> bytes:
        """The bytes of ``record``, which :meth:`decode` reads back:
        RecordInvalid if the record holds what its field types do not allow or
        what its class would refuse when reading it back (validators,
        converters, ``__attrs_post_init__``), RecordTooLarge if it does not
        fit. Every write of a record from outside the route (the bridge, an
        import) decodes the bytes and encodes the record again to get the same
        guarantee."""
        ...

    def decode(self, data: bytes) -> R:
        """The record in ``data``; RecordUnreadable if there is none."""
        ...


def reset(record: Any) -> None:
    """Put every field of ``record`` back to its class default, in place.

    What a handler calls to start a player's game afresh: the route saves the
    object it handed in, so rebinding the name (``record = Record()``) would save
    nothing.
    """
    fresh = type(record)()
    for field in attrs.fields(type(record)):
        setattr(record, field.name, getattr(fresh, field.name))
