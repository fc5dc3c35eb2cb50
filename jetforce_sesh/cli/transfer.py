"""``jetforce-sesh export`` and ``import``: a capsule's records as JSON lines.

The backup and migration path for ``--state-dir``: one line per record, with the
slab's name, the player's key, the last use, the version, the stored bytes
(base64, exact: what ``import`` writes back) and the record's fields decoded by
the capsule's own record class (for people and for scripts that move records
between record formats). Both take the state directory's lock: they run while
no server uses it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from jetforce_sesh.cli.apps import DEFAULT_APP, load_app
from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.errors import ConfigError, RecordUnreadable
from jetforce_sesh.options import MAX_RECORD_SIZE, SlabOptions
from jetforce_sesh.records.codec import Codec
from jetforce_sesh.records.layout import LayoutCodec
from jetforce_sesh.session.application import SessionApplication
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.contract import MAX_VERSION
from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.file import (
    SQLITE_FILES,
    UPSERT,
    check_not_links,
    checksum,
    connect,
    meta,
    whole,
)
from jetforce_sesh.stores.sqlite.store import records_text


def _plain(value: Any) -> Any:
    """A field's value as JSON holds it: bytes as base64, dict keys as text."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def fields_of(record: Any) -> dict[str, Any]:
    return {
        field.alias or field.name: _plain(getattr(record, field.name))
        for field in attrs.fields(type(record))
    }


def _slabs(app: SessionApplication, only: str | None) -> list[Slab[Any]]:
    slabs = list(app.slabs.values())
    if only is None:
        return slabs
    chosen = [slab for slab in slabs if slab.name == only]
    if not chosen:
        names = ", ".join(slab.name for slab in slabs)
        raise UsageError(
            f"--slab {only!r} is not a slab of the capsule: one of {names}"
        )
    return chosen


def _rows(db: sqlite3.Connection, path: Path) -> Iterator[tuple[Any, ...]]:
    """The rows of a slab file; a file SQLite cannot read is a one-line error."""
    try:
        yield from db.execute(
            "SELECT key, data, version, last_used, checksum FROM records ORDER BY key"
        )
    except sqlite3.DatabaseError as error:
        raise UsageError(_unreadable(path, error, "export")) from None


def export(
    app: SessionApplication, directory: StateDirectory, only: str | None, out: IO[str]
) -> tuple[int, int]:
    """Every record of the app's slabs as JSON lines; (written, left out)."""
    written = left_out = 0
    slabs = _slabs(app, only)
    if not any(directory.file_for(slab.name).exists() for slab in slabs):
        others = sorted(path.name for path in directory.path.glob("*.sqlite3"))
        if others:
            raise UsageError(
                f"no slab of the capsule has a file in {directory.path} (it holds"
                f" {', '.join(others)}): give --app the capsule that wrote them"
            )
    for slab in slabs:
        path = directory.file_for(slab.name)
        if not path.exists():
            continue
        codec = slab.codec_for(slab.resolve(SlabOptions()))
        check_not_links(path)
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = _rows(db, path)
            for key, data, version, used, check in rows:
                if not whole(key, data, version, used, check):
                    left_out += 1
                    continue
                line: dict[str, Any] = {
                    "slab": slab.name,
                    "key": key.hex(),
                    "last_used": used,
                    "version": version,
                    "data": base64.b64encode(data).decode(),
                }
                try:
                    line["fields"] = fields_of(codec.decode(data))
                except RecordUnreadable as error:
                    line["unreadable"] = str(error)
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                written += 1
        finally:
            db.close()
    return written, left_out


#: The highest version a line may carry: half of what a store may give, so
#: that a slab imported at the top still has versions for a lifetime of saves.
MAX_IMPORTED_VERSION = MAX_VERSION // 2 + 1

_HEX = frozenset("0123456789abcdefABCDEF")


#: The latest last use a line may carry: the end of the year 9999.
MAX_LAST_USED = 253_402_300_799.0


@attrs.define
class _Target:
    """One slab's file and the rows to write into it."""

    slab: Slab[Any]
    path: Path
    codec: Codec[Any]
    #: The largest record the slab may hold (see :func:`_most_bytes`).
    size: int
    rows: list[tuple[bytes, bytes, int, float, int]] = attrs.Factory(list)
    #: The line each key came on, to refuse a key given twice.
    lines: dict[bytes, int] = attrs.Factory(dict)

    @classmethod
    def of(cls, slab: Slab[Any], directory: StateDirectory) -> _Target:
        codec = slab.codec_for(slab.resolve(SlabOptions()))
        size = _most_bytes(slab, codec)
        return cls(slab, directory.file_for(slab.name), codec, size)


def _check_line(
    item: dict[str, Any], target: _Target
) -> tuple[bytes, bytes, int, float]:
    """The key, data, version and last use of one line; ValueError saying what
    is wrong. Everything a store would trip over later is checked here."""
    slab, codec, size = target.slab, target.codec, target.size
    text = item["key"]
    if type(text) is not str or len(text) != 64 or not _HEX.issuperset(text):
        raise ValueError("key must be 64 hex digits")
    key = bytes.fromhex(text)
    version = item["version"]
    if type(version) is not int or not 1 <= version <= MAX_IMPORTED_VERSION:
        raise ValueError(
            f"version must be a whole number from 1 to {MAX_IMPORTED_VERSION}"
            f" (got {version!r}), so that saves have versions left to give"
        )
    used = item["last_used"]
    if (
        type(used) not in (int, float)
        or not math.isfinite(used)
        or not 0 <= used <= MAX_LAST_USED
    ):
        raise ValueError(
            f"last_used must be seconds since the epoch, from 0 to"
            f" {MAX_LAST_USED:g} (got {used!r})"
        )
    data = base64.b64decode(item["data"], validate=True)
    if "unreadable" in item:
        # Exported as its class could not read it: it goes back byte for byte,
        # but only if it could be a record of this slab at all.
        if type(item["unreadable"]) is not str:
            raise ValueError("unreadable, where given, is export's text saying why")
        if isinstance(codec, LayoutCodec) and len(data) != codec.record_size:
            raise ValueError(
                f"slab {slab.name!r} has {codec.record_size}-byte records (layout"
                f" {codec.layout!r}), not {len(data)}"
            )
    else:
        codec.decode(data)
    if len(data) > size:
        raise ValueError(
            f"the record takes {len(data)} bytes and slab {slab.name!r} holds at"
            f" most {size}"
        )
    return key, data, version, float(used)


def _most_bytes(slab: Slab[Any], codec: Codec[Any]) -> int:
    """The largest record the slab can hold whatever the launcher's flags: its
    own record_size if it sets one (a layout does), else the largest any
    --record-size allows."""
    given = slab.resolve(SlabOptions(record_size=MAX_RECORD_SIZE)).record_size
    if slab.layout is not None or given != MAX_RECORD_SIZE:
        return codec.record_size
    return MAX_RECORD_SIZE


def _check_file(target: _Target, db: sqlite3.Connection) -> None:
    """UsageError unless the file ``db`` has open (in a transaction) is new or
    a file of this slab: import never writes into another slab's file."""
    found = dict(db.execute("SELECT name, value FROM meta"))
    found.pop("version", None)
    wanted = meta(target.slab.name, target.codec.format)
    if found and found != wanted:
        raise UsageError(
            f"{target.path} holds records of slab {found.get('slab', '?')!r} in"
            f" {found.get('codec', '?')}, not of {target.slab.name!r} in"
            f" {target.codec.format}: import into another directory, or move the"
            f" file away first"
        )


def import_(
    app: SessionApplication,
    directory: StateDirectory,
    only: str | None,
    lines: Iterable[str],
) -> int:
    """Write the records of ``lines`` (as export wrote them) into the state
    directory, replacing what each key held; how many were written.

    Every line and every file written to is checked before anything is
    written: a bad line is a UsageError naming it, and nothing is written.
    Each slab's rows then go in in one transaction per file, all of them open
    before the first commits; a file that fails its commit (a full disk) is a
    UsageError naming the slabs written and those not.
    """
    slabs = {slab.name: slab for slab in _slabs(app, only)}
    targets: dict[str, _Target] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict):
                raise ValueError("a line is a JSON object, as export writes them")
            slab = slabs.get(item["slab"])
            if slab is None:
                if only is None:
                    raise ValueError(f"no slab {item['slab']!r} in the capsule")
                continue
            target = targets.get(slab.name)
            if target is None:
                target = targets[slab.name] = _Target.of(slab, directory)
            key, data, version, used = _check_line(item, target)
            if key in target.lines:
                raise ValueError(
                    f"key {key.hex()} of slab {slab.name!r} is on line"
                    f" {target.lines[key]} already"
                )
        except (ValueError, KeyError, TypeError, RecordUnreadable) as error:
            raise UsageError(f"line {number} cannot be imported: {error}") from None
        target.lines[key] = number
        target.rows.append((key, data, version, used, checksum(key, data, version)))
    return _write(list(targets.values()))


def _write(targets: list[_Target]) -> int:
    """Every target's rows, each file in one transaction; all are open before
    the first commits, so whatever fails before then writes nothing."""
    open_: list[tuple[_Target, sqlite3.Connection]] = []
    written: list[str] = []
    made: list[Path] = []
    #: The file being written to when a write fails.
    at = targets[0].path if targets else None
    try:
        for target in targets:
            at = target.path
            if not target.path.exists():
                made.append(target.path)
            try:
                db = connect(target.path)
            except sqlite3.OperationalError:
                raise  # a disk or a lock, not damage: said below
            except sqlite3.DatabaseError as error:
                raise UsageError(_unreadable(target.path, error, "import")) from None
            open_.append((target, db))
            db.execute("BEGIN IMMEDIATE")
            _check_file(target, db)
            db.executemany(
                "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
                meta(target.slab.name, target.codec.format).items(),
            )
            # A row replaced may hold the highest version the slab gave: the
            # floor keeps it, so that it is never given again.
            floor = max(
                _given(db),
                max(version for _, _, version, _, _ in target.rows),
            )
            db.executemany(UPSERT, target.rows)
            db.execute(
                "INSERT OR REPLACE INTO meta (name, value) VALUES ('version', ?)",
                (str(floor),),
            )
        for target, db in open_:
            at = target.path
            db.execute("COMMIT")
            written.append(target.slab.name)
    except (sqlite3.Error, OSError) as error:
        left = [t.slab.name for t in targets if t.slab.name not in written]
        raise UsageError(
            f"{at} could not be written ({error}):"
            + (
                f" the records of {', '.join(map(repr, written))} are imported,"
                f" those of {', '.join(map(repr, left))} are not; import their"
                f" lines again (--slab)"
                if written
                else " nothing was imported"
            )
        ) from None
    finally:
        for _, db in open_:
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            db.close()
        if not written:
            # Nothing was imported: the files made for it go too.
            for path in made:
                for suffix in SQLITE_FILES:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(f"{path}{suffix}")
    return sum(len(target.rows) for target in targets)


def _unreadable(path: Path, error: sqlite3.Error, command: str) -> str:
    return (
        f"{path} cannot be read ({error}): start jetforce-sesh on the directory"
        f" once, which moves the file aside and keeps the records that check"
        f" out, then {command} again"
    )


def _given(db: sqlite3.Connection) -> int:
    """The highest version a slab file gave so far: its floor, or its rows."""
    (highest,) = db.execute("SELECT coalesce(max(version), 0) FROM records").fetchone()
    row = db.execute("SELECT value FROM meta WHERE name = 'version'").fetchone()
    floor = int(row[0]) if row is not None and str(row[0]).isdigit() else 0
    return max(int(highest), floor)


def main(argv: Sequence[str]) -> None:
    """``jetforce-sesh export|import --state-dir DIR [--app M:A] [--slab NAME]``."""

    command = argv[0]
    parser = argparse.ArgumentParser(
        prog=f"jetforce-sesh {command}",
        description=(
            "Write every record of a state directory as JSON lines on stdout"
            if command == "export"
            else "Read records as JSON lines from stdin into a state directory"
        )
        + "; no server may be using the directory meanwhile",
    )
    parser.add_argument("--state-dir", required=True, metavar="DIR")
    parser.add_argument("--app", default=DEFAULT_APP, metavar="MODULE:ATTR")
    parser.add_argument("--slab", default=None, metavar="NAME", help="Only this slab")
    args = parser.parse_args(argv[1:])
    try:
        app = load_app(args.app)
        if not isinstance(app, SessionApplication):
            raise UsageError(f"--app {args.app!r} is not a SessionApplication")
        if command == "export" and not Path(args.state_dir).is_dir():
            raise UsageError(
                f"--state-dir {args.state_dir!r} is not a directory: give the one"
                f" the server was started with"
            )
        directory = StateDirectory(args.state_dir)
        if command == "export":
            written, left_out = export(app, directory, args.slab, sys.stdout)
            print(
                f"exported {records_text(written)}"
                + (f"; {records_text(left_out)} damaged, left out" if left_out else ""),
                file=sys.stderr,
            )
        else:
            written = import_(app, directory, args.slab, sys.stdin)
            print(f"imported {records_text(written)}", file=sys.stderr)
    except (UsageError, ConfigError) as error:
        print(f"jetforce-sesh {command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
