"""A plain Jetforce application, with no sessions."""

from __future__ import annotations

from jetforce.app.base import JetforceApplication, Request, Response, Status

app = JetforceApplication()


@app.route("")
def index(request: Request) -> Response:
    return Response(Status.SUCCESS, "text/plain", "plain\n")
