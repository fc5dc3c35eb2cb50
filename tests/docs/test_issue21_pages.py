"""Docs that once did not match the code (issue 21, point 9), kept matching: the
README's amfora note, the account slabs the accounts how-to counts, and the tree
the serve-files how-to draws, made by running its own commands."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from jetforce_sesh.demo import accounts
from tests.docs.machine import blocks
from tests.docs.test_links import anchors
from tests.support import REPO

NUMBERS = {"three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def quick_start() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Quick start\n")
    return text[start : text.index("\n## ", start + 1)]


def test_the_quick_start_tells_amfora_users_about_host_and_port() -> None:
    words = " ".join(quick_start().split())
    assert (
        "amfora cannot make one: it sends the certificate its `config.toml` names"
        " for the host, and for a port other than 1965 the host is written with its"
        ' port, `"localhost:1966"`'
    ) in words
    (target,) = re.findall(r"\]\((docs/tutorial\.md#[\w-]+)\)", quick_start())
    page, anchor = target.split("#")
    assert anchor in anchors(REPO / page)
    # The section the link leads to says it too, with the amfora tables.
    tutorial = (REPO / page).read_text()
    (heading,) = [
        found
        for found in re.finditer(r"^## (.+)$", tutorial, re.M)
        if re.sub(r"[^\w\- ]", "", found[1].strip().lower()).replace(" ", "-") == anchor
    ]
    after = tutorial[heading.end() :]
    section = after[: after.find("\n## ")]
    assert '"localhost" = ' in section
    assert 'On another port than 1965 the key is `"localhost:1966"`' in section


def test_the_accounts_howto_names_every_account_slab() -> None:
    text = (REPO / "docs" / "howto" / "accounts.md").read_text()
    found = re.search(r"the (\w+) account slabs \(([^)]*)\)", text)
    assert found is not None
    named = re.findall(r"`([^`]+)`", found.group(2))
    real = sorted(slab.name for slab in accounts.app.slabs.values())
    assert real == sorted(named)
    assert len(real) == NUMBERS[found.group(1)]


def drawn_tree(text: str) -> list[str]:
    """The paths a ``tree``-style drawing shows, directories ending in ``/``."""
    lines = text.splitlines()
    paths = [lines[0]]
    parents = [lines[0]]
    for line in lines[1:]:
        found = re.fullmatch(r"((?:│   |    )*)(?:├── |└── )(.+)", line)
        assert found is not None, line
        depth = len(found[1]) // 4 + 1
        del parents[depth:]
        path = parents[-1] + found[2]
        paths.append(path)
        if found[2].endswith("/"):
            parents.append(path)
    return sorted(paths)


def made_tree(root: Path, top: str) -> list[str]:
    paths = [top]
    for path in (root / top).rglob("*"):
        name = path.relative_to(root).as_posix()
        paths.append(name + "/" if path.is_dir() else name)
    return sorted(paths)


def test_the_serve_files_howto_draws_the_tree_its_commands_make(
    tmp_path: Path,
) -> None:
    howto = REPO / "docs" / "howto" / "serve-files-alongside.md"
    (tree,) = blocks(howto, "text")
    # Every shell block but the ones that start the server, in order.
    making = [b for b in blocks(howto, "sh") if not b.startswith("jetforce-sesh")]
    assert 2 == len(making), making
    for block in making:
        subprocess.run(["bash", "-e", "-c", block], cwd=tmp_path, check=True)
    top = tree.splitlines()[0]
    assert drawn_tree(tree) == made_tree(tmp_path, top)
