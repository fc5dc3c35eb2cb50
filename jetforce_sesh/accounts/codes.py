"""Link codes: made with :mod:`secrets`, kept only as their SHA-256, typed
loosely, and wrong guesses counted."""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict

#: Characters of a link code: digits and capitals with no look-alikes (no 0 or O,
#: no 1, I or L, no U or V, which fonts and handwriting confuse).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
CODE_LENGTH = 8


def code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode("ascii")).digest()


def normal_code(text: str) -> str | None:
    """The code a player meant by ``text`` (any case, spaces and dashes
    ignored), or None if it cannot be one."""
    code = "".join(text.split()).replace("-", "").upper()
    if len(code) != CODE_LENGTH or any(char not in ALPHABET for char in code):
        return None
    return code


def shown_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


class Guesses:
    """Wrong codes per certificate, in windows of ``window`` seconds, in a table
    of at most ``capacity`` certificates: a flood of fresh certificates pushes
    out the oldest entries, and cannot grow it."""

    def __init__(self, limit: int, window: float, capacity: int) -> None:
        self.limit = limit
        self.window = window
        self.capacity = capacity
        self._table: OrderedDict[bytes, tuple[int, float]] = OrderedDict()

    def wait(self, fingerprint: bytes, now: float) -> int:
        """Whole seconds ``fingerprint`` must wait before another try (0: none)."""
        count, since = self._table.get(fingerprint, (0, now))
        if now - since >= self.window:
            self._table.pop(fingerprint, None)
            return 0
        if count < self.limit:
            return 0
        return max(1, int(since + self.window - now + 0.999))

    def wrong(self, fingerprint: bytes, now: float) -> None:
        count, since = self._table.pop(fingerprint, (0, now))
        if now - since >= self.window:
            count, since = 0, now
        self._table[fingerprint] = (count + 1, since)
        while len(self._table) > self.capacity:
            self._table.popitem(last=False)

    def __len__(self) -> int:
        return len(self._table)
