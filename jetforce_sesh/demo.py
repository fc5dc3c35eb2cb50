"""The demo capsule, ``jetforce_sesh:app``: an index page and every game."""

from __future__ import annotations

from jetforce.app.base import Request, Response, Status

from jetforce_sesh.application import SessionApplication, links
from jetforce_sesh.games import counter, guess, halloffame, hangman, pet, tictactoe

app = SessionApplication("jetforce-sesh demo capsule")
for game in (
    counter.app,
    guess.app,
    hangman.app,
    tictactoe.app,
    pet.app,
    halloffame.app,
):
    app.include(game)


@app.route("")
def index(request: Request) -> Response:
    page = "\n".join(
        [
            "# jetforce-sesh demo capsule",
            "",
            "Small games that remember you by your client certificate.",
            "Attach a certificate when your client asks for one; each game keeps"
            " its own record of you.",
            "",
            "## Games",
            "",
            *links(app.included),
            "",
        ]
    )
    return Response(Status.SUCCESS, "text/gemini", page)
