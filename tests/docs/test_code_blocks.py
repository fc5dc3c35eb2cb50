"""Every code block of docs/ and the README runs as a test (rules in blocks.py).

Each page's ```python blocks run in order in one fresh namespace, in a temporary
directory holding the files the pages tell the reader to save, so an import line
that no longer works, a renamed method or a stale printed figure fails here. The
tests those files hold run too, with pytest, as the reader would run them. Every
``jetforce-sesh`` command of a ```sh block must parse with the command's own
parser. Nothing here starts a server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import twisted.logger

from jetforce_sesh.cli import transfer
from jetforce_sesh.cli.main import build_parser
from tests.docs.blocks import (
    CONTINUES,
    EXCERPT,
    NOT_RUN,
    PAGES,
    REPO,
    SIGNATURE,
    Block,
    commands,
    excerpt_problems,
    files_for,
    named_files,
    page_files,
    python_blocks,
    read_blocks,
    run_block,
    signature_problems,
)

RUN = [page for page in PAGES if python_blocks(page)]
SHELL = [
    (block, command)
    for page in PAGES
    for block in read_blocks(page)
    if block.lang in ("sh", "console", "bash")
    for command in commands(block.code)
]


def ids(page: Path) -> str:
    return str(page.relative_to(REPO))


def write_files(page: Path, directory: Path) -> None:
    for name, text in files_for(page).items():
        (directory / name).write_text(text)


@pytest.fixture
def reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A reader's directory: the current one, first on sys.path. The modules
    imported from it, and the log a block starts, go with the test."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # A block that starts Twisted's log starts this one, not the suite's.
    beginner = twisted.logger.LogBeginner(
        twisted.logger.LogPublisher(),
        sys.stderr,
        types.SimpleNamespace(),
        types.SimpleNamespace(showwarning=warnings.showwarning),
    )
    monkeypatch.setattr(twisted.logger, "globalLogBeginner", beginner)
    # A block that would serve must say so in a mark, not hang the suite.
    from twisted.internet import reactor

    def serve(*args: object, **kwargs: object) -> None:
        raise AssertionError("a block ran the reactor: mark it 'not run'")

    monkeypatch.setattr(reactor, "run", serve)
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        module = sys.modules[name]
        if str(tmp_path) in str(getattr(module, "__file__", "") or ""):
            del sys.modules[name]


@pytest.mark.parametrize("page", RUN, ids=ids)
def test_the_python_blocks_of_a_page_run_in_order(page: Path, reader: Path) -> None:
    write_files(page, reader)
    namespace: dict[str, Any] = {"__name__": "reader"}
    ran: set[str] = set()
    problems: list[str] = []
    for block in python_blocks(page):
        mark = block.mark
        if mark.startswith("not run"):
            continue
        if mark == SIGNATURE:
            problems += signature_problems(block, namespace)
            continue
        excerpt = EXCERPT.fullmatch(mark)
        if excerpt:
            problems += excerpt_problems(block, excerpt["path"])
            continue
        continued = CONTINUES.fullmatch(mark)
        if continued and continued["name"] not in ran:
            # The file as the other page leaves it, run first, as the reader has it.
            home = REPO / continued["page"]
            base = Block(home, 1, "python", page_files(home)[continued["name"]])
            problems += run_block(base, namespace)
        if block.file_name:
            ran.add(block.file_name)
        problems += run_block(block, namespace)
    assert not problems, "\n".join(problems)


def test_every_mark_is_one_the_test_reads_and_a_skip_names_its_test() -> None:
    problems = []
    for page in PAGES:
        for block in read_blocks(page):
            mark = block.mark
            if not mark or block.lang != "python":
                continue
            excerpt = EXCERPT.fullmatch(mark)
            continued = CONTINUES.fullmatch(mark)
            skipped = NOT_RUN.fullmatch(mark)
            if mark == SIGNATURE:
                continue
            if excerpt:
                if not (REPO / excerpt["path"]).is_file():
                    problems.append(f"{block.where}: no file {excerpt['path']}")
            elif continued:
                home = REPO / continued["page"]
                if continued["name"] not in page_files(home):
                    problems.append(f"{block.where}: {home.name} saves no such file")
            elif skipped is None:
                problems.append(f"{block.where}: a mark the test does not read: {mark}")
            elif not (REPO / skipped["test"]).is_file():
                problems.append(f"{block.where}: no test {skipped['test']}")
            elif skipped["function"] and not re.search(
                rf"^def {skipped['function']}\(",
                (REPO / skipped["test"]).read_text(),
                re.M,
            ):
                problems.append(f"{block.where}: no {skipped['function']} there")
    assert not problems, "\n".join(problems)


def test_skipped_blocks_stay_rare() -> None:
    skipped = [
        block.where
        for page in PAGES
        for block in python_blocks(page)
        if block.mark.startswith("not run")
    ]
    assert len(skipped) <= 6, skipped


def test_each_file_is_named_on_one_page() -> None:
    assert named_files()


# -- the tests the pages hold ---------------------------------------------------

TESTED = [
    page for page in RUN if any(name.startswith("test_") for name in page_files(page))
]


@pytest.fixture(scope="module")
def test_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[Path, subprocess.Popen[str]]]:
    """pytest on each page's test files, every page at once, in its own directory."""
    environ = {**os.environ, "PYTHONPATH": str(REPO)}
    runs = {}
    for page in TESTED:
        directory = tmp_path_factory.mktemp(page.stem)
        write_files(page, directory)
        tests = sorted(name for name in page_files(page) if name.startswith("test_"))
        runs[page] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                "-W",
                "error::DeprecationWarning",
                "-W",
                "ignore:Properties that return a na",
                *tests,
            ],
            cwd=directory,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    yield runs
    for run in runs.values():
        if run.poll() is None:
            run.kill()
        run.communicate()  # and closes its pipe


@pytest.mark.parametrize("page", TESTED, ids=ids)
def test_the_tests_a_page_holds_pass(
    page: Path, test_runs: dict[Path, subprocess.Popen[str]]
) -> None:
    run = test_runs[page]
    output, _ = run.communicate(timeout=300)
    assert 0 == run.returncode, output


# -- shell blocks -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "command"),
    SHELL,
    ids=[f"{block.where} {' '.join(command)[:40]}" for block, command in SHELL],
)
def test_each_jetforce_sesh_command_parses(
    block: Block,
    command: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With the launcher's own parser: a flag renamed or dropped fails here."""
    if command[:1] in (["export"], ["import"]):

        class Parsed(Exception):
            pass

        def parsed(name: str) -> Any:
            raise Parsed(name)

        monkeypatch.setattr(transfer, "load_app", parsed)
        with pytest.raises((Parsed, SystemExit)) as raised:
            transfer.main(command)
        assert raised.type is Parsed, capsys.readouterr().err
        return
    try:
        build_parser().parse_args(command)
    except SystemExit as exit:
        # --help and --version exit 0; a bad command line exits 2.
        assert 0 == exit.code, f"{block.where}: {capsys.readouterr().err}"
