"""The demo's visit counter, and a slab of the largest records the bridge
carries (64 KiB): a client that asks for them and never reads the replies
fills the server's buffers fastest (tests/e2e/test_bridge.py)."""

from __future__ import annotations

import attrs
from jetforce.app.base import Request, Response, Status

from jetforce_sesh import SessionApplication
from jetforce_sesh.games import counter

app = SessionApplication("bridged counter and blobs")
app.include(counter.app)


@attrs.define
class Blob:
    data: bytes = b""


app.slab(Blob, name="blobs", layout="<65536s", max_records=16)


@app.session_route("/blob", record=Blob)
def blob(request: Request, record: Blob) -> Response:
    return Response(Status.SUCCESS, "text/plain", f"{len(record.data)} bytes\n")
