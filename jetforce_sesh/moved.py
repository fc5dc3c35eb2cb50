"""The module paths of 0.2 that moved in 0.3, kept importing until 0.4.

0.3 put the flat modules into subpackages by layer (``docs/changelog.md`` says
what went where). Capsule code and scripts written against 0.2 import the old
paths, so each still imports, with a :class:`DeprecationWarning` naming the new
one: the old path is a module of its own that hands every attribute on to the
new module, and the few names that were renamed on the way to their new name.

Only the package's ``__init__`` uses this module; nothing here is imported by
the code that moved, which knows only its new paths.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from typing import Any

#: Old module path: the module that holds its names now.
MOVED: dict[str, str] = {
    "jetforce_sesh.adhoc": "jetforce_sesh.cli.adhoc",
    "jetforce_sesh.admin": "jetforce_sesh.ops.admin",
    "jetforce_sesh.answers": "jetforce_sesh.session.answers",
    "jetforce_sesh.application": "jetforce_sesh.session.application",
    "jetforce_sesh.banner": "jetforce_sesh.server.banner",
    "jetforce_sesh.bridgesocket": "jetforce_sesh.bridge.socket",
    "jetforce_sesh.checks": "jetforce_sesh.cli.checks",
    "jetforce_sesh.codec": "jetforce_sesh.records.msgpack",
    "jetforce_sesh.embedding": "jetforce_sesh.session.autostart",
    "jetforce_sesh.files": "jetforce_sesh.server.files",
    "jetforce_sesh.health": "jetforce_sesh.ops.health",
    "jetforce_sesh.launcher": "jetforce_sesh.cli.main",
    "jetforce_sesh.layout": "jetforce_sesh.records.layout",
    "jetforce_sesh.memory": "jetforce_sesh.stores.memory",
    "jetforce_sesh.operations": "jetforce_sesh.cli.operations",
    "jetforce_sesh.persist": "jetforce_sesh.stores.sqlite",
    "jetforce_sesh.protocol": "jetforce_sesh.server.protocol",
    "jetforce_sesh.ratelimit": "jetforce_sesh.ops.ratelimit",
    "jetforce_sesh.redislink": "jetforce_sesh.stores.redis.link",
    "jetforce_sesh.redisscripts": "jetforce_sesh.stores.redis.scripts",
    "jetforce_sesh.redisstore": "jetforce_sesh.stores.redis.store",
    "jetforce_sesh.redisurl": "jetforce_sesh.stores.redis.url",
    "jetforce_sesh.route": "jetforce_sesh.session.route",
    "jetforce_sesh.slab": "jetforce_sesh.session.slab",
    "jetforce_sesh.stats": "jetforce_sesh.server.stats",
    "jetforce_sesh.store": "jetforce_sesh.stores",
    "jetforce_sesh.transfer": "jetforce_sesh.cli.transfer",
    "jetforce_sesh.turns": "jetforce_sesh.session.turns",
}

#: Names that left their old module for another, or took a new name:
#: (old module path, old name) -> (new module path, new name).
RENAMED: dict[tuple[str, str], tuple[str, str]] = {
    ("jetforce_sesh.codec", "Codec"): ("jetforce_sesh.records.codec", "Codec"),
    ("jetforce_sesh.codec", "reset"): ("jetforce_sesh.records.codec", "reset"),
    ("jetforce_sesh.store", "AnswersAtOnce"): (
        "jetforce_sesh.stores.support",
        "DeferredMethods",
    ),
    ("jetforce_sesh.store", "TellsHooks"): (
        "jetforce_sesh.stores.support",
        "HookMethods",
    ),
    ("jetforce_sesh.persist", "PersistentStore"): (
        "jetforce_sesh.stores.sqlite",
        "SQLiteStore",
    ),
    ("jetforce_sesh.persist", "PersistentStores"): (
        "jetforce_sesh.stores.sqlite",
        "SQLiteStores",
    ),
    **{
        ("jetforce_sesh.persist", name): (f"jetforce_sesh.stores.sqlite.{home}", name)
        for home, names in (
            (
                "file",
                (
                    "BUSY_TIMEOUT",
                    "FILE_FORMAT",
                    "UPSERT",
                    "WAL_LIMIT",
                    "Row",
                    "Sync",
                    "checksum",
                    "connect",
                    "meta",
                    "transaction",
                    "whole",
                ),
            ),
            (
                "checkpoints",
                ("CATCH_UP_PASSES", "CHECKPOINT_EVERY", "PASS_PAUSE", "Checkpoints"),
            ),
            ("store", ("FLUSH_EVERY", "FLUSH_SLICE", "READ_BATCH", "records_text")),
        )
        for name in names
    },
    **{
        ("jetforce_sesh", name): ("jetforce_sesh.stores", name)
        for name in (
            "ABSENT",
            "ANY_VERSION",
            "IImmediateSessionStore",
            "ISessionStore",
            "MemoryStore",
            "RecordPage",
            "RedisStore",
            "StateDirectory",
            "StoreSpec",
            "StoreStats",
            "Stored",
            "StoredRecord",
        )
    },
    ("jetforce_sesh", "PersistentStore"): ("jetforce_sesh.stores", "SQLiteStore"),
    ("jetforce_sesh", "PersistentStores"): ("jetforce_sesh.stores", "SQLiteStores"),
    ("jetforce_sesh.slab", "Opened"): ("jetforce_sesh.session.slab", "OpenSlab"),
    **{
        ("jetforce_sesh.route", name): ("jetforce_sesh.session.visit", name)
        for name in ("ATTEMPTS", "ENVIRON_VISIT", "STORE_TIMEOUT")
    },
}


def renamed(module: str, name: str) -> Any:
    """The object ``module.name`` of 0.2 is now, with a DeprecationWarning;
    AttributeError if ``name`` was never renamed there."""
    try:
        new_module, new_name = RENAMED[module, name]
    except KeyError:
        raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
    warnings.warn(
        f"{module}.{name} is {new_module}.{new_name} since jetforce-sesh 0.3;"
        f" the old name goes in 0.4",
        DeprecationWarning,
        # Past this function and the module's __getattr__: the line that
        # named the old name (the import system's own frames are skipped).
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), new_name)


class OldPath(types.ModuleType):
    """A module path of 0.2: every attribute is the new module's."""

    def __init__(self, name: str, new: types.ModuleType) -> None:
        super().__init__(name, f"Moved to {new.__name__}.")
        self.__new_module = new

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self.__new_module, name)
        except AttributeError:
            return renamed(self.__name__, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self.__new_module)) | set(super().__dir__()))


class MovedModules:
    """A finder and loader for the paths in :data:`MOVED` (after every other
    finder, so a real module of that name would win)."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: types.ModuleType | None = None,
    ) -> ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return ModuleSpec(fullname, self)  # type: ignore[arg-type]

    def create_module(self, spec: ModuleSpec) -> types.ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"module {spec.name} is {new} since jetforce-sesh 0.3; the old path"
            f" goes in 0.4",
            DeprecationWarning,
            # The line that imported the old path: the import system's own
            # frames in between are skipped by warnings itself.
            stacklevel=2,
        )
        return OldPath(spec.name, importlib.import_module(new))

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def install() -> None:
    """Let the old paths import (once per interpreter)."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
