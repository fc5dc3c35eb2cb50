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

from jetforce_sesh import MsgpackCodec, SessionApplication
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
        pytest.param({"key": "abcd"}, "key must be 64 hex digits", id="short-key"),
        pytest.param(
            {"key": " " + "ab" * 31 + "a"}, "key must be 64 hex digits", id="spaced-key"
        ),
        pytest.param(
            {"slab": "elsewhere"}, "no slab 'elsewhere' in the capsule", id="slab"
        ),
        *(
            pytest.param(
                {"version": version},
                f"version must be a whole number from 1 to {2**52} (got"
                f" {version!r}), so that saves have versions left to give",
                id=f"version-{name}",
            )
            for name, version in [
                ("text", "one"),
                ("digits", "7"),
                ("zero", 0),
                ("bool", True),
                ("fraction", 7.5),
                ("2**63", 2**63),
                ("2**63-1", 2**63 - 1),
                ("2**53", 2**53),
                ("past-the-limit", 2**52 + 1),
            ]
        ),
        *(
            pytest.param(
                {"last_used": used},
                f"last_used must be seconds since the epoch, from 0 to"
                f" 2.53402e+11 (got {used!r})",
                id=f"last-used-{name}",
            )
            for name, used in [
                ("nan", float("nan")),
                ("infinity", float("inf")),
                ("negative", -1.0),
                ("text", "yesterday"),
                ("year-10000", 253_402_300_800.0),
            ]
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


# -- import checks everything before it writes anything -----------------------------


@attrs.define
class Counter:
    count: int = 0


two_slabs = SessionApplication("two")
two_slabs.slab(NoteBefore, name="notes", record_size=64)
two_slabs.slab(Counter, name="counts", layout="<Q")


def line_of(slab: str, player: str, data: bytes, **more: object) -> str:
    item = {
        "slab": slab,
        "key": fingerprint_of(player).hex(),
        "last_used": START,
        "version": 1,
        "data": base64.b64encode(data).decode(),
        **more,
    }
    return json.dumps(item) + "\n"


def importing(state: Path, lines: list[str]) -> str:
    """The one line import refuses ``lines`` with."""
    directory = StateDirectory(state)
    try:
        with pytest.raises(UsageError) as raised:
            import_(two_slabs, directory, None, lines)
    finally:
        directory.release()
    return str(raised.value)


def files_in(state: Path) -> list[str]:
    return sorted(path.name for path in state.iterdir())


NOTE = MsgpackCodec(NoteBefore, 64).encode(NoteBefore(3))
COUNT = (7).to_bytes(8, "little")


def test_a_bad_line_of_a_later_slab_writes_nothing_of_the_earlier_ones(
    tmp_path: Path,
) -> None:
    """Every line is checked before any file is written: no slab is left
    imported while another is not."""
    lines = [
        line_of("notes", "ann", NOTE),
        line_of("counts", "ann", COUNT, version=2**63),
    ]
    assert (
        f"line 2 cannot be imported: version must be a whole number from 1 to"
        f" {2**52} (got {2**63}), so that saves have versions left to give"
    ) == importing(tmp_path / "state", lines)
    assert ["jetforce-sesh.lock"] == files_in(tmp_path / "state")


@pytest.mark.parametrize(
    "line, why",
    [
        pytest.param(
            line_of("counts", "ann", b"\xff" * 5000, unreadable="whatever"),
            "slab 'counts' has 8-byte records (layout '<Q'), not 5000",
            id="layout",
        ),
        pytest.param(
            line_of("notes", "ann", b"\xff" * 65, unreadable="whatever"),
            "the record takes 65 bytes and slab 'notes' holds at most 64",
            id="record-size",
        ),
        pytest.param(
            line_of("notes", "ann", NOTE, unreadable=True),
            "unreadable, where given, is export's text saying why",
            id="not-text",
        ),
    ],
)
def test_a_line_marked_unreadable_is_still_checked(
    tmp_path: Path, line: str, why: str
) -> None:
    """What export could not decode goes back byte for byte, but only if it
    could be a record of the slab at all: never 5,000 bytes into a 16-byte
    slab."""
    assert f"line 1 cannot be imported: {why}" == importing(tmp_path / "state", [line])
    assert ["jetforce-sesh.lock"] == files_in(tmp_path / "state")


def test_a_readable_record_larger_than_the_slab_sets_is_refused(
    tmp_path: Path,
) -> None:
    big = MsgpackCodec(NoteAfter, 4096).encode(NoteAfter(colour="x" * 100))
    assert (
        "line 1 cannot be imported: the record takes 119 bytes and slab 'notes'"
        " holds at most 64"
    ) == importing(tmp_path / "state", [line_of("notes", "ann", big)])


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    lines = [line_of("notes", "ann", NOTE), "\n", line_of("notes", "ann", NOTE)]
    assert (
        f"line 3 cannot be imported: key {fingerprint_of('ann').hex()} of slab"
        f" 'notes' is on line 1 already"
    ) == importing(tmp_path / "state", lines)


def test_import_into_another_slabs_file_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    run(before_app, state, ["ann"])
    other = state / "counts.sqlite3"
    (state / "notes.sqlite3").replace(other)  # a file of 'notes', as 'counts'
    before = rows_of(other), files_in(state)
    lines = [line_of("notes", "ben", NOTE), line_of("counts", "ann", COUNT)]
    assert (
        f"{other} holds records of slab 'notes' in msgpack/1, not of 'counts' in"
        f" struct/<Q: import into another directory, or move the file away first"
    ) == importing(state, lines)
    assert before == (rows_of(other), files_in(state))  # no notes.sqlite3 made


def test_a_record_imported_over_a_newer_one_keeps_its_version_given(
    tmp_path: Path,
) -> None:
    """The version a replaced record held was given: it is never given again."""
    state = tmp_path / "state"
    run(before_app, state, ["ann"] * 5)  # ann at version 5
    directory = StateDirectory(state)
    try:
        assert 1 == import_(two_slabs, directory, None, [line_of("notes", "ann", NOTE)])
    finally:
        directory.release()
    assert ["visits=4"] == run(before_app, state, ["ann"])
    ann = fingerprint_of("ann")
    assert 6 == rows_of(state / "notes.sqlite3")[ann][1]
