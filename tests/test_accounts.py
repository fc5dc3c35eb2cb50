"""The accounts tests' helpers at their 0.2 path, ``tests.test_accounts``.

The reproduction scripts in ``../shared/repro/edges/`` import their capsule
and helpers from here; since 0.3 they live in ``tests/accounts/support.py``.
No tests here: pytest finds none to run twice.
"""

from tests.accounts.support import (
    SWEEP_EVERY,
    accounts,
    app,
    code_from,
    evict_link,
    fingerprint_of,
    link,
    revoke,
    visits,
)

__all__ = [
    "SWEEP_EVERY",
    "accounts",
    "app",
    "code_from",
    "evict_link",
    "fingerprint_of",
    "link",
    "revoke",
    "visits",
]
