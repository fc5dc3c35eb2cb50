"""The bridge's bounds, each a setting with a default that serves CGI programs
well and keeps one misbehaving local client from hurting the capsule's players.

A well-behaved CGI program opens one connection, sends one request at a time,
reads every reply and holds a player's turn for milliseconds: it never comes
near any of these. See docs/reference/bridge.md (Limits) for what each refusal
says, and docs/explanation/bridge.md for why each bound is there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from jetforce_sesh.errors import ConfigError

#: The most connections any setting allows: far past what descriptors allow.
MOST_CONNECTIONS = 65536
#: The most unsent bytes per connection any setting allows.
MOST_UNSENT = 64 * 1024 * 1024
#: The longest hold budget or window any setting allows (a day).
LONGEST = 86400.0


def _count(what: str, flag: str, default: int) -> Callable[[object], int]:
    def check(value: object) -> int:
        if type(value) is not int or not 1 <= value <= MOST_CONNECTIONS:
            raise ConfigError(
                f"{what} must be a whole number from 1 to {MOST_CONNECTIONS} (got"
                f" {value!r}): use e.g. {default} ({flag} {default})"
            )
        return value

    return check


check_max_connections = _count(
    "bridge connections in all", "--bridge-max-connections", 256
)
check_max_per_user = _count("bridge connections per user", "--bridge-max-per-user", 128)
check_max_per_process = _count(
    "bridge connections per process", "--bridge-max-per-process", 8
)


def check_max_unsent(value: object) -> int:
    if type(value) is not int or not 0 <= value <= MOST_UNSENT:
        raise ConfigError(
            f"unsent bytes per bridge connection must be a whole number from 0 to"
            f" {MOST_UNSENT} (got {value!r}): use e.g. 65536 (--bridge-max-unsent"
            f" 65536)"
        )
    return value


def _seconds(what: str, flag: str, default: float) -> Callable[[object], float]:
    def check(value: object) -> float:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0 < value <= LONGEST
        ):
            raise ConfigError(
                f"{what} must be a number of seconds above 0 and at most"
                f" {LONGEST:g} (got {value!r}): use e.g. {default:g} ({flag}"
                f" {default:g})"
            )
        return float(value)

    return check


check_hold_budget = _seconds("the bridge's hold budget", "--bridge-hold-budget", 10.0)
check_hold_window = _seconds("the bridge's hold window", "--bridge-hold-window", 60.0)


def _checked(
    check: Callable[[object], object],
) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def validate(
        instance: object, attribute: attrs.Attribute[Any], value: object
    ) -> None:
        check(value)

    return validate


@attrs.frozen
class BridgeLimits:
    """How much the bridge gives its clients.

    ``max_connections`` connections are served at once, ``max_per_user`` of one
    user's processes and ``max_per_process`` of one process (the socket's peer
    by ``SO_PEERCRED``); a connection past a cap is answered ``N`` and closed.
    A connection stops being read while more than ``max_unsent`` bytes of its
    replies wait to be sent (its client is not reading them). One user's
    programs may hold one player's turn for ``hold_budget`` seconds in all
    within ``hold_window`` seconds of their first hold; past that, their
    requests for that player get ``N`` until the window has passed.
    """

    max_connections: int = attrs.field(
        default=256, validator=_checked(check_max_connections)
    )
    max_per_user: int = attrs.field(default=128, validator=_checked(check_max_per_user))
    max_per_process: int = attrs.field(
        default=8, validator=_checked(check_max_per_process)
    )
    max_unsent: int = attrs.field(default=65536, validator=_checked(check_max_unsent))
    hold_budget: float = attrs.field(
        default=10.0, validator=_checked(check_hold_budget)
    )
    hold_window: float = attrs.field(
        default=60.0, validator=_checked(check_hold_window)
    )

    def __attrs_post_init__(self) -> None:
        if self.hold_budget > self.hold_window:
            raise ConfigError(
                f"the bridge's hold budget ({self.hold_budget:g} s) is longer than"
                f" its window ({self.hold_window:g} s), so it would bound nothing:"
                f" give --bridge-hold-budget at most --bridge-hold-window"
            )
