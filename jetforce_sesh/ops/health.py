"""``--health-path``: a path that answers ``20`` to anyone, for a supervisor.

It needs no certificate and touches no slab: an answer says the server accepts
connections, speaks TLS and runs its reactor, which is what a supervisor (a
systemd watchdog script, a load balancer, a monitoring probe) needs to know.
"""

from __future__ import annotations

from jetforce.app.base import Request, Response, Status

HEALTHY = Response(Status.SUCCESS, "text/plain", "ok\n")


def healthy(request: Request) -> Response:
    """The health path's answer: ``20 text/plain``, body ``ok``."""
    return HEALTHY


def check_health_path(text: str) -> str:
    """``text`` if it can be the health path: an absolute path, not the root."""
    if not text.startswith("/") or not text.strip("/") or "?" in text:
        raise ValueError(
            f"--health-path {text!r} must be a path from the root, e.g. /health"
        )
    return text.rstrip("/")
