"""The package keeps its layers: no import cycle, nothing imported from a higher
layer or a peer, no private name of another module, games on the public API.

The checker (``tests/structure.py``) is run on the package, and on small made-up
packages that break each rule once, so that it is known to see each break.
Run on the flat package of 0.2 (``python -m tests.structure DIR``) it reports
the four cycles that release had.
"""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from tests import structure
from tests.support import REPO


def test_the_package_keeps_every_rule() -> None:
    assert [] == structure.report(REPO / "jetforce_sesh")


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A made-up ``jetforce_sesh`` under ``tmp_path`` with ``files``."""
    root = tmp_path / "jetforce_sesh"
    for name, text in {"__init__.py": "", **files}.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text))
    return root


def test_a_cycle_held_apart_by_an_import_inside_a_function_is_a_cycle(
    tmp_path: Path,
) -> None:
    root = package(
        tmp_path,
        {
            "session/__init__.py": "",
            "session/slab.py": """
                def visits():
                    from jetforce_sesh.session.route import Visit
            """,
            "session/route.py": "from jetforce_sesh.session.slab import Slab\n",
        },
    )
    assert [
        "cycle: jetforce_sesh.session.route <-> jetforce_sesh.session.slab"
    ] == structure.report(root)


def test_an_upward_import_under_type_checking_is_upward(tmp_path: Path) -> None:
    root = package(
        tmp_path,
        {
            "stores/__init__.py": "",
            "stores/memory.py": """
                from typing import TYPE_CHECKING
                if TYPE_CHECKING:
                    from jetforce_sesh.session.slab import Slab
            """,
            "session/__init__.py": "",
            "session/slab.py": "",
        },
    )
    assert [
        "layer: jetforce_sesh.stores.memory:4 imports jetforce_sesh.session.slab"
        " (a higher layer)"
    ] == structure.report(root)


def test_peers_may_not_import_each_other(tmp_path: Path) -> None:
    root = package(
        tmp_path,
        {
            "records/__init__.py": "",
            "records/codec.py": "from jetforce_sesh.stores import memory\n",
            "stores/__init__.py": "",
            "stores/memory.py": "",
        },
    )
    assert [
        "layer: jetforce_sesh.records.codec:1 imports jetforce_sesh.stores.memory"
        " (a peer)"
    ] == structure.report(root)


def test_a_module_in_no_layer_is_named(tmp_path: Path) -> None:
    root = package(tmp_path, {"helpers.py": ""})
    assert [
        "layer: jetforce_sesh.helpers is in no layer of LAYERS"
    ] == structure.report(root)


def test_another_modules_private_names_are_neither_imported_nor_reached(
    tmp_path: Path,
) -> None:
    root = package(
        tmp_path,
        {
            "session/__init__.py": "",
            "session/slab.py": """
                def _helper(): ...
                class Slab:
                    def __init__(self):
                        self._opened = None
            """,
            "session/route.py": """
                from jetforce_sesh.session.slab import _helper
                def serve(slab):
                    return slab._opened
            """,
        },
    )
    assert [
        "private: jetforce_sesh.session.route:2 imports"
        " jetforce_sesh.session.slab._helper",
        "private: jetforce_sesh.session.route:4 uses _opened, private to"
        " jetforce_sesh.session.slab",
    ] == structure.report(root)


def test_games_import_the_public_api_and_each_other_only(tmp_path: Path) -> None:
    root = package(
        tmp_path,
        {
            "names.py": "def quoted(text): ...\n",
            "games/__init__.py": "",
            "games/guess.py": "",
            "games/fame.py": """
                from jetforce_sesh import quoted
                from jetforce_sesh.games import guess
                from jetforce_sesh.names import quoted
            """,
        },
    )
    assert [
        "game: jetforce_sesh.games.fame:4 imports jetforce_sesh.names"
    ] == structure.report(root)


def test_each_exception_names_a_real_import_of_the_package() -> None:
    """An exception that no longer happens is taken out, not left to excuse
    a later one."""
    found = {
        (each.importer, each.module)
        for each in structure.imports(REPO / "jetforce_sesh")
    }
    assert set(structure.EXCEPTIONS) <= found
