"""Accounts: several certificates, one player, linked with a one-time code.

A feature on the session core: its records are slabs like any game's, its key
step maps a certificate to its account, and its pages are session routes whose
every action is confirmed at a link of the player's own. Knows the session
core, stores and records; the core knows nothing of it. Turn it on with
:func:`use_accounts`.
"""

from jetforce_sesh.accounts.codes import (
    ALPHABET,
    CODE_LENGTH,
    RECOVERY_LENGTH,
    code_hash,
    new_code,
    new_recovery_code,
    normal_code,
    read_code,
    shown_code,
)
from jetforce_sesh.accounts.keys import AccountKeys
from jetforce_sesh.accounts.limits import Limits, address_key
from jetforce_sesh.accounts.pages import (
    ROTATION_WARNING,
    Accounts,
    rotation_note,
    use_accounts,
)
from jetforce_sesh.accounts.records import (
    MAX_SHOWN_NAME,
    Account,
    AccountOptions,
    LinkCode,
    Member,
    Pending,
    RecoveryCode,
    Revoked,
    Tally,
)
from jetforce_sesh.accounts.revoking import SWEEP_EVERY

__all__ = [
    "ALPHABET",
    "CODE_LENGTH",
    "MAX_SHOWN_NAME",
    "RECOVERY_LENGTH",
    "ROTATION_WARNING",
    "SWEEP_EVERY",
    "Account",
    "AccountKeys",
    "AccountOptions",
    "Accounts",
    "Limits",
    "LinkCode",
    "Member",
    "Pending",
    "RecoveryCode",
    "Revoked",
    "Tally",
    "address_key",
    "code_hash",
    "new_code",
    "new_recovery_code",
    "normal_code",
    "read_code",
    "rotation_note",
    "shown_code",
    "use_accounts",
]
