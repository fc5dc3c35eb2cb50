"""What the server says at start-up: its games, their size, and where to go.

Written for the capsule's owner, in their words: players and megabytes, not slabs
and slots; and last, the address to open, which works as printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jetforce_sesh.options import SlabOptions
from jetforce_sesh.session.slab import Slab


def size(count: int) -> str:
    """Bytes as a person reads them: 356 bytes, 1.4 MiB."""
    if count < 1 << 10:
        return f"{count} bytes"
    if count < 1 << 20:
        return f"{count / (1 << 10):.1f} KiB"
    if count < 1 << 30:
        return f"{count / (1 << 20):.1f} MiB"
    return f"{count / (1 << 30):.1f} GiB"


def duration(seconds: float) -> str:
    """A length of time in its largest whole unit: 30 days, 90 minutes, 45 s."""
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length and seconds % length == 0:
            count = int(seconds // length)
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds:g} s"


def policy(options: SlabOptions, unit: str = "players") -> str:
    """What happens when a game is full, and to players who stay away; for a
    slab of something else (an account's links, codes), in its own words."""
    if unit != "players":
        full = (
            f"the {unit} unused longest make room"
            if options.on_full == "evict"
            else f"new {unit} are refused"
        )
        away = (
            f"{unit} unused for {duration(options.idle_timeout)} are forgotten"
            if options.idle_timeout
            else "never forgotten for being unused"
        )
        return f"when full, {full}; {away}"
    full = (
        "the player away longest makes room"
        if options.on_full == "evict"
        else "new players are turned away (41)"
    )
    away = (
        f"players away {duration(options.idle_timeout)} are forgotten"
        if options.idle_timeout
        else "players are never forgotten for being away"
    )
    return f"when a game is full, {full}; {away}"


def game_line(slab: Slab[Any], defaults: SlabOptions) -> str:
    """One line per game: its name, how many players it keeps, its memory."""
    options = slab.options
    reserved = getattr(slab.store, "reserved_bytes", None)
    where = f", {size(reserved)}" if reserved is not None else ""
    # Units are plural ("players", "codes"): a slab of one says it in the singular.
    unit = slab.unit.removesuffix("s") if options.max_records == 1 else slab.unit
    line = f"  {slab.title or slab.name}: up to {options.max_records:,} {unit}{where}"
    kept = (options.on_full, options.idle_timeout)
    if kept != (defaults.on_full, defaults.idle_timeout):
        line += f" ({policy(options, slab.unit)})"
    return line


def banner(slabs: Sequence[Slab[Any]], defaults: SlabOptions) -> list[str]:
    """The games and their totals, as the server prints them at start-up."""
    if not slabs:
        return []
    reserved = [getattr(slab.store, "reserved_bytes", None) for slab in slabs]
    known = [r for r in reserved if r is not None]
    # Stores that reserve nothing here (Redis) have no memory to report.
    held = f", {size(sum(known))} reserved" if known else ""
    players = sum(slab.options.max_records for slab in slabs)
    count = sum(slab.unit == "players" for slab in slabs)
    games = f"{count} game{'' if count == 1 else 's'}"
    if count < len(slabs):
        games += f" and {len(slabs) - count} more slab{'s' * (len(slabs) - count > 1)}"
    return [
        "Games and the players' records they keep:",
        *(game_line(slab, defaults) for slab in slabs),
        f"In all: {games}, up to {players:,} records{held}.",
        policy(defaults).capitalize() + ".",
    ]


def workers_line(pids: Sequence[int]) -> str:
    """The workers of ``--workers``, as the supervisor prints them once all serve."""
    shown = ", ".join(str(pid) for pid in pids)
    return f"{len(pids)} worker processes serve this port (pids {shown})."


def address_line(url: str, tls: bool = True) -> str:
    if not tls:
        # Players reach the capsule through the proxy in front, which ends TLS.
        return f"Serving {url} without TLS: players connect through your TLS proxy."
    return f"Open {url} in a Gemini client, with a client certificate."
