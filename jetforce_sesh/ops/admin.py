"""``--admin-cert``: ``/admin``, the capsule's figures and its two actions.

Only the certificates named on the command line see it: any other gets ``61``,
none ``60``. Each action asks first, at a link only the capsule could have shown
this admin (``/admin/flush?yes`` in a link from elsewhere writes nothing; see
:mod:`jetforce_sesh.session.confirm`): drop one player's record, found by the
start of their fingerprint, and write what the persistent stores still owe to
their files. The search reads the slabs a slice at a time, so it never holds
the reactor long, and its query (a fingerprint) stays out of the access log.
Records of the accounts are told apart: account lists, certificate links and
revoked certificates are labelled as such, and a drop that would let a revoked
certificate back in, or strand the certificates of an account, is refused.
Without the flag nothing here is routed, and ``/admin`` is ``51`` like any
unknown path.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from jetforce.app.base import JetforceApplication, Request, Response, Status
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import deferLater
from twisted.logger import Logger

from jetforce_sesh.accounts.records import Account, Member, Revoked
from jetforce_sesh.errors import Abort
from jetforce_sesh.identity import BadFingerprint, parse_fingerprint
from jetforce_sesh.server.banner import size
from jetforce_sesh.server.stats import ServerStats, SlabFigures, open_slabs, server_line
from jetforce_sesh.server.workers import WorkersView
from jetforce_sesh.session.answers import Outcome, deferred_response
from jetforce_sesh.session.confirm import ask_yes, ready, with_token
from jetforce_sesh.session.route import ENVIRON_SECRET
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.contract import StoredRecord

_log = Logger()

#: Matches listed at most, so a short prefix cannot make a huge page.
MAX_MATCHES = 50
#: Records the search reads in one turn of the reactor: about 0.3 ms on the
#: memory store (benchmarks/stall_admin.py), so other requests go between.
SEARCH_SLICE = 256
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
        workers: WorkersView | None = None,
    ) -> None:
        self.admins = frozenset(admins)
        #: The workers of --workers (none shown for a single process).
        self.workers = workers or WorkersView()
        self.slabs = list(slabs)
        self.stats = stats
        #: How the search lets the reactor serve others between two slices
        #: (a benchmark replaces it to search in one turn, as a control).
        self.pause: Callable[[IReactorTime], Deferred[None]] = _next_turn

    def install(self, app: JetforceApplication) -> None:
        """Route the admin pages in ``app``, ahead of its own routes."""
        drop = r"/admin/drop/(?P<slab_name>[^/]+)/(?P<key>[0-9a-f]{16})"
        for path, handler, secret in (
            ("/admin", self.dashboard, False),
            ("/admin/drop", self.find, True),
            (with_token(drop), self.drop, False),
            (with_token("/admin/flush"), self.flush, False),
        ):
            app.route(path)(self._guarded(handler, secret=secret))

    def _guarded(
        self, handler: Callable[..., Outcome], *, secret: bool = False
    ) -> Callable[..., Outcome]:
        """``handler`` for the admins' certificates: 60 without one, else 61.
        ``secret``: the query is a fingerprint, left out of the access log."""

        def guarded(request: Request, **groups: str) -> Outcome:
            if secret:
                request.environ[ENVIRON_SECRET] = True
            text = request.environ.get("TLS_CLIENT_HASH")
            if not text:
                return NO_CERTIFICATE
            try:
                fingerprint = parse_fingerprint(text)
            except BadFingerprint:
                return NOT_ADMIN
            if fingerprint not in self.admins:
                return NOT_ADMIN
            try:
                return handler(request, **groups)
            except Abort as abort:
                return abort.response

        guarded.secret = secret  # type: ignore[attr-defined]
        return guarded

    def _persistent(self) -> list[Slab[Any]]:
        return [s for s in open_slabs(self.slabs) if hasattr(s.store, "flush")]

    def _slab_of(self, kind: type) -> Slab[Any] | None:
        return next((s for s in open_slabs(self.slabs) if s.record_type is kind), None)

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
        ]
        workers = self.workers.lines()
        if workers:
            lines += ["", "## Workers", "", *workers]
        lines += ["", "## Slabs"]
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
            # Never written back: it may be most of a fingerprint.
            return Response(
                Status.INPUT,
                "That is not hex digits: give the start of the player's fingerprint,"
                " e.g. 3fa0c2",
            )
        listing = ensureDeferred(self._listed(prefix))
        return deferred_response(listing)

    async def _matches(
        self, prefix: str, slabs: Sequence[Slab[Any]] | None = None
    ) -> list[tuple[Slab[Any], StoredRecord]]:
        """The records whose keys start with ``prefix``, read a slice at a time:
        between two slices the reactor serves everyone else."""
        found: list[tuple[Slab[Any], StoredRecord]] = []
        for slab in open_slabs(self.slabs if slabs is None else slabs):
            cursor: str | None = None
            while len(found) <= MAX_MATCHES:
                listed = await slab.store.records(cursor, SEARCH_SLICE)
                found += [
                    (slab, record)
                    for record in listed.records
                    if record.key.hex().startswith(prefix)
                ]
                cursor = listed.cursor
                if cursor is None:
                    break
                await self.pause(slab.clock)
        return found

    async def _listed(self, prefix: str) -> Outcome:
        found = await self._matches(prefix)
        # The prefix asked for is as much of a fingerprint as the admin gave:
        # the page shows it, cut like every key it shows.
        lines = [f"# Records of players {prefix[:LINKED]}…", ""]
        if not found:
            lines.append(f"No player's fingerprint starts with {prefix[:LINKED]}.")
        for slab, record in found[:MAX_MATCHES]:
            used = time.strftime("%Y-%m-%d %H:%M", time.gmtime(record.last_used))
            linked = record.key.hex()[:LINKED]
            label, _ = await self._label(slab, record)
            lines.append(
                f"=> /admin/drop/{slab.name}/{linked} {label},"
                f" {len(record.data)} bytes, last used {used} UTC"
            )
        if len(found) > MAX_MATCHES:
            lines += ["", f"More than {MAX_MATCHES}: give more of the fingerprint."]
        return page(*lines, "", HOME)

    async def _label(
        self, slab: Slab[Any], record: StoredRecord
    ) -> tuple[str, str | None]:
        """What ``record`` of ``slab`` is, for the admin; and why it may not be
        dropped (None: it may)."""
        key = record.key.hex()[:LINKED]
        title = slab.title or slab.name
        value = slab.decoded(record.key, record)
        if isinstance(value, Revoked):
            return (
                f"{title}: certificate {key}…, revoked from its account",
                "Dropping it would let the revoked certificate back into the account"
                " it was revoked from: it is kept for good",
            )
        if isinstance(value, Member):
            return (
                f"{title}: certificate {key}… linked to account"
                f" {value.account.hex()[:LINKED]}…",
                None,
            )
        if isinstance(value, Account):
            links = await self._linked(record.key, value)
            why = None
            if links:
                why = (
                    f"{links} certificate(s) still link to this account: revoke"
                    f" them from its account page first"
                )
            return (
                f"{title}: account {key}… and its list of"
                f" {len(value.certificates)} certificate(s)",
                why,
            )
        if slab.unit != "players":
            return f"{title}: {key}…", None
        accounts = self._slab_of(Account)
        if accounts is not None:
            account, _ = await accounts.fetch(record.key)
            if account is not None:
                count = len(account.certificates)
                return (
                    f"{title}: records of account {key}…, played by {count}"
                    f" certificate{'' if count == 1 else 's'}",
                    None,
                )
        return f"{title}: records of player {key}…", None

    async def _linked(self, key: bytes, account: Account) -> int:
        """Certificates whose link names account ``key``."""
        members = self._slab_of(Member)
        if members is None:
            return 0
        count = 0
        for fingerprint in account.certificates:
            member, _ = await members.fetch(fingerprint)
            if member is not None and member.account == key:
                count += 1
        return count

    def drop(
        self,
        request: Request,
        slab_name: str,
        key: str,
        token: str | None = None,
    ) -> Outcome:
        slab = next((s for s in open_slabs(self.slabs) if s.name == slab_name), None)
        if slab is None:
            return Response(Status.NOT_FOUND, f"No open slab is named {slab_name}")
        dropping = ensureDeferred(self._drop(request, slab, key, token))
        return deferred_response(dropping)

    async def _drop(
        self, request: Request, slab: Slab[Any], key: str, token: str | None
    ) -> Outcome:
        """Delete the one record of ``slab`` whose key starts with ``key``,
        once asked at the admin's own link for this very record."""
        await ready()
        found = await self._matches(key, [slab])
        who = f"{slab.title or slab.name}'s record of player {key[:SHOWN]}"
        if len(found) != 1:
            # None left; or, against odds of 1 in 2**64 per pair of players,
            # two: drop neither rather than guess.
            return page("# Nothing dropped", "", f"{who} was gone already.", "", HOME)
        stored = found[0][1]
        label, refused = await self._label(slab, stored)
        if refused is not None:
            return page("# Not dropped", "", f"{label}.", "", refused + ".", "", HOME)
        answer = ask_yes(
            request,
            token,
            f"/admin/drop/{slab.name}/{key}",
            f"{stored.key.hex()}:{stored.version}",
            f"Type yes to drop {who}",
        )
        if isinstance(answer, Response):
            return answer
        if not answer:
            return page(
                "# Nothing dropped",
                "",
                f"{who} is kept: the answer was not yes.",
                "",
                HOME,
            )
        deleted = await slab.store.delete(stored.key, stored.version)
        if not deleted:
            return page("# Nothing dropped", "", f"{who} was gone already.", "", HOME)
        _log.info(
            "admin {admin} dropped {who}",
            admin=_admin(request),
            who=who,
            event="admin drop",
            slab=slab.name,
            player=key[:SHOWN],
        )
        return page("# Dropped", "", f"{who} is dropped.", "", HOME)

    # -- flushing the record files ----------------------------------------------

    def flush(self, request: Request, token: str | None = None) -> Response:
        slabs = self._persistent()
        if not slabs:
            return Response(
                Status.NOT_FOUND,
                "Records live in memory only (no --state-dir): nothing to write",
            )
        answer = ask_yes(
            request,
            token,
            "/admin/flush",
            None,
            f"Type yes to write now what the files of {len(slabs)} slab(s) owe",
        )
        if isinstance(answer, Response):
            return answer
        if not answer:
            return page("# Nothing written", "", "The answer was not yes.", "", HOME)
        try:
            written = sum(slab.store.flush() for slab in slabs)  # type: ignore[attr-defined]
        except Exception as error:
            _log.failure(
                "admin {admin} flush failed", admin=_admin(request), event="admin flush"
            )
            return Response(
                Status.TEMPORARY_FAILURE,
                f"Could not write the record files ({error}): see the log",
            )
        _log.info(
            "admin {admin} flushed {slabs} slab(s): {rows} rows written",
            admin=_admin(request),
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


def _next_turn(clock: IReactorTime) -> Deferred[None]:
    return deferLater(clock, 0, lambda: None)


def _admin(request: Request) -> str:
    """Which admin acted, for the log: the start of their fingerprint."""
    return parse_fingerprint(request.environ["TLS_CLIENT_HASH"]).hex()[:SHOWN]


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
