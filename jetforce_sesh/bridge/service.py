"""The bridge as a service of the server: which slabs it serves, the key step
it needs, and its socket listening from start to stop."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IListeningPort

import sesh_bridge as wire
from jetforce_sesh.bridge.protocol import BridgeFactory
from jetforce_sesh.errors import ConfigError
from jetforce_sesh.keys import IFingerprintKeys
from jetforce_sesh.session.slab import Slab


def bridged(
    slabs: Iterable[Slab[Any]], only: Sequence[str] | None = None
) -> dict[str, Slab[Any]]:
    """The slabs a bridge serves, by name: those with a layout, or of those the
    ones ``only`` names (``--bridge-slabs``).

    ConfigError if there is none, if ``only`` names a slab that is not there or
    has no layout, or if a record is too large for the wire.
    """
    declared = list(slabs)
    served: dict[str, Slab[Any]] = {}
    for slab in declared:
        if slab.layout is None or (only is not None and slab.name not in only):
            continue
        size = slab.codec_for(slab.resolve()).record_size
        if size > wire.MAX_RECORD:
            raise ConfigError(
                f"slab {slab.name!r} has {size}-byte records, more than the"
                f" bridge carries ({wire.MAX_RECORD}): use a smaller layout"
            )
        served[slab.name] = slab
    if only is not None:
        laid_out = sorted(slab.name for slab in declared if slab.layout is not None)
        for name in only:
            if name in served:
                continue
            if name in {slab.name for slab in declared}:
                raise ConfigError(
                    f"--bridge-slabs names slab {name!r}, which has no fixed"
                    f" layout, so the bridge cannot serve it: give it a layout="
                    f" or leave it out"
                )
            raise ConfigError(
                f"--bridge-slabs names {name!r}, which is no slab of this capsule;"
                f" its slabs with a layout are: {', '.join(laid_out) or 'none'}"
            )
    if not served:
        raise ConfigError(
            "no slab has a fixed layout, so the bridge would serve nothing: declare"
            " one with app.slab(Record, layout='<Q'), or leave --bridge-socket out"
        )
    return served


class BridgeService(Service):
    """The bridge as a service: listening on its socket from start to stop."""

    def __init__(
        self,
        factory: BridgeFactory,
        listen: Callable[[BridgeFactory], IListeningPort],
    ) -> None:
        self.factory = factory
        self._listen = listen
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.port = self._listen(self.factory)

    def stopService(self) -> Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        for connection in list(self.factory.connections):
            # Turns held by CGI programs end now, so in-process requests queued
            # behind them finish within the shutdown grace.
            connection.close()
        port, self.port = self.port, None
        if port is None:
            return None
        stopped: Deferred[None] | None = port.stopListening()
        return stopped


def check_keys(slabs: Iterable[Slab[Any]], keys: object) -> None:
    """ConfigError unless the capsule's key step can answer from a fingerprint
    alone, at once: a CGI program gives nothing more."""
    if not IFingerprintKeys.providedBy(keys):
        names = ", ".join(slab.name for slab in slabs)
        raise ConfigError(
            f"the bridge serves records keyed by the certificate's fingerprint, and"
            f" this capsule keys {names} with {type(keys).__name__}: leave"
            f" --bridge-socket out"
        )
