"""Coin flip: the smallest whole game (the tutorial builds a bigger one, a piggy bank).

It demonstrates what every game does: an attrs record whose defaults a new player
gets, a slab for it, session routes that change it (saved when they return), and a
``10`` prompt that asks again, saying why, when the answer will not do. Run it from
the repository root: ``jetforce-sesh --app examples.coin_flip:app``.
"""

import random

import attrs
from jetforce.app.base import Request, Response, Status

from jetforce_sesh import SessionApplication

app = SessionApplication("Coin flip", entry="/coin", description="call it in the air")


@attrs.define
class Streak:
    flips: int = 0
    right: int = 0
    streak: int = 0
    best: int = 0


app.slab(Streak, record_size=96)


def page(record: Streak, news: str = "") -> Response:
    return Response(
        Status.SUCCESS,
        "text/gemini",
        f"# Coin flip\n\n{news}You called {record.right} of {record.flips} right."
        f" Streak {record.streak}, best {record.best}.\n\n"
        "=> /coin/call?heads Call heads\n=> /coin/call?tails Call tails\n"
        "=> /coin/call Type your call\n=> / Back to the capsule\n",
    )


@app.session_route("/coin", record=Streak)
def coin(request: Request, record: Streak) -> Response:
    return page(record)


@app.session_route("/coin/call", record=Streak)
def call(request: Request, record: Streak) -> Response:
    guess = request.query.strip().lower()
    if guess not in ("heads", "tails"):
        why = "Only heads or tails will do" if guess else "Heads or tails?"
        return Response(Status.INPUT, why)
    side = random.choice(("heads", "tails"))
    won = side == guess
    record.flips += 1
    record.right += 1 if won else 0
    record.streak = record.streak + 1 if won else 0
    record.best = max(record.best, record.streak)
    return page(record, f"It landed {side}: {'right' if won else 'wrong'}!\n\n")
