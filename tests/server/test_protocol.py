"""SessionProtocol on a StringTransport and a Clock: a page is written without
producer bookkeeping; a long reply is paced to the client from PRODUCER_AFTER
bytes on, waiting while the transport says its buffer is full."""

from __future__ import annotations

from collections.abc import Iterator

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
