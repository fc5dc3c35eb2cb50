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

from jetforce_sesh import ConfigError, SessionApplication, SlabOptions, SQLiteStores

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


def main(port: str = "1965", state_dir: str | None = None) -> None:
    if not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"the port must be a number from 0 to 65535 (got {port!r})")
    if state_dir is not None:
        # Keep the records in SQLite files there too: they survive restarts.
        # (Made and locked now: a directory another server holds is refused.)
        app.stores = SQLiteStores(state_dir)
    GeminiServer(app, port=int(port)).run()


if __name__ == "__main__":
    try:
        main(*sys.argv[1:3])
    except ConfigError as error:
        # One line, as the launcher says it: the value and the fix.
        print(f"server_script.py: error: {error}", file=sys.stderr)
        sys.exit(2)
