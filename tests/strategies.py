"""Hypothesis strategies shared by the suite."""

from __future__ import annotations

import msgpack
from hypothesis import strategies as st

#: Anything a player can type at a ``10`` prompt: empty, huge, non-ASCII,
#: control characters, numbers in and out of range, markup.
player_input = st.one_of(
    st.just(""),
    st.text(max_size=40),
    st.text(min_size=500, max_size=3000),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(
        ["=> /x", "# h", "* i", "> q", "```", "\r\n", "\x00", "\x1b[31m", "ü", "漢字"]
    ),
    st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=3),
)


#: The whole numbers MessagePack holds: int64 and uint64.
int64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)

#: Values a bare list or dict holds (and dict keys): every scalar records keep.
plain_scalars = st.one_of(
    st.none(),
    st.booleans(),
    int64,
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.binary(max_size=8),
)

#: What a bare ``list`` or ``dict`` field may hold, nested.
plain_values = st.recursive(
    plain_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(plain_scalars, inner, max_size=4)
    ),
    max_leaves=12,
)

#: Anything MessagePack can carry, extension types and timestamps included.
packable = st.recursive(
    plain_scalars
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=12))
    | st.builds(
        msgpack.Timestamp, st.integers(-(2**63), 2**63 - 1), st.integers(0, 999_999_999)
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(plain_scalars, inner, max_size=4)
    ),
    max_leaves=16,
)


#: Fingerprints of the bridge fuzz's two players, in the spellings the bridge takes.
_players = st.sampled_from(
    [
        "SHA256:" + "AB" * 32,
        "ab" * 32,
        ":".join(["CD"] * 32),
    ]
)
_versions = st.one_of(st.integers(0, 4), st.just(2**64 - 1), st.integers(0, 2**64 - 1))
_records = st.one_of(st.binary(min_size=16, max_size=16), st.binary(max_size=20))


def _cas(version: int, player: str, record: bytes) -> bytes:
    name = player.encode()
    return b"C" + version.to_bytes(8, "big") + bytes([len(name)]) + name + record


#: One message to the bridge: a valid request or a near miss, or any bytes.
bridge_messages = st.one_of(
    _players.map(lambda player: b"L" + player.encode()),
    _players.map(lambda player: b"P" + player.encode()),
    _records.map(lambda record: b"U" + record),
    st.builds(_cas, _versions, _players, _records),
    st.builds(
        lambda version, player: b"D" + version.to_bytes(8, "big") + player.encode(),
        _versions,
        _players,
    ),
    st.just(b"R"),
    st.binary(max_size=40),
    st.binary(max_size=40).map(lambda junk: b"C" + junk),
    st.binary(max_size=4).map(lambda junk: b"S" + junk),
)
