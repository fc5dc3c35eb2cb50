"""The flags for running a capsule in public, and what they set up.

``--admin-cert``, ``--rate-limit-cert``, ``--health-path``, ``--log-summary``,
``--log-level`` and ``--log-format``: each off by default, checked by argparse
at start-up (one line naming the value and the fix), and wired in once the
server and its figures exist. The launcher adds them to its parser and calls
:func:`serve_operations` and :func:`log_observer`.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from jetforce.app.base import JetforceApplication, Request
from twisted.internet.task import Clock
from twisted.logger import (
    FilteringLogObserver,
    LogLevel,
    LogLevelFilterPredicate,
    jsonFileLogObserver,
    textFileLogObserver,
)

from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.ops.admin import Admin, parse_admin_cert
from jetforce_sesh.ops.health import check_health_path, healthy
from jetforce_sesh.ops.ratelimit import CertificateRateLimiter
from jetforce_sesh.server.server import SessionServer
from jetforce_sesh.server.stats import ServerStats

#: --log-level's choices, least first.
LOG_LEVELS = ("debug", "info", "warn", "error")


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that says what ``parse`` says of a bad value."""

    def checked(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return checked


#: What ``openssl x509 -fingerprint -sha256`` prints before the fingerprint
#: ("sha256 Fingerprint=" from OpenSSL 3, "SHA256 Fingerprint=" before).
_OPENSSL_LABEL = re.compile(r"sha256 fingerprint=", re.IGNORECASE)


def _admin_cert(text: str) -> bytes:
    # The very line the error message recommends running must be accepted.
    return parse_admin_cert(_OPENSSL_LABEL.sub("", text.strip(), count=1))


def _rate(text: str) -> str:
    CertificateRateLimiter(text, Clock())  # raises ValueError, naming the flag
    return text


def _summary_every(text: str) -> float:
    try:
        every = float(text)
    except ValueError:
        every = -1.0
    if not 0 <= every < float("inf"):
        raise ValueError(
            f"--log-summary {text!r} must be a number of seconds, 0 or more: use"
            f" e.g. 300 for a line every 5 minutes, or 0 for none"
        )
    return every


def add_operations(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running in public")
    group.add_argument(
        "--admin-cert",
        type=_checked(_admin_cert),
        action="append",
        default=None,
        metavar="FINGERPRINT",
        help="A client certificate that may see /admin, the capsule's figures and"
        " actions (repeatable); unset: there is no /admin",
    )
    group.add_argument(
        "--rate-limit-cert",
        type=_checked(_rate),
        default=None,
        metavar="N/PERIOD",
        help="At most N requests to session routes per PERIOD from one client"
        " certificate (like --rate-limit, e.g. 60/1m), else status 44",
    )
    group.add_argument(
        "--health-path",
        type=_checked(check_health_path),
        default=None,
        metavar="PATH",
        help="A path that answers 20 ok to anyone, for a supervisor to check the"
        " server is up (e.g. /health); unset: none",
    )
    group.add_argument(
        "--log-summary",
        type=_checked(_summary_every),
        default=0.0,
        metavar="SECONDS",
        help="Log the figures of the server and each slab every SECONDS (0: never)",
    )
    group.add_argument(
        "--log-level",
        default="warn",
        choices=LOG_LEVELS,
        help="The least level of Twisted's log shown; debug also shows the bytes of"
        " records that cannot be read (summaries, admin actions and certificates"
        " over their rate are info, and shown unless error is asked for)",
    )
    group.add_argument(
        "--log-format",
        default="text",
        choices=("text", "json"),
        help="Twisted's log (warnings, summaries, admin actions) as text lines, or"
        " one JSON object a line with every field",
    )


def check_operations(
    args: argparse.Namespace, served: Sequence[JetforceApplication]
) -> None:
    """What the operations flags would break, refused before anything starts:
    a ``--health-path`` that a route of the capsule (or ``/admin``) answers
    would silently take that route's place for everyone."""
    if args.health_path is None:
        return
    owners: list[tuple[str, JetforceApplication]] = [
        (f"a route of --app {args.app!r}", app) for app in served
    ]
    if args.admin_cert:
        pages = JetforceApplication()
        Admin(args.admin_cert, [], ServerStats(Clock())).install(pages)
        owners.insert(0, ("the admin pages of --admin-cert", pages))
    port = args.port or 1965
    host = f"[{args.hostname}]" if ":" in args.hostname else args.hostname
    request = Request(
        {
            "GEMINI_URL": f"gemini://{host}:{port}{args.health_path}",
            "HOSTNAME": args.hostname,
            "SERVER_PORT": port,
        }
    )
    for owner, app in owners:
        for pattern, _ in app.routes:
            if pattern.match(request) is not None:
                raise UsageError(
                    f"--health-path {args.health_path!r} is a path the capsule"
                    f" answers already ({owner}, {pattern.path!r}), which it would"
                    f" replace for everyone: give a path of its own, e.g. /health"
                )


def serve_operations(
    args: argparse.Namespace,
    served: Sequence[JetforceApplication],
    server: SessionServer,
) -> None:
    """Route the admin pages and the health path in every Jetforce application
    ``served``, and rate-limit the session applications by certificate."""
    if args.admin_cert:
        admin = Admin(args.admin_cert, server.slabs(), server.stats)
        for each in served:
            admin.install(each)
    if args.health_path is not None:
        for each in served:
            each.route(re.escape(args.health_path))(healthy)
    if args.rate_limit_cert:
        limiter = CertificateRateLimiter(args.rate_limit_cert, server.reactor)
        for session_app in server.apps:
            session_app.certificate_limiter = limiter


def log_observer(log_format: str, level: str = "warn") -> FilteringLogObserver:
    """Twisted's log on standard error: what needs attention, and the summaries
    and admin actions, which are asked for."""
    least = LogLevel.levelWithName(level)
    predicate = LogLevelFilterPredicate(defaultLogLevel=least)
    if level == "warn":
        # Asked for by their flags: shown at the default level too (not with
        # --log-level error, which asks for errors alone).
        for namespace in (
            "jetforce_sesh.server.stats",
            "jetforce_sesh.ops.admin",
            "jetforce_sesh.ops.ratelimit",
        ):
            predicate.setLogLevelForNamespace(namespace, LogLevel.info)
    observer = (
        jsonFileLogObserver(sys.stderr, recordSeparator="")
        if log_format == "json"
        else textFileLogObserver(sys.stderr)
    )
    return FilteringLogObserver(observer, [predicate])
