"""A reader of slab files that shares no code with SQLite or with the salvage.

It reads the bytes of a database file and of its write-ahead log as the file
format describes them (https://www.sqlite.org/fileformat2.html): the log's
frames up to its last commit whose checksums hold, each page as the log last
has it, else as the file has it; then the ``records`` table's b-tree, from the
root the schema names, every cell of every page it reaches. A page that is
missing or does not parse as a b-tree page costs the rows it held and those
under it, and is reported.

Enough of the format for the store's own files, and no more: a WITHOUT ROWID
table of small rows (no overflow pages), the schema on page 1.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import attrs

#: A row as the store writes it: key, data, version, last use, checksum.
Row = tuple[bytes, bytes, int, float, int]

_WAL_MAGIC = (0x377F0682, 0x377F0683)  # little-endian checksums, big-endian
_HEADER = b"SQLite format 3\x00"


class Unreadable(Exception):
    """A page that does not parse."""


def wal_checksum(data: bytes, s1: int, s2: int, big: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s1 = (s1 + words[i] + s2) & 0xFFFFFFFF
        s2 = (s2 + words[i + 1] + s1) & 0xFFFFFFFF
    return s1, s2


@attrs.frozen
class Log:
    """The committed frames of a write-ahead log: the page each last wrote,
    and the database's size in pages after the last commit (0: no commit)."""

    pages: dict[int, bytes]
    size: int

    @classmethod
    def read(cls, raw: bytes, page_size: int | None) -> Log:
        empty = cls({}, 0)
        if len(raw) < 32:
            return empty
        magic, _version, size, _seq, salt1, salt2, c1, c2 = struct.unpack(
            ">8I", raw[:32]
        )
        if magic not in _WAL_MAGIC or (page_size is not None and size != page_size):
            return empty
        big = magic == _WAL_MAGIC[1]
        if wal_checksum(raw[:24], 0, 0, big) != (c1, c2):
            return empty
        pages: dict[int, bytes] = {}
        pending: dict[int, bytes] = {}
        committed = 0
        s1, s2 = c1, c2
        at = 32
        while at + 24 + size <= len(raw):
            number, after, f1, f2, k1, k2 = struct.unpack(">6I", raw[at : at + 24])
            page = raw[at + 24 : at + 24 + size]
            if (f1, f2) != (salt1, salt2):
                break
            s1, s2 = wal_checksum(raw[at : at + 8], s1, s2, big)
            s1, s2 = wal_checksum(page, s1, s2, big)
            if (s1, s2) != (k1, k2):
                break
            pending[number] = page
            if after:  # a commit: everything up to here stands
                pages.update(pending)
                pending = {}
                committed = after
            at += 24 + size
        return cls(pages, committed)


def _varint(page: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(9):
        if at + i >= len(page):
            raise Unreadable("a varint runs past the page")
        byte = page[at + i]
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    raise AssertionError("unreachable")


def _record(payload: bytes) -> list[object]:
    """The values of one record (the format's "record format")."""
    header, at = _varint(payload, 0)
    types = []
    while at < header:
        kind, at = _varint(payload, at)
        types.append(kind)
    values: list[object] = []
    at = header
    for kind in types:
        if kind == 0:
            values.append(None)
        elif 1 <= kind <= 6:
            width = (1, 2, 3, 4, 6, 8)[kind - 1]
            values.append(int.from_bytes(payload[at : at + width], "big", signed=True))
            at += width
        elif kind == 7:
            values.append(struct.unpack(">d", payload[at : at + 8])[0])
            at += 8
        elif kind in (8, 9):
            values.append(kind - 8)
        elif kind >= 12:
            width = (kind - 12) // 2
            chunk = payload[at : at + width]
            values.append(chunk if kind % 2 == 0 else chunk.decode())
            at += width
        else:
            raise Unreadable(f"serial type {kind}")
        if at > len(payload):
            raise Unreadable("a record runs past its payload")
    return values


class SlabFile:
    """A slab's database file and its log, read by hand."""

    def __init__(self, path: Path) -> None:
        self.raw = path.read_bytes() if path.exists() else b""
        wal = Path(f"{path}-wal")
        size = None
        if self.raw[:16] == _HEADER:
            size = struct.unpack(">H", self.raw[16:18])[0]
            size = 65536 if size == 1 else size
        self.log = Log.read(wal.read_bytes() if wal.exists() else b"", size)
        if size is None and self.log.pages:
            size = len(next(iter(self.log.pages.values())))
        self.page_size = size or 4096
        #: Pages the walk could not read.
        self.unreadable: list[int] = []

    def page(self, number: int) -> bytes:
        if number in self.log.pages:
            return self.log.pages[number]
        if self.log.size and number > self.log.size:
            raise Unreadable(f"page {number} is past the database's end")
        start = (number - 1) * self.page_size
        page = self.raw[start : start + self.page_size]
        if len(page) != self.page_size:
            raise Unreadable(f"page {number} is cut short")
        return page

    def _cells(self, number: int) -> tuple[int, list[int], int | None, bytes, int]:
        """A b-tree page's type, cell offsets, right child and bytes, and
        where its header starts."""
        page = self.page(number)
        base = 100 if number == 1 else 0
        kind = page[base]
        if kind not in (0x02, 0x05, 0x0A, 0x0D):
            raise Unreadable(f"page {number} has type {kind}")
        count = struct.unpack(">H", page[base + 3 : base + 5])[0]
        interior = kind in (0x02, 0x05)
        right = struct.unpack(">I", page[base + 8 : base + 12])[0] if interior else None
        start = base + (12 if interior else 8)
        offsets = [
            struct.unpack(">H", page[start + 2 * i : start + 2 * i + 2])[0]
            for i in range(count)
        ]
        if any(not start <= offset < len(page) for offset in offsets):
            raise Unreadable(f"page {number} has a cell outside it")
        return kind, offsets, right, page, base

    def _payload(self, page: bytes, at: int) -> bytes:
        size, at = _varint(page, at)
        most = (self.page_size - 12) * 64 // 255 - 23
        if size > most:
            raise Unreadable("overflow pages are beyond this reader")
        if at + size > len(page):
            raise Unreadable("a cell runs past its page")
        return page[at : at + size]

    def schema_root(self, table: str) -> int:
        """The root page of ``table``, from the schema's table b-tree."""
        found: list[int] = []

        def walk(number: int) -> None:
            kind, offsets, right, page, _ = self._cells(number)
            for offset in offsets:
                if kind == 0x05:
                    walk(struct.unpack(">I", page[offset : offset + 4])[0])
                    continue
                size, at = _varint(page, offset)
                _rowid, at = _varint(page, at)
                values = _record(page[at : at + size])
                if values[0] == "table" and values[1] == table:
                    found.append(int(values[3]))  # type: ignore[call-overload]
            if right is not None:
                walk(right)

        walk(1)
        if not found:
            raise Unreadable(f"no table {table} in the schema")
        return found[0]

    def rows(self) -> dict[bytes, Row]:
        """Every row a search of the ``records`` b-tree still reaches, by key.

        In an index b-tree, as a WITHOUT ROWID table is, the cells of interior
        pages are rows too. A search reaches one from a child next to it (it
        ends a walk through the child on its left, or starts one back from
        the child on its right); one whose children on both sides cannot be
        read is beyond any search, and is not counted here either.
        """
        found: dict[bytes, Row] = {}
        try:
            root = self.schema_root("records")
        except Unreadable:
            self.unreadable.append(1)
            return found

        def walk(number: int, depth: int) -> bool:
            """Take the rows under page ``number``; whether it could be read."""
            if depth > 40:
                raise Unreadable("a b-tree deeper than any file holds")
            try:
                kind, offsets, right, page, _ = self._cells(number)
                if kind not in (0x02, 0x0A):
                    raise Unreadable(f"page {number} is not an index b-tree page")
                cells = []
                for offset in offsets:
                    child = None
                    at = offset
                    if kind == 0x02:
                        child = struct.unpack(">I", page[at : at + 4])[0]
                        at += 4
                    cells.append((child, _record(self._payload(page, at))))
            except (Unreadable, struct.error, UnicodeDecodeError, IndexError):
                self.unreadable.append(number)
                return False
            if kind == 0x0A:
                for _, values in cells:
                    take(values)
                return True
            children = [child for child, _ in cells] + [right]
            readable = [walk(child, depth + 1) for child in children if child]
            for index, (_, values) in enumerate(cells):
                if readable[index] or readable[index + 1]:
                    take(values)
            return True

        def take(values: list[object]) -> None:
            key, data, version, used, check = values
            found[key] = (key, data, version, used, check)  # type: ignore[index,assignment]

        walk(root, 0)
        return found

    def leaves(self) -> dict[int, list[bytes]]:
        """The keys on each page of the ``records`` b-tree, by page number."""
        keys: dict[int, list[bytes]] = {}
        root = self.schema_root("records")

        def walk(number: int) -> None:
            kind, offsets, right, page, _ = self._cells(number)
            keys[number] = []
            for offset in offsets:
                at = offset
                if kind == 0x02:
                    walk(struct.unpack(">I", page[at : at + 4])[0])
                    at += 4
                keys[number].append(_record(self._payload(page, at))[0])  # type: ignore[arg-type]
            if right is not None:
                walk(right)

        walk(root)
        return keys


def loadable(rows: dict[bytes, Row]) -> dict[bytes, tuple[bytes, int, float]]:
    """The rows a store may load, as (data, version, last use): those whose
    checksum holds, computed from the file format's description (CRC-32 of the
    key, the version as 8 bytes little-endian, and the data)."""
    return {
        key: (data, version, used)
        for key, (_, data, version, used, check) in rows.items()
        if zlib.crc32(key + version.to_bytes(8, "little") + data) == check
    }
