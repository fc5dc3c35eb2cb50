"""The demo's visit counter, plus a route that waits before it counts in the very
same record: for the bridge's mix of sync and ``async def`` handlers and CGI
programs, all counting one player's visits."""

from __future__ import annotations

from jetforce.app.base import Request, Response, Status
from twisted.internet.task import deferLater

from jetforce_sesh import SessionApplication
from jetforce_sesh.games import counter

app = SessionApplication("bridged counter")
app.include(counter.app)


@app.session_route("/counter/slow", record=counter.Visits)
async def slow(request: Request, record: counter.Visits) -> Response:
    seen = record.count
    # Read, wait, then write what was read plus one: a lost update if anything
    # else wrote the record meanwhile.
    await deferLater(counter.slab.clock, 0.002, lambda: None)
    record.count = seen + 1
    record.ever += 1
    return Response(Status.SUCCESS, "text/gemini", f"Visit number {record.count}.\n")
