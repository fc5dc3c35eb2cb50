"""SessionProtocol on a StringTransport and a Clock: a page is written without
producer bookkeeping; a long reply is paced to the client from PRODUCER_AFTER
bytes on, waiting while the transport says its buffer is full."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st
from jetforce.app.base import EnvironDict, JetforceApplication, WriteStatusCallable
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from jetforce_sesh.server import protocol as protocol_module
from jetforce_sesh.server.protocol import SessionProtocol
from jetforce_sesh.server.server import SessionServer

CHUNK = 4096


#: Bytes the test transport takes before it says its buffer is full.
FULL = 32768


class Watched(StringTransport):
    """A transport that remembers how much had been written when a producer
    was registered, and pauses it once it holds FULL bytes (as Twisted's TCP
    transport does past its bufferSize), until the client reads."""

    registered_at: int | None = None
    paused_at: int | None = None

    def registerProducer(self, producer: object, streaming: bool) -> None:
        self.registered_at = len(self.value())
        super().registerProducer(producer, streaming)

    def write(self, data: bytes) -> None:
        super().write(data)
        full = len(self.value()) >= FULL
        if self.producer is not None and self.paused_at is None and full:
            self.paused_at = len(self.value())
            self.producer.pauseProducing()


class Pages(JetforceApplication):
    """``/small``: one short page; ``/long``: 40 chunks of 4 KiB, counted."""

    def __init__(self) -> None:
        super().__init__()
        self.made = 0

    def __call__(  # type: ignore[override]
        self, environ: EnvironDict, send_status: WriteStatusCallable
    ) -> Iterator[bytes]:
        send_status(20, "text/plain")
        if environ["GEMINI_URL"].endswith("/small"):
            yield b"a page\n"
            return
        for _ in range(40):
            self.made += 1
            yield b"x" * CHUNK


def connect(app: Pages) -> tuple[SessionProtocol, Watched, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    server = SessionServer(app, reactor=reactor, use_tls=False, port=1965)
    protocol = server.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    assert isinstance(protocol, SessionProtocol)
    transport = Watched(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(transport)
    return protocol, transport, reactor


def test_a_page_is_written_without_registering_a_producer() -> None:
    protocol, transport, reactor = connect(Pages())
    protocol.dataReceived(b"gemini://localhost/small\r\n")
    reactor.pump([0] * 5)
    assert (b"20 text/plain\r\na page\n", None, True) == (
        transport.value(),
        transport.registered_at,
        transport.disconnecting,
    )
    assert transport.producer is None


def test_a_long_reply_is_paced_from_producer_after_bytes_on() -> None:
    app = Pages()
    protocol, transport, reactor = connect(app)
    protocol.dataReceived(b"gemini://localhost/long\r\n")
    reactor.pump([0] * 8)
    # Registered before the write that would have passed PRODUCER_AFTER.
    assert transport.registered_at is not None
    assert transport.registered_at <= protocol_module.PRODUCER_AFTER
    assert transport.producer is protocol
    # The transport's buffer is full: the body waits, however long (short of
    # the write time-out).
    paused = transport.paused_at
    assert paused is not None and FULL <= paused < FULL + CHUNK
    made = app.made
    reactor.pump([0] * 20 + [1.0] * 5)
    assert (made, paused) == (app.made, len(transport.value()))
    protocol.resumeProducing()  # the client read: the transport drained
    reactor.pump([0] * 200)
    assert 40 == app.made
    assert len(transport.value()) == len(b"20 text/plain\r\n") + 40 * CHUNK
    # Written: let go of the transport, which then closes.
    assert (None, True) == (transport.producer, transport.disconnecting)


# -- the request check and the log's escapes: fast paths, the same answers ------


def checked_one_by_one(line: bytes) -> str | None:
    """The oracle: every check of a request line, one after the other (as the
    protocol made them before it had a fast path)."""
    if len(line) > 1024:
        return "Request longer than 1024 bytes"
    try:
        url = line.decode("utf-8")
    except UnicodeDecodeError:
        return "Request is not UTF-8"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029" for c in url):
        return "Request holds control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parses the host and port, or raises
    except ValueError:
        return "Request is not a URL"
    if "@" in parts.netloc:
        return "Request holds userinfo, which Gemini URLs may not"
    return None


def spelled_out(text: str) -> str:
    """The oracle for the log's escapes: every character looked at."""
    out = []
    for c in text:
        if c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c == '"':
            out.append(f"\\x{ord(c):02x}")
        elif c in "\u2028\u2029":
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


PIECES = [
    b"gemini://",
    b"localhost",
    b"example.org",
    b"[::1]",
    b":",
    b":1965",
    b":99999",
    b":0",
    b"/",
    b"?",
    b"#",
    b"@",
    b" ",
    b"%",
    b"\\",
    b'"',
    b"a",
    b"-",
    b".",
    b"\x7f",
    b"\x00",
    b"\xc3\xa9",
    b"\xff",
    b"\r",
    b"http://",
    b"x" * 1000,
]
lines = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map(b"".join),
    st.binary(max_size=64),
)


@settings(max_examples=2000, deadline=None)
@given(line=lines)
def test_the_fast_request_check_answers_as_every_check_would(line: bytes) -> None:
    assert checked_one_by_one(line) == protocol_module.bad_request(line)


@settings(max_examples=1000, deadline=None)
@given(text=st.text() | st.sampled_from(["plain", 'a "quote"', "back\\slash", "\x85"]))
def test_the_logs_escapes_are_the_same_with_the_fast_path(text: str) -> None:
    assert spelled_out(text) == protocol_module.escaped(text)
