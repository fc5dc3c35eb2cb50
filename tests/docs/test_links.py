"""Every relative link of the docs and the README leads somewhere: to a file of
the repository, and, with a ``#fragment``, to a heading of that page (as GitHub
spells a heading's anchor). Headings renamed in 0.3 (the SQLite store's) must not
leave links behind, nor the module paths and test files 0.3 moved: every
``jetforce_sesh.…`` name and repository path a page gives must be a 0.3 one."""

from __future__ import annotations

import glob
import importlib
import re
import warnings
from pathlib import Path

import pytest

from tests.docs.blocks import PAGES, REPO

_FENCED = re.compile(r"^[ ]*```.*?^[ ]*```", re.S | re.M)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#+ (.+)$", re.M)


def prose(page: Path) -> str:
    return _FENCED.sub("", page.read_text())


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the headings of ``page``."""
    return {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in _HEADING.findall(prose(page))
    }


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_each_link_leads_somewhere(page: Path) -> None:
    broken = []
    for link in _LINK.findall(prose(page)):
        if re.match(r"[a-z]+:", link):
            continue  # https:, gemini:, mailto:
        path, _, fragment = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in anchors(target):
            broken.append(f"{link}: no such heading")
    assert not broken, "\n".join(broken)


_DOTTED = re.compile(r"jetforce_sesh(?:\.[A-Za-z_]\w*)+")
_REPO_PATH = re.compile(r"`((?:tests|jetforce_sesh)/[^`\s<]*)`")
#: Paths that are no file of the checkout on purpose: where the wheel installs
#: the C client.
_ELSEWHERE = ("jetforce_sesh/clients/",)


def resolves(name: str) -> bool:
    """Whether ``name`` is a module of the package, or an attribute of one,
    without a DeprecationWarning (0.2's paths give one)."""
    parts = name.split(".")
    for length in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:length]))
        except ImportError:
            continue
        except DeprecationWarning:
            return False
        try:
            for part in parts[length:]:
                found = getattr(found, part)
        except (AttributeError, DeprecationWarning):
            return False
        return True
    return False


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if page.name != "changelog.md"],
    ids=lambda page: str(page.relative_to(REPO)),
)
def test_each_name_and_path_a_page_gives_is_the_0_3_one(page: Path) -> None:
    """Dotted names, and the paths of the package and the tests, in prose and
    code alike. The changelog, and a sentence that says "in 0.2" or "then",
    name the old ones on purpose."""
    text = page.read_text()

    def on_purpose(end: int) -> bool:
        after = text[end : end + 12]
        return "in 0.2" in after or " then" in after

    stale = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        for found in _DOTTED.finditer(text):
            if not on_purpose(found.end()) and not resolves(found.group(0)):
                stale.append(found.group(0))
    for found in _REPO_PATH.finditer(text):
        path = found.group(1).split("::")[0]
        if on_purpose(found.end()) or path.startswith(_ELSEWHERE):
            continue
        if not (glob.glob(str(REPO / path)) or (REPO / path).exists()):
            stale.append(path)
    assert not stale, "\n".join(sorted(set(stale)))
