"""The confirmation how-to's Python runs as written, in order, as one program."""

from __future__ import annotations

import re

from tests.support import REPO

HOWTO = REPO / "docs" / "howto" / "confirm-an-action.md"


def test_the_confirmation_how_to_runs_as_written() -> None:
    blocks = re.findall(r"```python\n(.*?)```", HOWTO.read_text(), re.S)
    assert 3 == len(blocks)
    namespace: dict[str, object] = {"__name__": "howto"}
    exec(compile("\n".join(blocks), str(HOWTO), "exec"), namespace)
