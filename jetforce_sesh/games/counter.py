"""The visit counter: how many times you have been here.

The smallest session game: one int in the record, a page that bumps it, and a reset
that asks before it forgets, at a link only the capsule could have shown the
player (a ``?yes`` in a link from elsewhere resets nothing). Run it alone with
``jetforce-sesh --app jetforce_sesh.games.counter:app``.
"""

from __future__ import annotations

import attrs
from jetforce.app.base import Request, Response, Status

from jetforce_sesh import SessionApplication, ask_yes, with_token

app = SessionApplication(
    "Visit counter",
    entry="/counter",
    # "you", not "this certificate": with accounts, the count is the account's.
    description="how many times you have been here",
)


@attrs.define
class Visits:
    count: int = 0
    # Every visit, resets or not: only the very first one is a welcome.
    ever: int = 0


# A fixed layout (two little-endian uint64s), so CGI programs in C or Python can
# share the count over the bridge: see examples/cgi-bin/ and docs/howto/cgi-programs.md.
slab = app.slab(Visits, name="visits", layout="<QQ")


@app.session_route("/counter", record=Visits)
def counter(request: Request, record: Visits) -> Response:
    record.count += 1
    record.ever += 1
    if record.ever == 1:
        news = "Welcome! This is your first visit. Come back and I will count."
    elif record.count == 1:
        news = "Visit number 1 since you reset your count."
    else:
        news = f"Visit number {record.count}."
    page = (
        "# Visit counter\n\n"
        f"{news}\n\n"
        "=> /counter Visit again\n"
        "=> /counter/reset Reset my count\n"
        "=> / Back to the capsule\n"
    )
    return Response(Status.SUCCESS, "text/gemini", page)


@app.session_route(with_token("/counter/reset"), record=Visits)
def reset(request: Request, record: Visits, token: str | None = None) -> Response:
    # Asked at a link made for this player and this very count: a reset re-sent
    # later (a client's Back key) finds the count changed and asks again.
    answer = ask_yes(
        request,
        token,
        "/counter/reset",
        record,
        "Reset your visit count to zero? Type yes to confirm",
    )
    if isinstance(answer, Response):
        return answer
    if not answer:
        return Response(
            Status.SUCCESS,
            "text/gemini",
            "# Visit counter\n\n"
            "Not reset: the answer was not yes."
            f" You still have {record.count}"
            f" visit{'' if record.count == 1 else 's'}.\n\n"
            "=> /counter Back to the counter\n"
            "=> / Back to the capsule\n",
        )
    record.count = 0
    return Response(
        Status.SUCCESS,
        "text/gemini",
        "# Visit counter\n\nYour count is back to zero.\n\n"
        "=> /counter Start counting\n"
        "=> / Back to the capsule\n",
    )
