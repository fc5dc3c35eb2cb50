"""A counter whose handler waits before it counts: for serialization over TLS."""

from __future__ import annotations

import attrs
from jetforce.app.base import Request, Response, Status
from twisted.internet.task import deferLater

from jetforce_sesh import SessionApplication

app = SessionApplication("slow counter")


@attrs.define
class Count:
    n: int = 0


slab = app.slab(Count, record_size=32)


@app.session_route("/slow", record=Count)
async def slow(request: Request, record: Count) -> Response:
    seen = record.n
    await deferLater(slab.clock, 0.01, lambda: None)
    record.n = seen + 1
    return Response(Status.SUCCESS, "text/plain", str(record.n))


@app.session_route("/count", record=Count)
def count(request: Request, record: Count) -> Response:
    return Response(Status.SUCCESS, "text/plain", str(record.n))


#: Handlers of /linger running now, for a test to see one in flight.
lingering = 0


@app.session_route("/linger", record=Count)
async def linger(request: Request, record: Count) -> Response:
    """Count, then take three seconds to answer: long enough to stop the server
    while it is in flight."""
    global lingering
    lingering += 1
    try:
        record.n += 1
        await deferLater(slab.clock, 3, lambda: None)
    finally:
        lingering -= 1
    return Response(Status.SUCCESS, "text/plain", str(record.n))


@app.route("/lingering")
def show_lingering(request: Request) -> Response:
    return Response(Status.SUCCESS, "text/plain", str(lingering))
