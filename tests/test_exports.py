"""The public surfaces, by audience, and the 0.2 paths that still import.

``jetforce_sesh`` is what a capsule author imports (the tutorial and how-tos use
nothing else); ``jetforce_sesh.stores`` is what a store writer imports. Both
lists are pinned here: a name added or dropped is a decision, made in this
file and in the changelog.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import attrs
import pytest

import jetforce_sesh
import jetforce_sesh.stores
from jetforce_sesh import moved

CAPSULE_AUTHORS = [
    "Abort",
    "AccountOptions",
    "Accounts",
    "BadFingerprint",
    "BadKey",
    "Certificate",
    "CertificateRateLimiter",
    "ClockedRateLimiter",
    "ConfigError",
    "Conflict",
    "FingerprintKeys",
    "IPlayerKeys",
    "LayoutCodec",
    "MAX_NAME",
    "MsgpackCodec",
    "RecordInvalid",
    "RecordTooLarge",
    "RecordUnreadable",
    "RedisStores",
    "SQLiteStores",
    "SessionApplication",
    "SessionRoute",
    "SessionServer",
    "Slab",
    "SlabOptions",
    "SlabStats",
    "StoreFull",
    "StoreNotOpen",
    "StoreUnavailable",
    "StoreUnsure",
    "after_save",
    "app",
    "ask_for",
    "ask_yes",
    "clean_name",
    "confirm_path",
    "fingerprint_of_request",
    "is_confirmed",
    "memory_stores",
    "parse_fingerprint",
    "player_key",
    "quoted",
    "ready",
    "reset",
    "said_yes",
    "skeleton",
    "use_accounts",
    "with_token",
]

STORE_WRITERS = [
    "ABSENT",
    "ANY_VERSION",
    "DeferredMethods",
    "Hook",
    "HookMethods",
    "Hooks",
    "IImmediateSessionStore",
    "ISessionStore",
    "IdleSweep",
    "KEY_SIZE",
    "MAX_VERSION",
    "MemoryStore",
    "RecordPage",
    "RedisStore",
    "RedisStores",
    "SQLiteStore",
    "SQLiteStores",
    "StateDirectory",
    "StoreFactory",
    "StoreSpec",
    "StoreStats",
    "Stored",
    "StoredRecord",
    "check_data",
    "check_key",
    "conflict",
    "memory_stores",
    "refused",
]


def test_capsule_authors_import_these_names_from_the_package() -> None:
    assert sorted(CAPSULE_AUTHORS) == sorted(jetforce_sesh.__all__)
    for name in CAPSULE_AUTHORS:
        assert getattr(jetforce_sesh, name) is not None, name


def test_store_writers_import_these_names_from_the_stores() -> None:
    assert sorted(STORE_WRITERS) == sorted(jetforce_sesh.stores.__all__)
    for name in STORE_WRITERS:
        assert getattr(jetforce_sesh.stores, name) is not None, name


def run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == result.returncode, result.stderr
    return result.stdout


def test_importing_the_package_imports_neither_jetforce_nor_a_reactor() -> None:
    """So a program can install the reactor it wants (asyncio's, say) first."""
    assert "False False\n" == run(
        "import sys, jetforce_sesh;"
        " print('twisted.internet.reactor' in sys.modules,"
        " 'jetforce' in sys.modules)"
    )


@pytest.mark.parametrize(
    "module",
    [
        "jetforce_sesh.errors",
        "jetforce_sesh.identity",
        "jetforce_sesh.keys",
        "jetforce_sesh.names",
        "jetforce_sesh.options",
        "jetforce_sesh.records",
        "jetforce_sesh.stores",
    ],
)
def test_the_base_records_and_stores_know_nothing_of_jetforce(module: str) -> None:
    assert "False False\n" == run(
        f"import sys, {module};"
        " print('twisted.internet.reactor' in sys.modules,"
        " 'jetforce' in sys.modules)"
    )


@pytest.mark.parametrize("old", sorted(moved.MOVED))
def test_each_path_of_0_2_imports_with_a_warning_naming_the_new_one(old: str) -> None:
    new = moved.MOVED[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning) as caught:
        __import__(old)
    module = sys.modules[old]
    assert [
        f"module {old} is {new} since jetforce-sesh 0.3; the old path goes in 0.4"
    ] == [str(warning.message) for warning in caught]
    # The warning points at the line that imported the old path.
    assert __file__ == caught[0].filename
    target = importlib.import_module(new)
    public = [name for name in vars(target) if not name.startswith("__")]
    assert all(getattr(module, name) is getattr(target, name) for name in public)


@pytest.mark.parametrize("old", sorted(moved.RENAMED), ids=".".join)
def test_each_renamed_name_of_0_2_still_resolves_with_a_warning(
    old: tuple[str, str],
) -> None:
    module_name, name = old
    new_module, new_name = moved.RENAMED[old]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module(module_name)
    with pytest.warns(DeprecationWarning) as caught:
        value = getattr(module, name)
    assert [
        f"{module_name}.{name} is {new_module}.{new_name} since jetforce-sesh 0.3;"
        " the old name goes in 0.4"
    ] == [str(warning.message) for warning in caught]
    assert getattr(importlib.import_module(new_module), new_name) is value


def test_names_that_are_no_ones_say_so() -> None:
    with pytest.raises(AttributeError) as raised:
        jetforce_sesh.NoSuchThing  # noqa: B018
    assert "module 'jetforce_sesh' has no attribute 'NoSuchThing'" == str(raised.value)


def test_the_spellings_of_0_2_still_work_with_a_warning() -> None:
    """app.use_accounts(), slab.serving and slab.opened_clock() of 0.2."""
    from twisted.internet.task import Clock

    from jetforce_sesh import Accounts, SessionApplication

    @attrs.define
    class Old:
        count: int = 0

    app = SessionApplication("Old")
    slab = app.slab(Old)
    with pytest.warns(DeprecationWarning) as caught:
        accounts = app.use_accounts()
    assert isinstance(accounts, Accounts)
    assert accounts.keys is app.keys
    clock = Clock()
    app.open(clock)
    with pytest.warns(DeprecationWarning) as more:
        assert slab.opened is slab.serving
        assert clock is slab.opened_clock()
    assert [
        "app.use_accounts() is jetforce_sesh.use_accounts(app) since"
        " jetforce-sesh 0.3; the method goes in 0.4",
        "slab.serving is slab.opened since jetforce-sesh 0.3; the old name goes in 0.4",
        "slab.opened_clock() is slab.clock since jetforce-sesh 0.3; the old name"
        " goes in 0.4",
    ] == [str(warning.message) for warning in [*caught, *more]]
