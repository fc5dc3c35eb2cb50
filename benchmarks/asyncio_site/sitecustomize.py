"""Put first on a benchmark server's path: Twisted's asyncio reactor for a
capsule that would otherwise get the default one (the ``session-asyncio``
scenario of benchmarks/scenarios.py), installed before anything imports one."""

from twisted.internet import asyncioreactor

asyncioreactor.install()  # type: ignore[no-untyped-call]
