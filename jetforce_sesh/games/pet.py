"""A pet that gets hungry and bored as real time passes, and falls ill if neglected.

Nothing ticks per pet. The record keeps the levels as they were at ``updated``;
every request first brings them up to ``slab.now()`` with :func:`catch_up`, which
also works out exactly when, in between, the pet fell ill or got better. A
periodic census (one ``LoopingCall`` for all pets, on the slab's clock) shows the
other way to use time: reading every record without changing any, with
``async for ... in slab.records()``, which works on any store.

Feeding, playing and naming are done at links only the capsule could have shown
this player, for the pet as the page showed it (:func:`moment`): a
``/pet/feed`` or ``/pet/name?Rex`` written on some other capsule does nothing.
Looking at the pet (``/pet``) is free, and the first look hatches it. Run it
alone with ``jetforce-sesh --app jetforce_sesh.games.pet:app``.
"""

from __future__ import annotations

import math

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from jetforce_sesh import (
    SessionApplication,
    after_save,
    ask_for,
    confirm_path,
    is_confirmed,
    ready,
    with_token,
)

_log = Logger()

app = SessionApplication(
    "Pet",
    entry="/pet",
    description="a small creature that needs feeding and play, in real time",
)

HOUR = 3600.0
# Levels run from 0 to FULL. From 0, unfed it is hungry in 2 h and ill in 4 h;
# left alone it is bored in 2.5 h and ill in 5 h.
HUNGER_RATE = 25 / HOUR
BOREDOM_RATE = 20 / HOUR
START_LEVEL = 30.0
FULL = 100.0  # a level this high makes the pet ill
UPSET = 50.0  # at or above this it is hungry (or bored), not content
HAPPY = 20.0  # both below this: happy
WARN = 80.0
MEAL = 35.0
GAME = 35.0
GAME_HUNGER = 10.0  # playing works up an appetite
REFUSE_BELOW = 10.0  # not hungry (or tired of playing) below this
RECOVERY = 30 * 60.0  # seconds an ill pet must stay content to get better
NAME_MAX = 20
CENSUS_EVERY = 60.0


@attrs.define
class Pet:
    name: str = ""
    born: float | None = None  # None until the first visit hatches it
    updated: float = 0.0  # when hunger and boredom were last brought up to date
    hunger: float = START_LEVEL
    boredom: float = START_LEVEL
    ill: bool = False
    content_since: float | None = None  # both levels below UPSET since then
    meals: int = 0
    games: int = 0
    illnesses: int = 0


# The defaults take 109 bytes; the longest name (20 four-byte characters) and
# counters in the trillions take 230. tests/games/test_pet.py checks that worst case.
slab = app.slab(Pet, record_size=320)


# -- time ---------------------------------------------------------------------


def _seconds_to(level: float, rate: float, target: float) -> float:
    """Seconds until ``level``, rising at ``rate``, reaches ``target`` (0 if it has)."""
    return max(0.0, (target - level) / rate)


def catch_up(pet: Pet, now: float) -> None:
    """Bring ``pet`` from ``pet.updated`` to ``now``: levels, illness, recovery.

    Between two requests the levels only rise, so the moments they cross UPSET and
    FULL can be computed, and the order of events is fixed: an ill pet that was
    content gets better (if it stayed content long enough) before it could get
    upset again, and falls ill again only after that.
    """
    start = pet.updated
    elapsed = max(0.0, now - start)
    upset_at = start + min(
        _seconds_to(pet.hunger, HUNGER_RATE, UPSET),
        _seconds_to(pet.boredom, BOREDOM_RATE, UPSET),
    )
    ill_at = start + min(
        _seconds_to(pet.hunger, HUNGER_RATE, FULL),
        _seconds_to(pet.boredom, BOREDOM_RATE, FULL),
    )
    content_since = pet.content_since
    if pet.ill and content_since is not None:
        # Well again only if it stayed content for the whole RECOVERY.
        pet.ill = content_since + RECOVERY > min(now, upset_at)
    if not pet.ill and ill_at <= now:
        pet.ill = True
        pet.illnesses += 1
    if upset_at <= now:
        pet.content_since = None
    pet.hunger = min(FULL, pet.hunger + HUNGER_RATE * elapsed)
    pet.boredom = min(FULL, pet.boredom + BOREDOM_RATE * elapsed)
    # A clock stepped back must not make the same interval count twice later.
    pet.updated = max(start, now)


def settle(pet: Pet, now: float) -> None:
    """After an action changed the levels: start or stop the content spell."""
    if pet.hunger >= UPSET or pet.boredom >= UPSET:
        pet.content_since = None
    elif pet.content_since is None:
        pet.content_since = now


def hatch(pet: Pet, now: float) -> None:
    pet.born = pet.updated = now
    settle(pet, now)


# -- the census: one periodic task over every pet --------------------------------


@attrs.define
class Census:
    """How many pets there are and how many are ill, counted every minute."""

    pets: int = 0
    ill: int = 0
    #: Pets hatched (and kept) since the last count: counted on the next one.
    hatched: int = 0
    loop: LoopingCall | None = None

    def start(self, clock: IReactorTime) -> None:
        self.stop()  # opened again without a close: keep a single loop
        # A LoopingCall waits for the Deferred a count returns before the next.
        self.loop = LoopingCall(self._tick)
        self.loop.clock = clock
        self.loop.start(CENSUS_EVERY, now=True)

    def stop(self) -> None:
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        self.loop = None

    def _tick(self) -> Deferred[None]:
        counting = Deferred.fromCoroutine(self.count())
        # A count that fails is logged; the census goes on at the next tick.
        counting.addErrback(lambda failure: _log.failure("census failed", failure))
        return counting

    async def count(self) -> None:
        now = slab.now()
        pets = ill = 0
        # records() hands out fresh copies: catching them up changes no record.
        async for _, pet in slab.records():
            if pet.born is None:
                continue
            catch_up(pet, now)
            pets += 1
            ill += 1 if pet.ill else 0
        self.pets, self.ill, self.hatched = pets, ill, 0

    def hatch(self) -> None:
        """A pet hatched and was kept: count it before the next census does."""
        self.hatched += 1


census = Census()
app.when_opened(census.start)
app.when_closed(census.stop)


# -- reading what the player sent -------------------------------------------------


def check_name(text: str) -> str | None:
    """What is wrong with ``text`` as a pet's name, or None if it will do."""
    name = text.strip()
    if not name:
        return "A name cannot be empty: what will you call your pet?"
    if len(name) > NAME_MAX:
        return (
            f"That name is {len(name)} characters long; the most is {NAME_MAX}:"
            f" try a shorter name"
        )
    if not name.isprintable():
        return "A name cannot hold control or invisible characters: try another"
    if name.startswith(("=>", "#", "* ", ">", "```")):
        return "A name cannot start with a gemtext marker (=> # * > ```): try another"
    return None


# -- pages --------------------------------------------------------------------


def counted(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def ago(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return "just now"
    if minutes < 120:
        return counted(minutes, "minute") + " ago"
    hours = minutes // 60
    if hours < 48:
        return f"{hours} hours ago"
    return f"{hours // 24} days ago"


def mood(pet: Pet) -> tuple[str, str]:
    """(face, words) for how ``pet`` is now."""
    if pet.ill:
        return "(x_x)", "is ill"
    if pet.hunger < HAPPY and pet.boredom < HAPPY:
        return "(^_^)", "is happy"
    needs = []
    if pet.hunger >= UPSET:
        needs.append("starving" if pet.hunger >= WARN else "hungry")
    if pet.boredom >= UPSET:
        needs.append("very bored" if pet.boredom >= WARN else "bored")
    if needs:
        return "(>_<)", "is " + " and ".join(needs)
    return "(o_o)", "is content"


def bar(label: str, level: float) -> str:
    filled = round(level / 10)
    return f"{label:<8}[{'#' * filled}{'.' * (10 - filled)}] {round(level):>3}"


def advice(pet: Pet, now: float) -> list[str]:
    if pet.ill:
        if pet.content_since is None:
            return [
                "It gets better once it has been neither hungry nor bored for"
                f" {RECOVERY / 60:.0f} minutes. Feed it and play with it."
            ]
        left = math.ceil((pet.content_since + RECOVERY - now) / 60)
        return [
            "It is comfortable now: keep it so and it should be well in"
            f" {counted(left, 'minute')}."
        ]
    if pet.hunger >= WARN or pet.boredom >= WARN:
        return ["It will fall ill if it is left like this much longer."]
    return []


def moment(pet: Pet) -> str:
    """What the links a page shows are made for: the pet and what was done to
    it. Every meal, game and name moves it on, so a link is good once; time
    passing does not, so a page left open a while still feeds."""
    return f"{pet.born!r} {pet.meals} {pet.games} {pet.name}"


def page(
    request: Request, pet: Pet, now: float, note: str = "", newborn: bool = False
) -> Response:
    name = pet.name or "Your pet"
    face, words = mood(pet)
    # Pets hatched since the census, and this one if it hatched just now.
    pets = census.pets + census.hatched + (1 if newborn else 0)
    lines = ["# Pet", ""]
    if note:
        lines += [note, ""]
    lines += [
        f"{name} {words}.",
        *advice(pet, now),
        "",
        f"```{name}, {words[3:]}",
        f"  {face}",
        "",
        bar("Hunger", pet.hunger),
        bar("Boredom", pet.boredom),
        "```",
        "",
        f"=> {link(request, pet, '/pet/feed')} Feed",
        f"=> {link(request, pet, '/pet/play')} Play",
        "=> /pet Look again",
        f"=> {link(request, pet, '/pet/name')} "
        + ("Rename" if pet.name else "Name your pet"),
        "",
        "## Its life so far",
        "",
        f"Hatched {ago(now - (pet.born or now))}. Meals: {pet.meals}."
        f" Games: {pet.games}. Times ill: {pet.illnesses}.",
        "",
        f"Capsule census, taken once a minute: {counted(pets, 'pet')},"
        f" {census.ill} of them ill.",
        "",
        "=> / Back to the capsule",
        "",
    ]
    return Response(Status.SUCCESS, "text/gemini", "\n".join(lines))


def link(request: Request, pet: Pet, path: str) -> str:
    return confirm_path(request, path, moment(pet))


# -- routes -------------------------------------------------------------------


def _now(request: Request, pet: Pet) -> tuple[float, str]:
    """Catch ``pet`` up to the slab's clock (hatching it on the first visit)."""
    now = slab.now()
    if pet.born is None:
        hatch(pet, now)
        # Once, and only if the new pet is kept: a handler may run again.
        after_save(request, census.hatch)
        return now, HATCHED
    catch_up(pet, now)
    return now, ""


HATCHED = "An egg hatched! This little one is yours to look after."


def _page(request: Request, pet: Pet, now: float, note: str, *news: str) -> Response:
    text = " ".join(part for part in (note, *news) if part)
    return page(request, pet, now, text, newborn=note == HATCHED)


#: Where a player with no pet yet is sent from a step of play: its page,
#: whose first look hatches it.
TO_THE_PAGE = Response(Status.REDIRECT_TEMPORARY, "/pet")
#: What a step from a link the page did not give this player says.
NOT_YOURS = (
    "Nothing was done: that link came from an older page, another device or"
    " somewhere else, not from your pet as it is now."
)


def _not_yours(request: Request, pet: Pet) -> Response:
    """The page as it is, with the news that nothing was done: shown from a
    copy, brought up to now, so that nothing of the record changes."""
    shown = attrs.evolve(pet)
    now = slab.now()
    catch_up(shown, now)
    return page(request, shown, now, NOT_YOURS)


@app.session_route("/pet", record=Pet)
async def look(request: Request, record: Pet) -> Response:
    await ready()  # the secret the page's links are made under
    now, note = _now(request, record)
    return _page(request, record, now, note)


@app.session_route(with_token("/pet/feed"), record=Pet)
async def feed(request: Request, record: Pet, token: str | None = None) -> Response:
    await ready()
    if record.born is None:
        return TO_THE_PAGE
    if not is_confirmed(request, token, "/pet/feed", moment(record)):
        return _not_yours(request, record)
    now, note = _now(request, record)
    if record.hunger < REFUSE_BELOW:
        return _page(
            request,
            record,
            now,
            note,
            "It is not hungry: it sniffs the food and walks off.",
        )
    record.hunger = max(0.0, record.hunger - MEAL)
    record.meals += 1
    settle(record, now)
    return _page(request, record, now, note, "Munch munch.")


@app.session_route(with_token("/pet/play"), record=Pet)
async def play(request: Request, record: Pet, token: str | None = None) -> Response:
    await ready()
    if record.born is None:
        return TO_THE_PAGE
    if not is_confirmed(request, token, "/pet/play", moment(record)):
        return _not_yours(request, record)
    now, note = _now(request, record)
    if record.boredom < REFUSE_BELOW:
        return _page(
            request, record, now, note, "It is tired of playing: let it rest a while."
        )
    record.boredom = max(0.0, record.boredom - GAME)
    record.hunger = min(FULL, record.hunger + GAME_HUNGER)
    record.games += 1
    settle(record, now)
    return _page(request, record, now, note, "You play chase.")


@app.session_route(with_token("/pet/name"), record=Pet)
async def name(request: Request, record: Pet, token: str | None = None) -> Response:
    await ready()
    if record.born is None:
        return TO_THE_PAGE
    # Only at the player's own prompt: a name in a link from elsewhere, or
    # typed at a prompt of an older page, names nothing, and the page says so.
    typed = ask_for(
        request,
        token,
        "/pet/name",
        moment(record),
        "What will you call your pet?",
        elsewhere=lambda _: _not_yours(request, record),
    )
    if isinstance(typed, Response):
        return typed
    problem = check_name(typed)
    if problem is not None:
        return Response(Status.INPUT, problem)
    now, note = _now(request, record)
    record.name = typed.strip()
    return _page(request, record, now, note, f"Your pet is called {record.name} now.")
