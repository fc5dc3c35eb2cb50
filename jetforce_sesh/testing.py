"""Helpers for testing session routes without a network.

>>> harness = SessionHarness(app)          # opens app's slabs on a Clock
>>> page = harness.get("/counter", player="alice")
>>> page.status, page.body
(20, '...')
>>> harness.clock.advance(3600)            # drive idle expiry

Requests go through the application exactly as Jetforce sends them, with an
environ that carries a fingerprint (``TLS_CLIENT_HASH``) the way Jetforce's own
does, but no TLS.
"""

from __future__ import annotations

import datetime
import hashlib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jetforce.app.base import JetforceApplication
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import Clock
from zope.interface import implementer

from jetforce_sesh.options import SlabOptions
from jetforce_sesh.session.application import SessionApplication
from jetforce_sesh.session.confirm import abandon_secret
from jetforce_sesh.stores.contract import (
    ANY_VERSION,
    Hook,
    ISessionStore,
    RecordPage,
    Stored,
    StoreFactory,
    StoreSpec,
    StoreStats,
)
from jetforce_sesh.stores.memory import MemoryStore, memory_stores

#: When a harness's own Clock starts: 2026-01-01 00:00 UTC, inside the validity
#: dates ``make_environ`` gives certificates.
START = 1_767_225_600.0
#: The validity dates of the certificates ``make_environ`` makes up.
VALID_FROM = "2020-01-01T00:00:00Z"
VALID_UNTIL = "2999-12-31T23:59:59Z"

__all__ = [
    "START",
    "VALID_FROM",
    "VALID_UNTIL",
    "ClientCertificate",
    "LaterStore",
    "Page",
    "SessionHarness",
    "client_context",
    "exchange",
    "fingerprint_of",
    "later_stores",
    "make_client_certificate",
    "make_environ",
    "read_response",
]


def fingerprint_of(player: str) -> bytes:
    """A stable 32-byte fingerprint standing for a player named ``player``."""
    return hashlib.sha256(player.encode()).digest()


def make_environ(
    path: str = "/",
    *,
    player: str | None = "player",
    query: str | None = None,
    hostname: str = "localhost",
    port: int = 1965,
    not_before: str = VALID_FROM,
    not_after: str = VALID_UNTIL,
) -> dict[str, Any]:
    """An environ as Jetforce builds it; ``player=None`` sends no certificate.

    The certificate's validity dates are Jetforce's ``TLS_CLIENT_NOT_BEFORE`` and
    ``TLS_CLIENT_NOT_AFTER`` text, checked against the harness's Clock.
    """
    url = f"gemini://{hostname}{path}"
    if query is not None:
        url += "?" + quote(query)
    environ: dict[str, Any] = {
        "GEMINI_URL": url,
        "HOSTNAME": hostname,
        "QUERY_STRING": quote(query) if query is not None else "",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_HOST": "127.0.0.1",
        "SERVER_NAME": hostname,
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": "GEMINI",
        "SERVER_SOFTWARE": "jetforce-sesh-testing",
        "client_certificate": None,
    }
    if player is not None:
        digest = fingerprint_of(player)
        environ.update(
            {
                "AUTH_TYPE": "CERTIFICATE",
                "REMOTE_USER": player,
                "TLS_CLIENT_HASH": "SHA256:" + digest.hex().upper(),
                "TLS_CLIENT_NOT_BEFORE": not_before,
                "TLS_CLIENT_NOT_AFTER": not_after,
            }
        )
    return environ


@attrs.frozen
class ClientCertificate:
    """A client certificate and its key as PEM files, for end-to-end tests."""

    name: str
    cert_path: Path
    key_path: Path
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> bytes:
        """The 32 bytes that key this player's records."""
        return self.certificate.fingerprint(hashes.SHA256())

    @property
    def tls_client_hash(self) -> str:
        """The fingerprint as Jetforce's ``TLS_CLIENT_HASH`` spells it."""
        return "SHA256:" + self.fingerprint.hex().upper()


def make_client_certificate(
    directory: Path,
    name: str,
    *,
    not_before: datetime.datetime | None = None,
    not_after: datetime.datetime | None = None,
) -> ClientCertificate:
    """A self-signed EC P-256 client certificate, as Gemini clients make them.

    Valid from a day ago for a year unless given other dates (to test ``62``).
    """
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ClientCertificate(name, cert_path, key_path, certificate)


def client_context(
    cert_path: Path | None = None, key_path: Path | None = None
) -> ssl.SSLContext:
    """A TLS context as a Gemini client makes one: no CA check (capsules use
    self-signed certificates, trusted on first use), and the client certificate
    if given."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if cert_path is not None:
        context.load_cert_chain(cert_path, key_path)
    return context


def exchange(
    context: ssl.SSLContext,
    port: int,
    request: bytes,
    *,
    host: str = "localhost",
    address: str = "127.0.0.1",
    timeout: float = 10.0,
) -> bytes:
    """Send one Gemini request line over its own TLS connection to ``port`` at
    ``address`` (loopback); return every byte of the response. ``host`` is the
    name the client asks the TLS handshake for (SNI)."""
    raw = socket.create_connection((address, port), timeout=timeout)
    with raw:
        tls = context.wrap_socket(
            raw, server_hostname=host, do_handshake_on_connect=False
        )
    # The handshake inside the block: a server that dies during it must not
    # leave the TLS socket unclosed.
    with tls:
        tls.do_handshake()
        tls.sendall(request)
        chunks = []
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLZeroReturnError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def read_response(
    chunks: Iterator[object], sent: list[tuple[int, str]]
) -> Deferred[Page]:
    """Read a response as Jetforce does: take one chunk of the body at a time,
    waiting for each Deferred among them before taking the next."""
    body: list[str] = []
    result: Deferred[Page] = Deferred()

    def take(data: object) -> None:
        if isinstance(data, bytes):
            data = data.decode()
        if isinstance(data, str):
            body.append(data)

    def pump(data: object = None) -> None:
        take(data)
        for chunk in chunks:
            if isinstance(chunk, Deferred):
                chunk.addCallbacks(pump, result.errback)
                return
            take(chunk)
        status, meta = sent[-1]
        result.callback(Page(status, meta, "".join(body)))

    pump()
    return result


@attrs.frozen
class Page:
    """A response as a client sees it."""

    status: int
    meta: str
    body: str

    @property
    def lines(self) -> list[str]:
        return self.body.splitlines()


class SessionHarness:
    """Runs requests through an application whose slabs live on a Clock.

    Without a ``clock``, the harness makes one that starts at :data:`START`.
    Making a harness empties the application's slabs: each test starts afresh.
    """

    def __init__(
        self,
        app: JetforceApplication,
        *,
        clock: Clock | None = None,
        defaults: SlabOptions | None = None,
        stores: StoreFactory = memory_stores,
    ) -> None:
        self.app = app
        if clock is None:
            clock = Clock()
            clock.advance(START)
        self.clock = clock
        #: Fires once the application's stores serve: at once for the memory
        #: store, after the clock moves for a store that answers later.
        self.opened: Deferred[Any] = succeed(None)
        if isinstance(app, SessionApplication):
            # Slabs are module-level, shared by every test that imports the game:
            # each harness starts from empty slabs on its own clock, cutting off
            # whatever an earlier test left running.
            closing = app.close(grace=0)
            if not closing.called:
                # A store that closes later, on an earlier test's clock that
                # will never move again: let go of it.
                for slab in app.slabs.values():
                    slab.abandon()
                abandon_secret()
            self.opened = app.open(self.clock, defaults, stores)

    def request(
        self,
        path: str = "/",
        *,
        player: str | None = "player",
        query: str | None = None,
        not_before: str = VALID_FROM,
        not_after: str = VALID_UNTIL,
    ) -> Deferred[Page]:
        """The page for ``path``; fires once every Deferred the route made has.

        ``not_before`` and ``not_after`` are the certificate's validity dates.
        """
        environ = make_environ(
            path,
            player=player,
            query=query,
            not_before=not_before,
            not_after=not_after,
        )
        sent: list[tuple[int, str]] = []
        chunks = iter(
            self.app(environ, lambda status, meta: sent.append((status, meta)))
        )
        return read_response(chunks, sent)

    def get(
        self,
        path: str = "/",
        *,
        player: str | None = "player",
        query: str | None = None,
        not_before: str = VALID_FROM,
        not_after: str = VALID_UNTIL,
    ) -> Page:
        """The page for ``path``, for routes that answer without waiting."""
        pages: list[Page] = []
        self.request(
            path,
            player=player,
            query=query,
            not_before=not_before,
            not_after=not_after,
        ).addCallback(pages.append)
        if not pages:
            raise AssertionError(
                f"{path} is still waiting: use request() and advance the clock"
            )
        return pages[0]


@implementer(ISessionStore)
class LaterStore:
    """A store that answers every call ``delay`` seconds later on its clock.

    It keeps its records in a :class:`~jetforce_sesh.MemoryStore` and provides only
    :class:`~jetforce_sesh.ISessionStore`, as a store in another process would:
    test a game against it to see that it works on any store, driving the
    answers with ``clock.advance(delay)``. Each answer is what the memory store
    said when the call was made.
    """

    def __init__(self, inner: MemoryStore, clock: IReactorTime, delay: float) -> None:
        self.inner = inner
        self.clock = clock
        self.delay = delay
        self.name = inner.name
        self.record_size = inner.record_size
        self.capacity = inner.capacity
        self.on_full = inner.on_full
        self.idle_timeout = inner.idle_timeout

    def _later(self, answer: Deferred[Any]) -> Deferred[Any]:
        later: Deferred[Any] = Deferred()
        self.clock.callLater(self.delay, answer.chainDeferred, later)
        return later

    def open(self) -> Deferred[None]:
        return self._later(self.inner.open())

    def close(self) -> Deferred[None]:
        return self._later(self.inner.close())

    def load(self, key: bytes) -> Deferred[Stored | None]:
        return self._later(self.inner.load(key))

    def peek(self, key: bytes) -> Deferred[Stored | None]:
        return self._later(self.inner.peek(key))

    def save(self, key: bytes, data: bytes, expected: int) -> Deferred[int]:
        return self._later(self.inner.save(key, data, expected))

    def delete(self, key: bytes, expected: int = ANY_VERSION) -> Deferred[bool]:
        return self._later(self.inner.delete(key, expected))

    def records(
        self, cursor: str | None = None, limit: int = 256
    ) -> Deferred[RecordPage]:
        return self._later(self.inner.records(cursor, limit))

    def stats(self) -> StoreStats:
        return self.inner.stats()

    def on_created(self, hook: Hook) -> None:
        self.inner.on_created(hook)

    def on_evicted(self, hook: Hook) -> None:
        self.inner.on_evicted(hook)

    def on_expired(self, hook: Hook) -> None:
        self.inner.on_expired(hook)


def later_stores(delay: float = 0.5) -> StoreFactory:
    """A store factory of :class:`LaterStore`: every answer comes ``delay``
    seconds later on the slab's clock, as from another process."""

    def make(spec: StoreSpec) -> LaterStore:
        return LaterStore(memory_stores(spec), spec.clock, delay)

    return make
