"""A plain Jetforce server script serving a SessionApplication, no launcher.

It demonstrates embedding: the app is handed to Jetforce's own ``GeminiServer``
exactly as a ``JetforceApplication`` would be, with its settings passed in code
(slab defaults, and SQLite files to keep the records in across restarts). The
stores open when the server starts and close, flushed, when it stops (Ctrl-C or
SIGTERM). Run it from the repository root:
``python examples/server_script.py [PORT [STATE_DIR]]``.
"""

import sys

import attrs
from jetforce.app.base import Request, Response, Status
from jetforce.server import GeminiServer

from jetforce_sesh import SessionApplication, SlabOptions, SQLiteStores

app = SessionApplication(
    "Visits", defaults=SlabOptions(max_records=1000, idle_timeout=30 * 86400)
)


@attrs.define
class Visits:
    count: int = 0


@app.session_route("/visit", record=Visits)
def visit(request: Request, record: Visits) -> Response:
    """Count the player's visits."""
    record.count += 1
    return Response(Status.SUCCESS, "text/gemini", f"# Visit {record.count}\n")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1965
    if len(sys.argv) > 2:
        # Keep the records in SQLite files there too: they survive restarts.
        app.stores = SQLiteStores(sys.argv[2])
    server = GeminiServer(app, port=port)
    server.run()
