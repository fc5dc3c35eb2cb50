"""jetforce-sesh: per-certificate session records for Jetforce Gemini capsules.

This module is the capsule author's surface: everything the tutorial and the
how-to guides import. Whoever writes a store imports from
:mod:`jetforce_sesh.stores` instead.

The layers, from the bottom (each imports only from those below it):

- ``errors``, ``options``, ``identity``, ``keys``, ``names``: the base;
- ``records``: attrs classes to bytes and back; ``stores``: bytes under 32-byte
  keys (memory, SQLite, Redis);
- ``session``: slabs, turns, ``@session_route``, the application;
- ``accounts``, ``bridge``, ``server``: features built on the session core;
  ``ops``: running in public (admin pages, health, rate limits);
- ``cli``: the ``jetforce-sesh`` command.

Names load when first used, so that importing this package imports neither
Jetforce nor Twisted's global reactor: a program may install another reactor
first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jetforce_sesh import moved
from jetforce_sesh.version import VERSION

__version__ = VERSION

moved.install()

if TYPE_CHECKING:
    from jetforce_sesh.accounts import Accounts, use_accounts
    from jetforce_sesh.accounts.records import AccountOptions
    from jetforce_sesh.errors import (
        Abort,
        BadKey,
        ConfigError,
        Conflict,
        RecordInvalid,
        RecordTooLarge,
        RecordUnreadable,
        StoreFull,
        StoreNotOpen,
        StoreUnavailable,
        StoreUnsure,
    )
    from jetforce_sesh.identity import (
        BadFingerprint,
        Certificate,
        fingerprint_of_request,
        parse_fingerprint,
    )
    from jetforce_sesh.keys import FingerprintKeys, IPlayerKeys, player_key
    from jetforce_sesh.names import MAX_NAME, clean_name, quoted, skeleton
    from jetforce_sesh.ops.ratelimit import CertificateRateLimiter, ClockedRateLimiter
    from jetforce_sesh.options import SlabOptions
    from jetforce_sesh.records import LayoutCodec, MsgpackCodec, reset
    from jetforce_sesh.server import SessionServer
    from jetforce_sesh.session.application import SessionApplication
    from jetforce_sesh.session.confirm import (
        ask_for,
        ask_yes,
        confirm_path,
        is_confirmed,
        ready,
        said_yes,
        with_token,
    )
    from jetforce_sesh.session.route import SessionRoute
    from jetforce_sesh.session.slab import Slab, SlabStats
    from jetforce_sesh.session.visit import after_save
    from jetforce_sesh.stores.memory import memory_stores
    from jetforce_sesh.stores.redis import RedisStores
    from jetforce_sesh.stores.sqlite import SQLiteStores

#: Public name: the module that defines it.
_HOMES: dict[str, str] = {
    "Abort": "jetforce_sesh.errors",
    "AccountOptions": "jetforce_sesh.accounts",
    "Accounts": "jetforce_sesh.accounts",
    "BadFingerprint": "jetforce_sesh.identity",
    "BadKey": "jetforce_sesh.errors",
    "Certificate": "jetforce_sesh.identity",
    "CertificateRateLimiter": "jetforce_sesh.ops.ratelimit",
    "ClockedRateLimiter": "jetforce_sesh.ops.ratelimit",
    "ConfigError": "jetforce_sesh.errors",
    "Conflict": "jetforce_sesh.errors",
    "FingerprintKeys": "jetforce_sesh.keys",
    "IPlayerKeys": "jetforce_sesh.keys",
    "LayoutCodec": "jetforce_sesh.records",
    "MAX_NAME": "jetforce_sesh.names",
    "MsgpackCodec": "jetforce_sesh.records",
    "RecordInvalid": "jetforce_sesh.errors",
    "RecordTooLarge": "jetforce_sesh.errors",
    "RecordUnreadable": "jetforce_sesh.errors",
    "RedisStores": "jetforce_sesh.stores.redis",
    "SQLiteStores": "jetforce_sesh.stores.sqlite",
    "SessionApplication": "jetforce_sesh.session.application",
    "SessionRoute": "jetforce_sesh.session.route",
    "SessionServer": "jetforce_sesh.server",
    "Slab": "jetforce_sesh.session.slab",
    "SlabOptions": "jetforce_sesh.options",
    "SlabStats": "jetforce_sesh.session.slab",
    "StoreFull": "jetforce_sesh.errors",
    "StoreNotOpen": "jetforce_sesh.errors",
    "StoreUnavailable": "jetforce_sesh.errors",
    "StoreUnsure": "jetforce_sesh.errors",
    "after_save": "jetforce_sesh.session.visit",
    "ask_for": "jetforce_sesh.session.confirm",
    "ask_yes": "jetforce_sesh.session.confirm",
    "confirm_path": "jetforce_sesh.session.confirm",
    "is_confirmed": "jetforce_sesh.session.confirm",
    "ready": "jetforce_sesh.session.confirm",
    "said_yes": "jetforce_sesh.session.confirm",
    "with_token": "jetforce_sesh.session.confirm",
    "clean_name": "jetforce_sesh.names",
    "fingerprint_of_request": "jetforce_sesh.identity",
    "memory_stores": "jetforce_sesh.stores.memory",
    "parse_fingerprint": "jetforce_sesh.identity",
    "player_key": "jetforce_sesh.keys",
    "quoted": "jetforce_sesh.names",
    "reset": "jetforce_sesh.records",
    "skeleton": "jetforce_sesh.names",
    "use_accounts": "jetforce_sesh.accounts",
}

__all__ = [
    "MAX_NAME",
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


def __getattr__(name: str) -> Any:
    if name == "app":
        # The demo capsule, for ``--app jetforce_sesh:app``: the games it serves
        # import this package, so it loads only when named.
        from jetforce_sesh.demo import app

        return app
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(importlib.import_module(home), name)
        globals()[name] = value  # the next lookup finds it at once
        return value
    if ("jetforce_sesh", name) in moved.RENAMED:
        # A store writer's name that 0.2 exported here too.
        return moved.renamed("jetforce_sesh", name)
    raise AttributeError(f"module 'jetforce_sesh' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])
