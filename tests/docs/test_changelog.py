"""docs/changelog.md says what 0.3 moved and renamed exactly as
:mod:`jetforce_sesh.moved` does, and quotes the warnings the 0.2 spellings give.

The two tables are generated: ``python -m tests.docs.test_changelog`` prints
them, to paste into the changelog when ``MOVED`` or ``RENAMED`` changes.
"""

from __future__ import annotations

import re
import warnings

import attrs
import pytest
from twisted.internet.task import Clock

from jetforce_sesh import SessionApplication, moved
from jetforce_sesh.server import SessionServer
from tests.docs.blocks import REPO

CHANGELOG = REPO / "docs" / "changelog.md"
_ROW = re.compile(r"^\| `(?P<old>[\w.]+)` \| `(?P<new>[\w.]+)` \|$", re.M)


def moved_table() -> str:
    """The table of the module paths that moved, from ``MOVED``."""
    rows = [f"| `{old}` | `{new}` |" for old, new in moved.MOVED.items()]
    return "\n".join(["| 0.2 module | 0.3 module |", "|---|---|", *rows]) + "\n"


def renamed_table() -> str:
    """The table of the names that moved or took a new name, from ``RENAMED``."""
    rows = [
        f"| `{module}.{name}` | `{new_module}.{new_name}` |"
        for (module, name), (new_module, new_name) in moved.RENAMED.items()
    ]
    return "\n".join(["| 0.2 name | 0.3 name |", "|---|---|", *rows]) + "\n"


def section(title: str) -> str:
    """The changelog's text under the heading ``title``, to the next heading."""
    text = CHANGELOG.read_text()
    found = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#|\Z)", text, re.M | re.S)
    assert found is not None, f"no heading {title!r} in {CHANGELOG.name}"
    return found.group(1)


def test_the_table_of_moved_modules_is_moved_exactly() -> None:
    text = section("What moved where")
    assert moved_table() in text
    rows = [(row["old"], row["new"]) for row in _ROW.finditer(text)]
    assert list(moved.MOVED.items()) == rows


def test_the_table_of_renamed_names_is_renamed_exactly() -> None:
    text = section("Names that moved or were renamed")
    assert renamed_table() in text
    rows = [(row["old"], row["new"]) for row in _ROW.finditer(text)]
    expected = [
        (f"{module}.{name}", f"{new_module}.{new_name}")
        for (module, name), (new_module, new_name) in moved.RENAMED.items()
    ]
    assert expected == rows


def warned(action: object) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert callable(action)
        action()
    return [str(warning.message) for warning in caught]


def old_spellings() -> list[str]:
    """What each deprecated spelling that is no module path says when used."""

    @attrs.define
    class Old:
        count: int = 0

    app = SessionApplication("Old")
    slab = app.slab(Old)
    said = warned(app.use_accounts)
    app.open(Clock())
    said += warned(lambda: slab.serving)
    said += warned(slab.opened_clock)
    said += warned(lambda: SessionServer(app, sessions=[app], use_tls=False))
    return said


def test_the_changelog_quotes_what_each_old_spelling_says() -> None:
    text = " ".join(section("Deprecated until 0.4").split())
    said = old_spellings()
    assert 4 == len(said)
    for message in said:
        assert message in text
    # And the two forms every old path and old name warns with.
    module, new = next(iter(moved.MOVED.items()))
    assert (
        f"module {module} is {new} since jetforce-sesh 0.3; the old path goes in 0.4"
    ) in text
    (module, name), (new_module, new_name) = next(iter(moved.RENAMED.items()))
    assert (
        f"{module}.{name} is {new_module}.{new_name} since jetforce-sesh 0.3;"
        " the old name goes in 0.4"
    ) in text


@pytest.mark.parametrize("page", ["docs/index.md", "README.md"])
def test_the_changelog_is_linked(page: str) -> None:
    assert "changelog.md" in (REPO / page).read_text()


if __name__ == "__main__":
    print(moved_table())
    print(renamed_table())
