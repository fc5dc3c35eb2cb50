"""The reactor the command line needs, installed before anything imports one.

Importing jetforce imports ``twisted.internet.reactor``, which installs Twisted's
default reactor (epoll) for good. A cluster ``--store`` needs Twisted's asyncio
reactor instead, since redis.asyncio's cluster client runs on asyncio: the
launcher imports this module first, and :func:`install_for` reads ``--store``
from the command line before jetforce is imported. Every other store keeps the
default reactor, which costs the capsule less CPU per request (about 5%,
measured: docs/explanation/redis-store.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: The scheme of a ``--store`` that names a cluster.
CLUSTER_SCHEME = "redis+cluster:"


def store_url(argv: Sequence[str]) -> str | None:
    """The last ``--store`` value of ``argv``, as argparse would read it."""
    url = None
    for at, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--store" and at + 1 < len(argv):
            url = argv[at + 1]
        elif arg.startswith("--store="):
            url = arg.removeprefix("--store=")
    return url


def needs_asyncio(argv: Sequence[str]) -> bool:
    """Whether the command line asks for a store that runs on asyncio."""
    url = store_url(argv)
    return url is not None and url.startswith(CLUSTER_SCHEME)


def install_for(argv: Sequence[str]) -> None:
    """Install the asyncio reactor if ``argv`` asks for a cluster store and no
    reactor is installed yet; otherwise leave the choice to Twisted."""
    if needs_asyncio(argv) and "twisted.internet.reactor" not in sys.modules:
        from twisted.internet import asyncioreactor

        asyncioreactor.install()  # type: ignore[no-untyped-call]


install_for(sys.argv[1:])
