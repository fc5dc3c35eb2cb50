"""A capsule whose record defaults do not fit its slab: must fail at start-up."""

from __future__ import annotations

import attrs

from jetforce_sesh import SessionApplication

app = SessionApplication("oversized")


@attrs.define
class Diary:
    text: str = "dear diary, " * 10


app.slab(Diary, record_size=64)
