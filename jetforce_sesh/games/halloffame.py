"""Hall of fame: the best players of number guessing and hangman, by chosen name.

Shows reading across players: the ranking reads every record of the other games'
slabs with ``async for ... in slab.records()`` and looks names up with
``await slab.peek()``, neither of which counts as the other player's visit, and both
of which work on any store. Its own record holds only the display name, chosen at a
prompt only the capsule could have shown the player (``/halloffame/name/<token>``):
a ``/halloffame/name?...`` written on some other capsule names nobody, and the
page says so. It includes
the two games it ranks, so that their slabs are open wherever it runs:
``jetforce-sesh --app jetforce_sesh.games.halloffame:app`` serves all three.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import AsyncIterable, Callable, Iterable
from typing import TypeVar

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred

from jetforce_sesh import (
    MAX_NAME,
    SessionApplication,
    clean_name,
    confirm_path,
    is_confirmed,
    player_key,
    quoted,
    ready,
    skeleton,
    with_token,
)
from jetforce_sesh.games import guess, hangman

#: How many players each table shows.
TOP = 10

R = TypeVar("R")

app = SessionApplication(
    "Hall of fame",
    entry="/halloffame",
    description="the best players of number guessing and hangman",
)
app.include(guess.app)
app.include(hangman.app)


@attrs.define
class FameRecord:
    name: str = ""  # already cleaned by clean_name(); "" until the player picks one


# A 32-character name of 4-byte characters encodes to 137 bytes.
slab = app.slab(FameRecord, record_size=192)


async def top(
    records: AsyncIterable[tuple[bytes, R]],
    ranks: Callable[[R], bool],
    order: Callable[[R], tuple[int, ...]],
) -> list[tuple[bytes, R]]:
    """The best :data:`TOP` of ``records`` that ``ranks``, lowest ``order`` first.

    Ties go to the lower key, so equal scores keep a stable order. Only a few
    times :data:`TOP` candidates are held at once, however many records there are.
    """

    def best(candidates: Iterable[tuple[bytes, R]]) -> list[tuple[bytes, R]]:
        return heapq.nsmallest(
            TOP, candidates, key=lambda item: (*order(item[1]), item[0])
        )

    kept: list[tuple[bytes, R]] = []
    async for key, record in records:
        if ranks(record):
            kept.append((key, record))
            if len(kept) >= 8 * TOP:
                kept = best(kept)
    return best(kept)


def _count(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def _anonymous(fingerprint: bytes) -> str:
    # A short fingerprint prefix tells two unnamed players apart.
    return f"anonymous {fingerprint[:3].hex()}"


#: What marks the viewer's own rows; no chosen name may hold it.
YOU = "(you)"


async def display_names(
    viewer: bytes, record: FameRecord, keys: Iterable[bytes]
) -> dict[bytes, str]:
    """The name to show for each of ``keys``.

    The viewer's comes from their record in hand (it may have changed in this
    very request) and is marked :data:`YOU`, which names cannot hold; everyone
    else's from the slab. Names need not be unique: players who share one are
    told apart by a short tag of their key, so nobody can pass for somebody else.
    """
    chosen: dict[bytes, str] = {}
    for key in dict.fromkeys(keys):
        if key == viewer:
            chosen[key] = record.name
        else:
            other = await slab.peek(key)
            chosen[key] = other.name if other else ""
    counts = Counter(skeleton(name) for name in chosen.values() if name)
    names = {}
    for key, name in chosen.items():
        if not name:
            shown = _anonymous(key)
        elif counts[skeleton(name)] > 1:
            shown = f"{name} #{key[:3].hex()}"
        else:
            shown = name
        names[key] = f"{shown} {YOU}" if key == viewer else shown
    return names


def guess_order(record: guess.GuessRecord) -> tuple[int, ...]:
    """Number guessing's order, as the ranking's: fewest tries per game, then
    more games (the tables tell ties by it)."""
    return (round(1000 * record.average()), -record.games)


def hangman_order(record: hangman.HangmanRecord) -> tuple[int, ...]:
    """Hangman's order, as the ranking's: most wins, then fewest losses."""
    return (-record.wins, record.losses)


@attrs.define
class Standings:
    """The leaders of both games, read at most once every :data:`REFRESH`
    seconds.

    Ranking decodes every record of both games: 2,000 records take over ten
    milliseconds of the one reactor thread, and certificates are free, so a
    ranking per view would let anyone keep the server busy with nothing else.
    A view shows the standings read up to a second ago instead. While they are
    read again (in slices, between which other requests are served), views show
    the previous ones; only the first views after the stores open wait for the
    first reading, one reading for all of them.
    """

    guess: list[tuple[bytes, guess.GuessRecord]] = attrs.Factory(list)
    hangman: list[tuple[bytes, hangman.HangmanRecord]] = attrs.Factory(list)
    taken_at: float = float("-inf")
    # The open slabs the ranking was read from: a reopened capsule starts afresh.
    taken_from: tuple[object, object] = (None, None)
    #: Views waiting for the reading under way (None: none is under way).
    waiting: list[Deferred[None]] | None = None
    #: Readings made so far (for the tests and the stall benchmark).
    readings: int = 0

    def _stores(self) -> tuple[object, object]:
        return (guess.slab.opened, hangman.slab.opened)

    def _ours(self) -> bool:
        """Whether the standings held were read from the stores open now."""
        stores = self._stores()
        return stores[0] is self.taken_from[0] and stores[1] is self.taken_from[1]

    async def current(self) -> Standings:
        while not (self._ours() and slab.now() - self.taken_at < REFRESH):
            if self.waiting is None:
                await self._read()
                break
            if self._ours():
                break  # being read again: the previous reading meanwhile
            # The first reading of these stores, under way: wait for it (on a
            # waiter of this view's own, so that a view cut off by its time-out
            # leaves the reading to the others), then look again.
            waiter: Deferred[None] = Deferred()
            self.waiting.append(waiter)
            await waiter
        return self

    async def _read(self) -> None:
        self.waiting = []
        try:
            stores = self._stores()
            self.guess = await top(
                guess.slab.records(),
                lambda r: r.games >= GUESS_MIN_GAMES,
                lambda r: (round(1000 * r.average()), -r.games),
            )
            self.hangman = await top(
                hangman.slab.records(),
                lambda r: r.wins > 0,
                lambda r: (-r.wins, r.losses),
            )
            self.taken_at, self.taken_from = slab.now(), stores
            self.readings += 1
        finally:
            # Done, failed or cut off: the views waiting look again (and one
            # reads, if this reading came to nothing).
            waiting, self.waiting = self.waiting, None
            for waiter in waiting:
                if not waiter.called:
                    waiter.callback(None)


def ranks(orders: list[tuple[int, ...]]) -> list[int]:
    """Competition ranks of an ordered list: equal scores share the first
    one's rank, and the next score skips as many (1, 2, 2, 4)."""
    found: list[int] = []
    for number, order in enumerate(orders, start=1):
        found.append(found[-1] if found and order == orders[number - 2] else number)
    return found


#: Games a player of number guessing must have finished or given up to be ranked:
#: one lucky first guess (one in a hundred, on as many certificates as anyone
#: cares to make) must not top the table.
GUESS_MIN_GAMES = 5
#: Seconds a ranking is shown before the records are read again.
REFRESH = 1.0
standings = Standings()


def _guess_table(
    leaders: list[tuple[bytes, guess.GuessRecord]], names: dict[bytes, str]
) -> list[str]:
    places = ranks([guess_order(r) for _, r in leaders])
    rows = [
        f"* {rank}. {names[key]}: {r.average():.1f} tries a game over"
        f" {_count(r.games, 'game', 'games')}"
        for rank, (key, r) in zip(places, leaders, strict=True)
    ]
    return [
        "## Number guessing: fewest tries per game",
        "",
        f"Players with {GUESS_MIN_GAMES} games or more; a game given up counts as"
        f" {guess.FORFEIT_TRIES} tries.",
        "",
        *(rows or [f"Nobody has played {GUESS_MIN_GAMES} games yet: be the first."]),
        "=> /guess Play number guessing",
    ]


def _hangman_table(
    leaders: list[tuple[bytes, hangman.HangmanRecord]], names: dict[bytes, str]
) -> list[str]:
    places = ranks([hangman_order(r) for _, r in leaders])
    rows = [
        f"* {rank}. {names[key]}: {_count(r.wins, 'win', 'wins')},"
        f" {_count(r.losses, 'loss', 'losses')}"
        for rank, (key, r) in zip(places, leaders, strict=True)
    ]
    return [
        "## Hangman: most wins",
        "",
        *(rows or ["Nobody has won at hangman yet: be the first."]),
        "=> /hangman Play hangman",
    ]


async def _page(request: Request, record: FameRecord, note: str = "") -> Response:
    viewer = player_key(request)
    leaders = await standings.current()
    names = await display_names(
        viewer, record, [key for key, _ in leaders.guess + leaders.hangman]
    )
    # Made for this player and the name they have: good until it changes.
    at = confirm_path(request, "/halloffame/name", record)
    if record.name:
        you = f"You appear as “{record.name}”."
        change = f"=> {at} Change your name"
    else:
        you = f"You appear as {_anonymous(viewer)} until you choose a name."
        change = f"=> {at} Choose your name"
    lines = [
        "# Hall of fame",
        "",
        "The best players of the capsule's games, under the names they chose.",
        "",
        *([note, ""] if note else []),
        you,
        change,
        "",
        *_guess_table(leaders.guess, names),
        "",
        *_hangman_table(leaders.hangman, names),
        "",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


#: What a name from a link the page did not give this player says.
NOT_YOURS = (
    "Nothing was done: that link came from an older page, another device or"
    " somewhere else, not from this page as it is now."
)


def _ask(problem: str = "") -> Response:
    wanted = f"a display name of at most {MAX_NAME} characters"
    if problem:
        return Response(Status.INPUT, f"{problem}: choose {wanted}")
    return Response(Status.INPUT, f"Choose {wanted}")


@app.session_route("/halloffame", record=FameRecord)
async def show(request: Request, record: FameRecord) -> Response:
    await ready()  # the secret the page's links are made under
    return await _page(request, record)


@app.session_route(with_token("/halloffame/name"), record=FameRecord)
async def choose_name(
    request: Request, record: FameRecord, token: str | None = None
) -> Response:
    await ready()
    # The name is public: only the player's own prompt sets it. A name in a
    # link from elsewhere, or typed at the prompt of an older page, names
    # nobody, and the page says so.
    if not is_confirmed(request, token, "/halloffame/name", record):
        return await _page(request, record, NOT_YOURS)
    answer = request.query.strip()
    if not answer:
        return _ask()
    name = clean_name(answer)
    if not name:
        return _ask(
            f"{quoted(answer)} has nothing left once line breaks and markup"
            " are taken out"
        )
    if len(name) > MAX_NAME:
        return _ask(f"That name is {len(name)} characters long")
    if YOU in skeleton(name):
        return _ask(f"A name cannot hold “{YOU}”, which marks your own rows")
    if "#" in skeleton(name) or skeleton(name).startswith("anonymous"):
        return _ask(
            "A name cannot hold # nor start with “anonymous”: those tell players apart"
        )
    record.name = name
    note = f"Your name is now “{name}”."
    if name != answer:
        note += (
            " Line breaks, control characters, leading markup and extra spaces are"
            " taken out, and wide or styled letters written plain."
        )
    return await _page(request, record, note)
