"""A reader's machine, shared by the docs that are run as written: a clean copy
of the checkout with the tutorial's install step run in it (a fresh venv holding
jetforce-sesh and what the tutorial installs, nothing else)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(document: Path, language: str) -> list[str]:
    """The code blocks of ``document`` in ``language``, in order."""
    text = document.read_text()
    return [body for lang, body in _BLOCK.findall(text) if lang == language]


def run(
    script: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.fixture(scope="session")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A reader's machine: a clean checkout, the tutorial's install step run in
    it, and an empty directory for the game."""
    checkout = tmp_path_factory.mktemp("checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source = REPO / name.decode()
        if source.is_file() and not source.is_symlink():
            target = checkout / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
        elif source.is_symlink():
            target = checkout / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(os.readlink(source))
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH")
    }
    env["HOME"] = str(tmp_path_factory.mktemp("home"))
    install = blocks(REPO / "docs" / "tutorial.md", "sh")[0]
    result = run(install, checkout, env)
    assert 0 == result.returncode, result.stdout + result.stderr
    assert "jetforce-sesh 0.3.0\n" == result.stdout.splitlines(keepends=True)[-1]
    venv = checkout / ".venv"
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv)
    game = tmp_path_factory.mktemp("game")
    yield {"checkout": checkout, "game": game, "venv": venv, "env": env}  # type: ignore[misc]
