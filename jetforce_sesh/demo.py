"""The demo capsule, ``jetforce_sesh:app``: an index page and every game."""

from __future__ import annotations

from jetforce.app.base import Request, Response, Status

from jetforce_sesh.accounts import rotation_note, use_accounts
from jetforce_sesh.games import counter, guess, halloffame, hangman, pet, tictactoe
from jetforce_sesh.session.application import SessionApplication, links

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
# Several certificates per player: link a phone to a laptop, or a new
# certificate to an expiring one, and keep playing with the same records.
accounts = use_accounts(app)


@app.route("")
def index(request: Request) -> Response:
    note = rotation_note(request, accounts.members.now())
    page = "\n".join(
        [
            "# jetforce-sesh demo capsule",
            "",
            "Small games that remember you by your client certificate.",
            "Attach a certificate when your client asks for one; each game keeps"
            " its own record of you.",
            *([] if note is None else ["", note, "=> /account Your account"]),
            "",
            "## Games",
            "",
            *links(game for game in app.included if game is not accounts.app),
            "",
            "## You",
            "",
            *links([accounts.app]),
            "=> /account/help Certificates, linking and revoking, in plain words",
            "",
        ]
    )
    return Response(Status.SUCCESS, "text/gemini", page)
