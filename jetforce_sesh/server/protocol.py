"""Jetforce's protocol, hardened against careless and hostile clients.

- **One request per connection.** Jetforce hands every line of a connection to the
  application, so one handshake could play hundreds of moves: here the first line
  is the request, and anything after it is ignored.
- **Bad request lines get a quiet 59**: too long, not UTF-8, control characters,
  userinfo, or no URL at all; one access-log line, no traceback.
- **A client that does not read is not buffered for.** Jetforce writes a body as
  fast as it can make it, whether the client reads or not, so a client that stops
  reading a large file made the server hold all of it: here, once a reply passes
  :data:`PRODUCER_AFTER` bytes, the body waits while the transport's buffer is
  full, and a client that reads nothing for :data:`WRITE_TIMEOUT` seconds is
  dropped. (Most pages are far smaller: they are written without the
  bookkeeping, which every connection paid for before.)
- **A certificate cryptography cannot read** (a malformed date) counts as one
  that cannot be used: the session routes answer ``62``, instead of every request
  failing with a traceback.
- **The access log cannot be forged**: what is logged of a request is escaped,
  and a request abandoned before it was answered still gets its line.
"""

from __future__ import annotations

import re
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from jetforce.app.base import EnvironDict, Status
from jetforce.protocol import GeminiProtocol
from jetforce.server import GeminiServer
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from jetforce_sesh.identity import BAD_CERTIFICATE
from jetforce_sesh.server.stats import ServerStats
from jetforce_sesh.session.route import ENVIRON_SECRET

#: The longest request line Gemini allows, in bytes, without its CRLF.
MAX_REQUEST = 1024
#: Seconds a client may read nothing of a reply before it is dropped.
WRITE_TIMEOUT = 30.0
#: Bytes of a reply written before the protocol paces it to the client (as the
#: transport's producer). A reply that stays under it is written at once: at
#: most this much is ever held for a client that does not read, whatever the
#: transport's own buffer size, and a page (most are a few kilobytes) costs no
#: producer registration. 16 KiB: one chunk of a file served from --dir.
PRODUCER_AFTER = 16384

# What a log line must not hold as it is: C0 and C1 controls, the Unicode line
# and paragraph separators, the backslash (the escapes' own sign) and the quote
# that ends a logged field.
_UNSAFE = re.compile('[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029\\\\"]')
_CONTROL = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]")


def _escape(found: re.Match[str]) -> str:
    char = found[0]
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escaped(text: str) -> str:
    """``text`` fit for one field of one log line: what could end the field or
    the line is spelled out as an escape."""
    if text.isascii() and text.isprintable() and "\\" not in text and '"' not in text:
        return text  # nothing to escape: the common case, without the regex
    return _UNSAFE.sub(_escape, text)


# A request line that is surely fine: a gemini URL whose host is letters,
# digits, dots and dashes (no userinfo, no IPv6 literal) and whose port has at
# most 5 digits, then printable ASCII without spaces. Such a line passes every
# check of bad_request (the port's range is checked beside it); any other line
# takes the checks one by one, which give the same answer, only slower.
_PLAIN_REQUEST = re.compile(
    rb"gemini://[A-Za-z0-9.\-]+(?::([0-9]{1,5}))?(?:[/?#][\x21-\x7e]*)?"
)


def bad_request(line: bytes) -> str | None:
    """Why ``line`` cannot be a Gemini request, or None if it may be one."""
    plain = _PLAIN_REQUEST.fullmatch(line)
    if plain is not None and len(line) <= MAX_REQUEST:
        port = plain[1]
        if port is None or int(port) <= 65535:
            return None
    if len(line) > MAX_REQUEST:
        return f"Request longer than {MAX_REQUEST} bytes"
    try:
        url = line.decode("utf-8")
    except UnicodeDecodeError:
        return "Request is not UTF-8"
    if _CONTROL.search(url):
        return "Request holds control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the host and port, or raises
    except ValueError:
        return "Request is not a URL"
    if "@" in parts.netloc:
        return "Request holds userinfo, which Gemini URLs may not"
    return None


class ConnectionOwner(Protocol):
    """What a connection needs of the server that made it, beyond Jetforce's."""

    reactor: IReactorTime
    #: Every connection not yet closed, for a graceful shutdown.
    connections: set[SessionProtocol]
    stats: ServerStats

    def forget(self, connection: SessionProtocol) -> None:
        """``connection`` has closed."""


@implementer(IPushProducer)
class SessionProtocol(GeminiProtocol):
    """Jetforce's protocol, one request per connection, careful with its clients."""

    # Two more than a request may hold: room for the CRLF.
    MAX_LENGTH = MAX_REQUEST + 2
    busy = False
    #: True once registered as the transport's producer (see write_body).
    producing = False
    _paused: Deferred[None] | None = None
    _stalled: IDelayedCall | None = None

    def __init__(self, server: GeminiServer, app: Any) -> None:
        super().__init__(server, app)
        #: The server, as what this protocol needs of it: only a server that
        #: provides it (SessionServer) uses this protocol.
        self.owner = cast(ConnectionOwner, server)
        self.environ: EnvironDict = {}

    def connectionMade(self) -> None:
        super().connectionMade()
        self.owner.connections.add(self)

    def write_body(self, data: str | bytes | None) -> None:
        if data is None:
            return
        if isinstance(data, str):
            data = data.encode()
        if not self.producing and self.response_size + len(data) > PRODUCER_AFTER:
            # Told from now on when the transport's buffer is full, and when it
            # has drained: registered before this write, so the write that
            # fills the buffer pauses the body. Jetforce awaits track_deferred
            # between two pieces of a body: from now on, it waits while the
            # client has not read the last ones too. (Until now, Jetforce's own,
            # without a frame of ours: nothing could have been paused.)
            self.producing = True
            self.track_deferred = self._paced  # type: ignore[method-assign]
            self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        super().write_body(data)

    def dataReceived(self, data: bytes) -> None:
        if not self.busy:
            super().dataReceived(data)  # type: ignore[no-untyped-call]

    def lineReceived(self, line: bytes) -> Deferred[None]:
        if self.busy:
            return succeed(None)  # a second line in the same packet
        self.busy = True
        problem = bad_request(line)
        if problem is not None:
            self.refuse(line, problem)
            return succeed(None)
        return super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        if not self.busy:
            self.busy = True
            self.refuse(line[:MAX_REQUEST], f"Request longer than {MAX_REQUEST} bytes")

    def refuse(self, line: bytes, problem: str) -> None:
        self.setTimeout(None)  # type: ignore[no-untyped-call]
        self.url = line.decode("utf-8", "replace")
        self.write_status(Status.BAD_REQUEST, problem)
        self.flush_status()
        self.log_request()
        self.finish_connection()

    def build_environ(self) -> EnvironDict:
        try:
            self.environ = super().build_environ()
            return self.environ
        except ValueError:
            # cryptography cannot read the certificate (a malformed date): serve
            # the request as if it had none, and let session routes say 62.
            transport: Any = self.transport
            transport.getPeerCertificate = lambda: None
            try:
                environ = super().build_environ()
            finally:
                del transport.getPeerCertificate
            environ[BAD_CERTIFICATE] = True
            self.environ = environ
            return environ

    # -- writing at the client's pace ---------------------------------------------

    def pauseProducing(self) -> None:
        if self._paused is None:
            self._paused = Deferred()
            self._stalled = self.owner.reactor.callLater(WRITE_TIMEOUT, self._drop)

    def resumeProducing(self) -> None:
        paused, self._paused = self._paused, None
        if self._stalled is not None and self._stalled.active():
            self._stalled.cancel()
        self._stalled = None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:
        self.resumeProducing()

    def finish_connection(self) -> None:
        # A transport with a producer registered waits for it before it closes:
        # the reply is written, so let go first.
        if self.producing:
            self.producing = False
            if self.transport is not None:
                self.transport.unregisterProducer()  # type: ignore[attr-defined]
        super().finish_connection()

    def _drop(self) -> None:
        self._stalled = None
        self.transport.abortConnection()  # type: ignore[attr-defined]

    async def _paced(self, deferred: Deferred[Any]) -> Any:
        """Jetforce's track_deferred, then the wait for a paused body."""
        result = await super().track_deferred(deferred)
        while self._paused is not None:
            await super().track_deferred(self._paused)
        return result

    # -- the access log ---------------------------------------------------------

    def log_request(self) -> None:
        if hasattr(self, "url") and not hasattr(self, "status"):
            # Abandoned before it was answered (the client left, or the server
            # closed): Jetforce would log nothing of it.
            self.status, self.meta = 0, "no answer: the connection closed first"
        if hasattr(self, "url"):
            self.owner.stats.answered(int(self.status))
            if self.environ.get(ENVIRON_SECRET):
                self.url = query_hidden(self.url)
            self.url = escaped(self.url)
        if hasattr(self, "meta"):
            self.meta = escaped(self.meta)
        super().log_request()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._paused is not None or self._stalled is not None:
            self.resumeProducing()
        super().connectionLost(reason)
        self.owner.forget(self)


def query_hidden(url: str) -> str:
    """``url`` with its query, a secret (a link code), left out: the access log
    must not hand it to whoever reads the log."""
    path, mark, _ = url.partition("?")
    return f"{path}?(hidden)" if mark else url
