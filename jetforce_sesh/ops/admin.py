"""``--admin-cert``: ``/admin``, the capsule's figures and its two actions.

Only the certificates named on the command line see it: any other gets ``61``,
none ``60``. Each action asks first (a ``10`` prompt to answer ``yes``): drop one
player's record, found by the start of their fingerprint, and write what the
persistent stores still owe to their files. Without the flag nothing here is
routed, and ``/admin`` is ``51`` like any unknown path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from jetforce.app.base import JetforceApplication, Request, Response, Status
from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger

from jetforce_sesh.identity import BadFingerprint, parse_fingerprint
from jetforce_sesh.server.banner import size
from jetforce_sesh.server.stats import ServerStats, SlabFigures, open_slabs, server_line
from jetforce_sesh.session.answers import Outcome, deferred_response
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.contract import StoredRecord

_log = Logger()

#: Matches listed at most, so a short prefix cannot make a huge page.
MAX_MATCHES = 50
#: Hex digits of a fingerprint shown or logged: enough to tell players apart,
#: not enough to be the whole fingerprint.
SHOWN = 8
#: Hex digits of a key in a drop page's path: unique among any number of
#: players a slab holds, and not the whole fingerprint, which the access log
#: (it logs every path) must not show.
LINKED = 16

_PREFIX = re.compile(r"[0-9a-f]{1,64}")
HOME = "=> /admin Back to the dashboard"

NO_CERTIFICATE = Response(
    Status.CLIENT_CERTIFICATE_REQUIRED,
    "The admin pages need an admin's client certificate",
)
NOT_ADMIN = Response(
    Status.CERTIFICATE_NOT_AUTHORISED,
    "This certificate is not one of the capsule's admins'",
)


def parse_admin_cert(text: str) -> bytes:
    """The fingerprint ``--admin-cert`` names, in any form identity accepts."""
    try:
        return parse_fingerprint(text)
    except BadFingerprint as error:
        raise ValueError(
            f"--admin-cert {text!r} is not a fingerprint: give the admin's"
            f" certificate's SHA-256 fingerprint, e.g. from `openssl x509 -noout"
            f" -fingerprint -sha256 -in admin.crt` ({error})"
        ) from None


def page(*lines: str) -> Response:
    return Response(Status.SUCCESS, "text/gemini", "\n".join([*lines, ""]))


class Admin:
    """The ``/admin`` pages of one capsule."""

    def __init__(
        self,
        admins: Sequence[bytes],
        slabs: Sequence[Slab[Any]],
        stats: ServerStats,
    ) -> None:
        self.admins = frozenset(admins)
        self.slabs = list(slabs)
        self.stats = stats

    def install(self, app: JetforceApplication) -> None:
        """Route the admin pages in ``app``, ahead of its own routes."""
        for path, handler in (
            ("/admin", self.dashboard),
            ("/admin/drop", self.find),
            (r"/admin/drop/(?P<slab_name>[^/]+)/(?P<key>[0-9a-f]{16})", self.drop),
            ("/admin/flush", self.flush),
        ):
            app.route(path)(self._guarded(handler))

    def _guarded(self, handler: Callable[..., Outcome]) -> Callable[..., Outcome]:
        """``handler`` for the admins' certificates: 60 without one, else 61."""

        def guarded(request: Request, **groups: str) -> Outcome:
            text = request.environ.get("TLS_CLIENT_HASH")
            if not text:
                return NO_CERTIFICATE
            try:
                fingerprint = parse_fingerprint(text)
            except BadFingerprint:
                return NOT_ADMIN
            if fingerprint not in self.admins:
                return NOT_ADMIN
            return handler(request, **groups)

        return guarded

    def _persistent(self) -> list[Slab[Any]]:
        return [s for s in open_slabs(self.slabs) if hasattr(s.store, "flush")]

    # -- the dashboard -----------------------------------------------------------

    def dashboard(self, request: Request) -> Response:
        stats = self.stats
        lines = [
            "# Admin",
            "",
            "## Server",
            "",
            f"* {server_line(stats)}",
            f"* Up {uptime(stats.clock.seconds() - stats.started)}",
            "",
            "## Slabs",
        ]
        for slab in open_slabs(self.slabs):
            lines += ["", *slab_lines(SlabFigures.of(slab))]
        lines += ["", "## Actions", "", "=> /admin/drop Drop one player's record"]
        if self._persistent():
            lines.append("=> /admin/flush Write what the record files still owe")
        return page(*lines)

    # -- dropping a record ---------------------------------------------------------

    def find(self, request: Request) -> Outcome:
        asked = request.query.strip()
        if not asked:
            return Response(
                Status.INPUT, "Fingerprint of the player, or its start (hex digits)"
            )
        prefix = fingerprint_prefix(asked)
        if prefix is None:
            return Response(
                Status.INPUT,
                f"{asked[:20]!r} is not hex digits: give the start of the player's"
                f" fingerprint, e.g. 3fa0c2",
            )
        listing = ensureDeferred(self._matches(prefix))
        return deferred_response(listing.addCallback(self._listed, prefix))

    async def _matches(
        self, prefix: str, slabs: Sequence[Slab[Any]] | None = None
    ) -> list[tuple[Slab[Any], StoredRecord]]:
        found: list[tuple[Slab[Any], StoredRecord]] = []
        for slab in open_slabs(self.slabs if slabs is None else slabs):
            cursor: str | None = None
            while len(found) <= MAX_MATCHES:
                listed = await slab.store.records(cursor)
                found += [
                    (slab, record)
                    for record in listed.records
                    if record.key.hex().startswith(prefix)
                ]
                cursor = listed.cursor
                if cursor is None:
                    break
        return found

    def _listed(
        self, found: list[tuple[Slab[Any], StoredRecord]], prefix: str
    ) -> Response:
        lines = [f"# Records of players {prefix}…", ""]
        if not found:
            lines.append(f"No player's fingerprint starts with {prefix}.")
        for slab, record in found[:MAX_MATCHES]:
            used = time.strftime("%Y-%m-%d %H:%M", time.gmtime(record.last_used))
            linked = record.key.hex()[:LINKED]
            lines.append(
                f"=> /admin/drop/{slab.name}/{linked}"
                f" {slab.title or slab.name}: {linked}…,"
                f" {len(record.data)} bytes, last used {used} UTC"
            )
        if len(found) > MAX_MATCHES:
            lines += ["", f"More than {MAX_MATCHES}: give more of the fingerprint."]
        return page(*lines, "", HOME)

    def drop(self, request: Request, slab_name: str, key: str) -> Outcome:
        slab = next((s for s in open_slabs(self.slabs) if s.name == slab_name), None)
        if slab is None:
            return Response(Status.NOT_FOUND, f"No open slab is named {slab_name}")
        who = f"{slab.title or slab.name}'s record of player {key[:SHOWN]}"
        if request.query.strip().lower() != "yes":
            return Response(Status.INPUT, f"Type yes to drop {who}")
        dropping = ensureDeferred(self._drop(slab, key))

        def done(there: bool) -> Response:
            if not there:
                return page(
                    "# Nothing dropped", "", f"{who} was gone already.", "", HOME
                )
            _log.info(
                "admin dropped {who}",
                who=who,
                event="admin drop",
                slab=slab.name,
                player=key[:SHOWN],
            )
            return page("# Dropped", "", f"{who} is dropped.", "", HOME)

        return deferred_response(dropping.addCallback(done))

    async def _drop(self, slab: Slab[Any], prefix: str) -> bool:
        """Delete the one record of ``slab`` whose key starts with ``prefix``."""
        found = await self._matches(prefix, [slab])
        if len(found) != 1:
            # None left; or, against odds of 1 in 2**64 per pair of players,
            # two: drop neither rather than guess.
            return False
        deleted: bool = await slab.drop(found[0][1].key)
        return deleted

    # -- flushing the record files ----------------------------------------------

    def flush(self, request: Request) -> Response:
        slabs = self._persistent()
        if not slabs:
            return Response(
                Status.NOT_FOUND,
                "Records live in memory only (no --state-dir): nothing to write",
            )
        if request.query.strip().lower() != "yes":
            return Response(
                Status.INPUT,
                f"Type yes to write now what the files of {len(slabs)} slab(s) owe",
            )
        try:
            written = sum(slab.store.flush() for slab in slabs)  # type: ignore[attr-defined]
        except Exception as error:
            _log.failure("admin flush failed", event="admin flush")
            return Response(
                Status.TEMPORARY_FAILURE,
                f"Could not write the record files ({error}): see the log",
            )
        _log.info(
            "admin flushed {slabs} slab(s): {rows} rows written",
            slabs=len(slabs),
            rows=written,
            event="admin flush",
        )
        return page(
            "# Written",
            "",
            f"{len(slabs)} slab(s) written: {written} last-use times and deletions"
            f" that were pending.",
            "",
            HOME,
        )


def fingerprint_prefix(text: str) -> str | None:
    """The lower-case hex start of a fingerprint ``text`` gives, or None.

    A whole fingerprint may come in any spelling identity accepts; a part of one
    as hex digits, with Jetforce's ``SHA256:`` or openssl's colons."""
    digits = text[7:] if text.upper().startswith("SHA256:") else text
    digits = digits.replace(":", "").lower()
    if _PREFIX.fullmatch(digits):
        # Hex first: 43 hex digits would also read as base64, of another key.
        return digits
    try:
        return parse_fingerprint(text).hex()
    except BadFingerprint:
        return None


def uptime(seconds: float) -> str:
    """A time running, in its two largest units: 2 d 3 h, 1 min 30 s, 45 s."""
    left = round(seconds)
    parts: list[str] = []
    for unit, length in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        count, left = divmod(left, length)
        if count or parts:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2]) if parts else "0 s"


def slab_lines(figures: SlabFigures) -> list[str]:
    """One slab's figures, as the dashboard shows them."""
    f = figures
    share = f"{100 * f.in_use / f.capacity:.1f}%" if f.capacity else "-"
    memory = f", {size(f.reserved)} reserved" if f.reserved is not None else ""
    return [
        f"### {f.title or f.name}" + (f" ({f.name})" if f.title else ""),
        "",
        f"* Records: {f.in_use:,} of {f.capacity:,} ({share}){memory}",
        f"* Hits {f.hits:,}, misses {f.misses:,}, created {f.creations:,}",
        f"* Evicted {f.evictions:,}, expired {f.expirations:,}, refused {f.refusals:,}",
        f"* Too large to save {f.too_large:,}, handler failures {f.failures:,},"
        f" time-outs {f.timeouts:,}",
    ]
