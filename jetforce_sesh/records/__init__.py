"""Records: attrs classes turned into the bytes a store keeps, and back.

Knows attrs classes and bytes; knows no store, no slab and no Jetforce. The
default codec is MessagePack with checked field types (``msgpack``); a slab
that C programs read uses a fixed binary layout (``layout``).
"""

from jetforce_sesh.records.codec import Codec, reset
from jetforce_sesh.records.layout import LayoutCodec
from jetforce_sesh.records.msgpack import MsgpackCodec

__all__ = ["Codec", "LayoutCodec", "MsgpackCodec", "reset"]
