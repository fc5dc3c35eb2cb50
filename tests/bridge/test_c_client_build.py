"""The C client and the C CGI counter compile with strict flags, and the header
declares the reference's calls and codes.

The C programs and how they are built are in ``tests/bridge/c_client_support.py``;
the compiled programs and the real bridge are fixtures of ``tests/bridge/conftest.py``
(docs/reference/bridge.md).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.bridge.c_client_support import CLIENT, COUNTER, compile_c


def test_the_client_and_the_example_compile_with_strict_flags(tmp_path: Path) -> None:
    assert ["", ""] == [
        compile_c(tmp_path / "client.o", CLIENT / "sesh_bridge.c", flags=["-c"]),
        compile_c(tmp_path / "counter.cgi", COUNTER, CLIENT / "sesh_bridge.c"),
    ]


def test_the_header_declares_the_reference_calls_each_with_its_contract() -> None:
    header = (CLIENT / "sesh_bridge.h").read_text()
    declared = re.findall(r"\*/\n(\w[\w ]*?\**)\s*(sesh_\w+)\(", header)
    assert [
        "sesh_init",
        "sesh_select",
        "sesh_lookup",
        "sesh_peek",
        "sesh_update",
        "sesh_compare_and_set",
        "sesh_delete",
        "sesh_release",
        "sesh_version",
        "sesh_error",
        "sesh_close",
    ] == [name for _, name in declared]
    codes = dict(re.findall(r"#define (SESH_[A-Z]+) \(?(-?\d+)\)?\n", header))
    assert {
        "SESH_OK": "0",
        "SESH_CONFLICT": "-1",
        "SESH_REFUSED": "-2",
        "SESH_PROTOCOL": "-3",
        "SESH_UNAVAILABLE": "-4",
    } == codes
