"""Link codes and recovery codes: made with :mod:`secrets`, kept only as their
SHA-256, typed loosely, never written back to the player or the log."""

from __future__ import annotations

import hashlib
import secrets
from typing import Literal

#: Characters of a code: digits and capitals with no look-alikes (no 0 or O,
#: no 1, I or L, no U or V, which fonts and handwriting confuse).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTWXYZ"
#: A link code lives minutes: 29**8 (about 5.0e11) is plenty for that.
CODE_LENGTH = 8
#: A recovery code lives until used, written down: 29**16 (about 2.5e23, 77
#: bits) holds against guessing online and against its stored hash offline.
RECOVERY_LENGTH = 16

Kind = Literal["link", "recovery"]


def code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode("ascii")).digest()


def read_code(text: str) -> tuple[Kind, str] | None:
    """The code a player meant by ``text`` (any case, spaces and dashes
    ignored) and its kind, or None if it can be none."""
    code = "".join(text.split()).replace("-", "").upper()
    if any(char not in ALPHABET for char in code):
        return None
    if len(code) == CODE_LENGTH:
        return "link", code
    if len(code) == RECOVERY_LENGTH:
        return "recovery", code
    return None


def normal_code(text: str) -> str | None:
    """The link code a player meant by ``text``, or None if it cannot be one."""
    found = read_code(text)
    return found[1] if found is not None and found[0] == "link" else None


def shown_code(code: str) -> str:
    """A code in groups of four, as the page shows it: ABCD-2345."""
    return "-".join(code[start : start + 4] for start in range(0, len(code), 4))


def new_code(length: int = CODE_LENGTH) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def new_recovery_code() -> str:
    return new_code(RECOVERY_LENGTH)
