"""The built wheel, installed into a fresh venv, serves the demo capsule."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import REPO, ClientCert, Server, serve

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (built,) = out.glob("jetforce_sesh-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    subprocess.run(
        [str(root / "bin" / "pip"), "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return root


@pytest.fixture(scope="module")
def wheel_server(
    venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    # Started from an empty directory, so nothing can come from the checkout.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    yield from serve([], command=[str(venv / "bin" / "jetforce-sesh")], cwd=elsewhere)


def test_wheel_installs_no_generic_top_level_module(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    # sesh_bridge is the bridge's Python client, importable without importing
    # jetforce_sesh (and Twisted), so that CGI scripts start fast.
    assert {"jetforce_sesh", "sesh_bridge.py", "jetforce_sesh-0.3.0.dist-info"} == tops
    assert "jetforce_sesh/py.typed" in names
    assert "jetforce_sesh/games/counter.py" in names
    assert {
        "jetforce_sesh/clients/c/sesh_bridge.h",
        "jetforce_sesh/clients/c/sesh_bridge.c",
    } <= set(names)


def test_wheel_serves_the_demo_capsule(
    wheel_server: Server, make_cert: Callable[..., ClientCert]
) -> None:
    assert 20 == wheel_server.request("/").status
    pip = make_cert("wheel-pip")
    assert (
        "Visit number 2."
        in (
            wheel_server.request("/counter", pip),
            wheel_server.request("/counter", pip),
        )[1].body
    )


def test_every_game_linked_from_the_index_answers(
    wheel_server: Server, make_cert: Callable[..., ClientCert]
) -> None:
    index = wheel_server.request("/").body
    entries = [
        line.split()[1] for line in index.splitlines() if line.startswith("=> /")
    ]
    assert entries
    player = make_cert("wheel-player")
    statuses = {entry: wheel_server.request(entry, player).status for entry in entries}
    assert {
        entry: statuses[entry] for entry in entries if statuses[entry] not in (10, 20)
    } == {}
