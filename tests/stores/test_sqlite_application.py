"""The SQLite store through the application: a record class that changed
between runs, and export and import of a state directory.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import attrs
import pytest
from jetforce.app.base import Request, Response, Status

from jetforce_sesh import SessionApplication
from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.cli.transfer import export, import_
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.records.codec import Codec
from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.store import SQLiteStores
from jetforce_sesh.testing import START, SessionHarness, fingerprint_of
from tests.stores.sqlite_support import done, rows_of


@attrs.define
class NoteBefore:
    visits: int = 0


@attrs.define
class NoteAfter:
    visits: int = 0
    colour: str = "green"


before_app = SessionApplication("notes")
before_app.slab(NoteBefore, name="notes", record_size=64)
after_app = SessionApplication("notes")
after_app.slab(NoteAfter, name="notes", record_size=64)


@before_app.session_route("/visit", record=NoteBefore)
def visit_before(request: Request, record: NoteBefore) -> Response:
    record.visits += 1
    return Response(Status.SUCCESS, "text/plain", f"visits={record.visits}")


@after_app.session_route("/visit", record=NoteAfter)
def visit_after(request: Request, record: NoteAfter) -> Response:
    record.visits += 1
    return Response(
        Status.SUCCESS, "text/plain", f"visits={record.visits} colour={record.colour}"
    )


def run(app: SessionApplication, state: Path, visits: list[str]) -> list[str]:
    """One life of ``app`` on ``state``: each player's visit, its page's body."""
    stores = SQLiteStores(state)
    harness = SessionHarness(app, stores=stores)
    try:
        return [harness.get("/visit", player=player).body for player in visits]
    finally:
        done(app.close(grace=0))
        stores.directory.release()


def test_a_record_class_that_gained_a_field_reads_it_with_its_default(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    assert ["visits=1", "visits=2"] == run(before_app, state, ["ann", "ann"])
    assert ["visits=3 colour=green"] == run(after_app, state, ["ann"])


def test_export_then_import_into_an_empty_directory_gives_the_same_rows(
    tmp_path: Path,
) -> None:
    run(before_app, tmp_path / "old", ["ann", "ann", "ben"])
    old = rows_of(tmp_path / "old" / "notes.sqlite3")
    out = io.StringIO()
    directory = StateDirectory(tmp_path / "old")
    try:
        assert (2, 0) == export(before_app, directory, None, out)
    finally:
        directory.release()
    lines = out.getvalue().splitlines(keepends=True)
    ann = fingerprint_of("ann")
    assert {
        "slab": "notes",
        "key": ann.hex(),
        "last_used": START,
        "version": 2,
        "data": base64.b64encode(old[ann][0]).decode(),
        "fields": {"visits": 2},
    } == next(line for line in map(json.loads, lines) if line["key"] == ann.hex())
    directory = StateDirectory(tmp_path / "new")
    try:
        assert 2 == import_(before_app, directory, None, lines)
    finally:
        directory.release()
    assert old == rows_of(tmp_path / "new" / "notes.sqlite3")
    assert ["visits=3", "visits=2"] == run(before_app, tmp_path / "new", ["ann", "ben"])


def note_codec() -> Codec[NoteBefore]:
    return before_app.slabs[NoteBefore].codec_for(SlabOptions())


GOOD_LINE = {
    "slab": "notes",
    "key": fingerprint_of("ann").hex(),
    "last_used": START,
    "version": 1,
    "data": "",  # filled in by the test, with the slab's codec
}


@pytest.mark.parametrize(
    "bad, why",
    [
        pytest.param(
            {"key": "abcd"},
            "key must be 64 hex digits and version 1 or more",
            id="short-key",
        ),
        pytest.param(
            {"slab": "elsewhere"}, "no slab 'elsewhere' in the capsule", id="slab"
        ),
        pytest.param(
            {"version": "one"},
            "invalid literal for int() with base 10: 'one'",
            id="version",
        ),
        pytest.param(
            {"data": base64.b64encode(b"junk").decode()},
            "not a NoteBefore record: it starts with 6a, not format tag 01",
            id="data",
        ),
    ],
)
def test_import_of_a_bad_line_names_its_number_and_writes_nothing(
    tmp_path: Path, bad: dict[str, object], why: str
) -> None:
    good = {
        **GOOD_LINE,
        "data": base64.b64encode(note_codec().encode(NoteBefore(1))).decode(),
    }
    lines = [json.dumps(good) + "\n", "\n", json.dumps({**good, **bad}) + "\n"]
    directory = StateDirectory(tmp_path / "new")
    try:
        with pytest.raises(UsageError) as raised:
            import_(before_app, directory, None, lines)
    finally:
        directory.release()
    assert f"line 3 cannot be imported: {why}" == str(raised.value)
    assert ["jetforce-sesh.lock"] == [path.name for path in directory.path.iterdir()]


def test_a_record_exported_as_unreadable_imports_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    """A record the capsule's class cannot read any more (say, a field's type
    changed) is still the player's: export keeps its bytes, import puts them
    back, and nothing is lost on the way to a migration."""
    junk = b"\x7fnot msgpack"
    line = {**GOOD_LINE, "data": base64.b64encode(junk).decode()}
    line["unreadable"] = "not a NoteBefore record"
    directory = StateDirectory(tmp_path / "new")
    try:
        assert 1 == import_(before_app, directory, None, [json.dumps(line)])
    finally:
        directory.release()
    ann = fingerprint_of("ann")
    assert {ann: (junk, 1, START)} == rows_of(tmp_path / "new" / "notes.sqlite3")


def test_export_of_a_file_sqlite_cannot_read_is_one_line_saying_what_to_do(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    run(before_app, state, ["ann"])
    path = state / "notes.sqlite3"
    path.write_bytes(b"not a database at all" * 100)
    directory = StateDirectory(state)
    try:
        with pytest.raises(UsageError) as raised:
            export(before_app, directory, None, io.StringIO())
    finally:
        directory.release()
    assert (
        f"{path} cannot be read (file is not a database): start jetforce-sesh on"
        f" the directory once, which moves the file aside and keeps the records"
        f" that check out, then export again"
    ) == str(raised.value)


def test_export_for_a_capsule_that_wrote_none_of_the_files_says_which_to_give(
    tmp_path: Path,
) -> None:
    """The demo capsule is the default --app: exporting another capsule's
    directory without naming it must not quietly export nothing."""
    state = tmp_path / "state"
    run(before_app, state, ["ann"])
    directory = StateDirectory(state)
    try:
        with pytest.raises(UsageError) as raised:
            export(after_app_elsewhere, directory, None, io.StringIO())
    finally:
        directory.release()
    assert (
        f"no slab of the capsule has a file in {state} (it holds notes.sqlite3):"
        f" give --app the capsule that wrote them"
    ) == str(raised.value)


after_app_elsewhere = SessionApplication("elsewhere")
after_app_elsewhere.slab(NoteAfter, name="elsewhere", record_size=64)
