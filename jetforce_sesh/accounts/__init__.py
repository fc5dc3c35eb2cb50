"""Accounts: several certificates, one player, linked with a one-time code.

A feature on the session core: its records are slabs like any game's, its key
step maps a certificate to its account, and its pages are session routes.
Knows the session core, stores and records; the core knows nothing of it.
Turn it on with :func:`use_accounts`.
"""

from jetforce_sesh.accounts.codes import (
    ALPHABET,
    CODE_LENGTH,
    Guesses,
    code_hash,
    new_code,
    normal_code,
    shown_code,
)
from jetforce_sesh.accounts.keys import AccountKeys
from jetforce_sesh.accounts.pages import (
    ROTATION_WARNING,
    Accounts,
    rotation_note,
    use_accounts,
)
from jetforce_sesh.accounts.records import (
    Account,
    AccountOptions,
    LinkCode,
    Member,
    Revoked,
)

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "ROTATION_WARNING",
    "Account",
    "AccountKeys",
    "AccountOptions",
    "Accounts",
    "Guesses",
    "LinkCode",
    "Member",
    "Revoked",
    "code_hash",
    "new_code",
    "normal_code",
    "rotation_note",
    "shown_code",
    "use_accounts",
]
