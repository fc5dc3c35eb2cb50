"""The README's own capsule, run as written: its home page links its route."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support import REPO, MakeCert, Reply, Server

pytestmark = pytest.mark.e2e


def block(language: str) -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Your own capsule") :]
    found = re.search(rf"^```{language}\n(.*?)^```", section, re.S | re.M)
    assert found is not None
    return found.group(1)


def test_the_readmes_capsule_shows_its_route_and_counts(
    tmp_path: Path, make_cert: MakeCert
) -> None:
    (tmp_path / "mycapsule.py").write_text(block("python"))
    command = block("sh").split()
    assert ["jetforce-sesh", "--app", "mycapsule:app"] == command[:3]
    server = Server(command[1:], cwd=tmp_path)
    try:
        home = server.request("/")
        first = server.request("/counter", make_cert("readme-reader"))
    finally:
        server.stop()
    assert Reply(20, "text/gemini", "# My capsule\n\n=> /counter counter\n") == home
    assert Reply(20, "text/gemini", "Visit number 1\n") == first
