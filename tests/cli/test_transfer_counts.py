"""``export`` and ``import`` say how many records they moved in words: "1 record",
not "1 records" (issue 21)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from jetforce_sesh.cli.main import main
from jetforce_sesh.games import counter
from jetforce_sesh.stores.sqlite.store import SQLiteStores
from jetforce_sesh.testing import SessionHarness

APP = "jetforce_sesh.games.counter:app"


def one_visit(state: Path) -> None:
    """A state directory holding one record: one player's one visit."""
    stores = SQLiteStores(state)
    harness = SessionHarness(counter.app, stores=stores)
    assert 20 == harness.get("/counter", player="ann").status
    closed = counter.app.close(grace=0)
    assert closed.called
    stores.directory.release()


def test_one_record_is_exported_and_imported_as_one_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_visit(tmp_path / "old")
    main(["export", "--state-dir", str(tmp_path / "old"), "--app", APP])
    exported = capsys.readouterr()
    assert "exported 1 record\n" == exported.err
    assert 1 == len(exported.out.splitlines())
    monkeypatch.setattr("sys.stdin", io.StringIO(exported.out))
    main(["import", "--state-dir", str(tmp_path / "new"), "--app", APP])
    assert ("", "imported 1 record\n") == tuple(capsys.readouterr())
