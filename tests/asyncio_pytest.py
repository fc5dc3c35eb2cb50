"""``python -m tests.asyncio_pytest [pytest arguments]``: pytest on Twisted's
asyncio reactor, for the tests marked ``asyncio_reactor`` (the cluster store's).

The suite's conftest imports jetforce, which imports (and so installs) the
default reactor before pytest-twisted's ``--reactor=asyncio`` could choose one:
this installs the asyncio reactor first, as the launcher does for a cluster
``--store``, then runs pytest with ``--reactor=asyncio``, which finds it there.
(pytest-twisted's own install, made again, would set a second asyncio loop as
the current one, which nothing runs: it is told the reactor is installed.)
"""

from __future__ import annotations

import sys
from typing import NoReturn

from twisted.internet import asyncioreactor
from twisted.internet.error import ReactorAlreadyInstalledError


def _installed(eventloop: object = None) -> NoReturn:
    raise ReactorAlreadyInstalledError("installed by tests.asyncio_pytest")


if __name__ == "__main__":
    asyncioreactor.install()
    asyncioreactor.install = _installed
    import pytest

    sys.exit(pytest.main(["--reactor=asyncio", *sys.argv[1:]]))
