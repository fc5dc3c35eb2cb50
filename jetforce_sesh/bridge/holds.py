"""How long each user's programs have held each player's turn: the bound that
keeps a chain of holds from shutting a player out.

One LOOKUP holds a turn for at most a few seconds, but a program can LOOKUP
again the moment its hold ends, from as many connections as it may open, and
the player's own requests would wait behind it for ever. So the bridge counts,
per user (the kernel's word, ``SO_PEERCRED``), per slab and per player, the
seconds of holding within a window that opens at the first hold: past the
budget, that user's requests for that player are refused until the window
closes. A CGI program serving a player holds the turn for milliseconds a
visit; it never comes near a budget of seconds.
"""

from __future__ import annotations

#: Users' holds of players remembered at most; past that, those that held least
#: are forgotten first. A user can hold at most ``window`` seconds per connection
#: per window, so with every connection the caps allow it still fills few
#: entries past a budget: an exhausted budget is never the one forgotten.
MOST_TRACKED = 16384

#: Whose holds are counted together: the user (None: the system did not say),
#: the slab's name and the player's key.
Holder = tuple[int | None, str, bytes]


class HoldBudgets:
    """Seconds of holding per :data:`Holder`, within windows of ``window``."""

    def __init__(self, budget: float, window: float, most: int = MOST_TRACKED) -> None:
        self.budget = budget
        self.window = window
        self.most = most
        #: Per holder, the window's start and the seconds held in it; in the
        #: order the windows opened, so the oldest are forgotten from the front.
        self._windows: dict[Holder, list[float]] = {}

    def __len__(self) -> int:
        return len(self._windows)

    def left(self, holder: Holder, now: float) -> float:
        """Seconds ``holder`` may still hold the turn in its window."""
        found = self._windows.get(holder)
        if found is None or now - found[0] >= self.window:
            return self.budget
        return self.budget - found[1]

    def reopens(self, holder: Holder, now: float) -> float:
        """Seconds until ``holder``'s window closes (0: it is closed)."""
        found = self._windows.get(holder)
        if found is None:
            return 0.0
        return max(0.0, found[0] + self.window - now)

    def charge(self, holder: Holder, since: float, now: float) -> None:
        """``holder`` held the turn from ``since`` to ``now``."""
        found = self._windows.get(holder)
        if found is not None and since - found[0] < self.window:
            found[1] += now - since
            return
        if found is not None:
            del self._windows[holder]  # a new window goes to the back
        elif len(self._windows) >= self.most:
            self._make_room(now)
        self._windows[holder] = [since, now - since]

    def forget_closed(self, now: float) -> None:
        """Forget the windows that have closed (from the oldest, while closed)."""
        windows = self._windows
        while windows:
            holder = next(iter(windows))
            if now - windows[holder][0] < self.window:
                return
            del windows[holder]

    def _make_room(self, now: float) -> None:
        self.forget_closed(now)
        if len(self._windows) < self.most:
            return
        # Keep the half that held longest: a program that looked up many
        # players for an instant each cannot wash out a budget spent.
        kept = sorted(self._windows.items(), key=lambda item: item[1][1])
        self._windows = dict(
            sorted(kept[len(kept) // 2 :], key=lambda item: item[1][0])
        )
