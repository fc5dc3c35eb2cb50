"""``python -m benchmarks.stock``: stock Jetforce, the ceiling of ``python -m
benchmarks``.

One ``jetforce.JetforceApplication`` with one route answering the plain page
(``20``, the same 33 bytes as jetforce-sesh's plain route), served by Jetforce's
own ``GeminiServer``: no jetforce-sesh code at all, not even imported (importing
it would enrol nothing here, but the ceiling must not depend on that). What every
other scenario costs beyond it is what jetforce-sesh's server stack and features
cost.

The route is a path of its own (``/plain``) rather than ``/``: Jetforce strips a
URL's trailing slash before it matches, so ``@app.route("/")`` never matches
``gemini://host/`` and would measure a ``50 Not Found`` with no body, which costs
about 7% less than a real page. The load generator checks every answer is ``20``
and holds the page. Given ``--port 0``, it picks a free port itself: Jetforce's
routes compare the URL's port with the one the server was given.
"""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence

from jetforce.app.base import JetforceApplication, Request, Response, Status
from jetforce.server import GeminiServer

from benchmarks.pages import PLAIN_PATH, page

app = JetforceApplication()


@app.route(PLAIN_PATH)
def plain(request: Request) -> Response:
    return Response(Status.SUCCESS, "text/gemini", page(1))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.stock")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1965)
    parser.add_argument("--hostname", default="localhost")
    parser.add_argument("--tls-certfile", required=True)
    parser.add_argument("--tls-keyfile", required=True)
    args = parser.parse_args(argv)
    if args.port == 0:
        # Jetforce's routes match the URL's port against the one it was given
        # (strict_port), so it needs the real one: a free port, chosen here.
        with socket.socket() as probe:
            probe.bind((args.host, 0))
            args.port = probe.getsockname()[1]
    GeminiServer(
        app,
        host=args.host,
        port=args.port,
        hostname=args.hostname,
        certfile=args.tls_certfile,
        keyfile=args.tls_keyfile,
    ).run()


if __name__ == "__main__":
    main()
