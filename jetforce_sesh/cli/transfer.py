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
import json
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from jetforce_sesh.cli.apps import DEFAULT_APP, load_app
from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.errors import ConfigError, RecordUnreadable
from jetforce_sesh.options import SlabOptions
from jetforce_sesh.session.application import SessionApplication
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.sqlite.directory import StateDirectory
from jetforce_sesh.stores.sqlite.file import (
    UPSERT,
    checksum,
    connect,
    meta,
    transaction,
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
        raise UsageError(
            f"{path} cannot be read ({error}): start jetforce-sesh on the directory"
            f" once, which moves the file aside and keeps the records that check"
            f" out, then export again"
        ) from None


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


def import_(
    app: SessionApplication,
    directory: StateDirectory,
    only: str | None,
    lines: Iterable[str],
) -> int:
    """Write the records of ``lines`` (as export wrote them) into the state
    directory, replacing what each key held; how many were written."""
    slabs = {slab.name: slab for slab in _slabs(app, only)}
    by_slab: dict[str, list[tuple[bytes, bytes, int, float, int]]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            slab = slabs.get(item["slab"])
            if slab is None:
                if only is None:
                    raise ValueError(f"no slab {item['slab']!r} in the capsule")
                continue
            key = bytes.fromhex(item["key"])
            data = base64.b64decode(item["data"], validate=True)
            version = int(item["version"])
            used = float(item["last_used"])
            if len(key) != 32 or version < 1:
                raise ValueError("key must be 64 hex digits and version 1 or more")
            if "unreadable" not in item:  # exported as it was: it goes back so
                codec = slab.codec_for(slab.resolve(SlabOptions()))
                codec.decode(data)
        except (ValueError, KeyError, TypeError, RecordUnreadable) as error:
            raise UsageError(f"line {number} cannot be imported: {error}") from None
        by_slab.setdefault(slab.name, []).append(
            (key, data, version, used, checksum(key, data, version))
        )
    written = 0
    for name, rows in by_slab.items():
        slab = slabs[name]
        codec = slab.codec_for(slab.resolve(SlabOptions()))
        db = connect(directory.file_for(name))
        try:
            with transaction(db):
                db.executemany(
                    "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
                    meta(name, codec.format).items(),
                )
                db.executemany(UPSERT, rows)
            written += len(rows)
        finally:
            db.close()
    return written


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
