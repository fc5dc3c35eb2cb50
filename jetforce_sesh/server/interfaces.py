"""Which addresses the server listens on for ``--host``."""

from __future__ import annotations

import socket


def listen_interfaces(host: str) -> list[str]:
    """Where to listen for ``--host``: "" means every address, IPv4 and IPv6.

    On a system whose IPv6 sockets also take IPv4 (Linux's default), one socket
    on ``::`` does both; binding ``0.0.0.0`` too would then fail.
    """
    if host:
        return [host]
    if not socket.has_ipv6:
        return ["0.0.0.0"]
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            dual = not probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    except OSError:
        return ["0.0.0.0"]
    return ["::"] if dual else ["0.0.0.0", "::"]
