"""Hypothesis strategies shared by the suite."""

from __future__ import annotations

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
