"""Slab settings, checked once at start-up so a bad value never reaches a request."""

from __future__ import annotations

from typing import Literal

import attrs

from jetforce_sesh.errors import ConfigError

OnFull = Literal["evict", "refuse"]

MAX_RECORD_SIZE = 1 << 20
MAX_RECORDS = 1 << 28
ON_FULL_CHOICES: tuple[OnFull, ...] = ("evict", "refuse")


def check_max_records(value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_RECORDS:
        raise ConfigError(
            f"max_records must be a whole number from 1 to {MAX_RECORDS}"
            f" (got {value!r}): use e.g. 10000 (--max-records 10000)"
        )
    return value


def check_record_size(value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_RECORD_SIZE:
        raise ConfigError(
            f"record_size must be a whole number of bytes from 1 to"
            f" {MAX_RECORD_SIZE} (got {value!r}): use e.g. 256 (--record-size 256)"
        )
    return value


def check_idle_timeout(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value < float("inf")
    ):
        raise ConfigError(
            f"idle_timeout must be a number of seconds, 0 or more (got {value!r}):"
            f" use e.g. 86400 (--idle-timeout 86400), or 0 to keep idle records"
        )
    return float(value)


def check_on_full(value: object) -> OnFull:
    if value not in ON_FULL_CHOICES:
        raise ConfigError(
            f"on_full must be 'evict' or 'refuse' (got {value!r}): 'evict' drops"
            f" the least recently used record, 'refuse' turns new players away"
        )
    return value


MAX_QUEUED = 1000


def check_grace(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value <= 3600
    ):
        raise ConfigError(
            f"shutdown grace must be a number of seconds from 0 to 3600 (got"
            f" {value!r}): use e.g. 10 (--shutdown-grace 10)"
        )
    return float(value)


def check_max_queued(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_QUEUED:
        raise ConfigError(
            f"max_queued must be a whole number from 0 to {MAX_QUEUED} (got"
            f" {value!r}): use e.g. 4 (--max-queued 4)"
        )
    return value


@attrs.frozen
class SlabOptions:
    """How big a slab is and what it does when full or idle.

    The launcher's ``--max-records``, ``--record-size``, ``--idle-timeout``,
    ``--on-full`` and ``--max-queued`` build the defaults; a slab declared with its
    own values keeps them. ``max_queued`` is how many requests of one player may
    wait for their turn at the slab while another of theirs holds it.
    """

    max_records: int = attrs.field(default=10_000)
    record_size: int = attrs.field(default=256)
    idle_timeout: float = attrs.field(default=0.0)
    on_full: OnFull = attrs.field(default="evict")
    max_queued: int = attrs.field(default=4)

    def __attrs_post_init__(self) -> None:
        check_max_records(self.max_records)
        check_record_size(self.record_size)
        check_idle_timeout(self.idle_timeout)
        check_on_full(self.on_full)
        check_max_queued(self.max_queued)

    def with_overrides(self, **overrides: object) -> SlabOptions:
        """These options with every override that is not None applied."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return attrs.evolve(self, **given)  # type: ignore[arg-type]
