"""A capsule module that raises while importing: --app must say where."""

from __future__ import annotations

SETTINGS: dict[str, str] = {}

colour = SETTINGS["missing"]
