"""What the codec's tests share: a record class with a field of every kind, its
codec, a strategy of its records, and the error messages of bad bytes and bad
records."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import strategies as st

from jetforce_sesh import MsgpackCodec, RecordInvalid, RecordUnreadable
from tests.strategies import int64, plain_scalars, plain_values


@attrs.define
class Player:
    name: str = ""
    score: int = 0
    ratio: float = 0.5
    alive: bool = True
    token: bytes = b""
    nickname: str | None = None
    scores: list[int] = attrs.Factory(list)
    seen: dict[str, int] = attrs.Factory(dict)
    notes: list = attrs.Factory(list)  # type: ignore[type-arg]
    extra: dict = attrs.Factory(dict)  # type: ignore[type-arg]


PLAYER = MsgpackCodec(Player, 1 << 16)


# -- strategies of this module's record class ----------------------------------

players = st.builds(
    Player,
    name=st.text(max_size=20),
    score=int64,
    ratio=st.floats(allow_nan=False),
    alive=st.booleans(),
    token=st.binary(max_size=10),
    nickname=st.none() | st.text(max_size=5),
    scores=st.lists(int64, max_size=6),
    seen=st.dictionaries(st.text(max_size=5), int64, max_size=5),
    notes=st.lists(plain_values, max_size=3),
    extra=st.dictionaries(plain_scalars, plain_values, max_size=3),
)


def unreadable(codec: MsgpackCodec[Any], data: bytes) -> str:
    with pytest.raises(RecordUnreadable) as raised:
        codec.decode(data)
    return str(raised.value)


def invalid(codec: MsgpackCodec[Any], record: object) -> str:
    with pytest.raises(RecordInvalid) as raised:
        codec.encode(record)
    return str(raised.value)
