"""Start-up checks: each bad setting fails here, in one line naming it and the fix.

Jetforce would accept most of these and then fail later, on every handshake or
every request, with a traceback; a capsule owner should learn at once.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from OpenSSL import SSL

from jetforce_sesh.options import SlabOptions
from jetforce_sesh.server.interfaces import listen_interfaces
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.memory import MemoryStore


class UsageError(Exception):
    """A command-line value that cannot be used; its message is the one line shown."""


_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


def check_hostname(text: str) -> str:
    """``text`` as routes compare it: lower case, an IDN in its ASCII form.

    Jetforce lower-cases and IDNA-encodes the host of every URL before routes
    compare it with ``--hostname``; a hostname spelled otherwise would match none.
    """
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    fix = "give the name clients use to reach the capsule, e.g. --hostname example.org"
    try:
        ascii_name = text.lower().encode("idna").decode("ascii")
    except UnicodeError as error:
        raise UsageError(
            f"--hostname {text!r} is not a host name ({error}): {fix}"
        ) from None
    labels = ascii_name.split(".")
    bad = next((label for label in labels if not _LABEL.fullmatch(label)), None)
    if not text or bad is not None or len(ascii_name) > 253:
        why = (
            "empty"
            if not text
            else f"{bad!r} is not a label of letters, digits and inner hyphens"
            if bad is not None
            else "longer than 253 characters"
        )
        raise UsageError(f"--hostname {text!r} is not a host name ({why}): {fix}")
    return ascii_name


def check_port(host: str, port: int) -> None:
    """Fail now, in one line, where Jetforce would log a traceback and idle on.

    Checked before the slabs are reserved, so a taken port costs no memory.
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port: give one from 0 to 65535")
    if port == 0:
        return
    for interface in listen_interfaces(host):
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As Twisted will: a port in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((interface, port))
            except OSError as error:
                raise UsageError(
                    f"--port {port} on {interface} is not"
                    f" available ({error.strerror}): stop what uses it, or choose"
                    f" another --port"
                ) from None


def _reason(error: SSL.Error) -> str:
    """OpenSSL's first reason, in words: "no start line", "key values mismatch"."""
    reasons = [str(entry[2]) for entry in (error.args[0] if error.args else [])]
    return next((reason for reason in reasons if reason), "not usable")


def check_tls_files(
    certfile: str | None,
    keyfile: str | None,
    cafile: str | None,
    capath: str | None,
) -> None:
    """Load the TLS files as the server will, now: a garbage certificate, a key
    that does not match it or a bad CA file fails here, naming the file."""
    for flag, path in (
        ("--tls-certfile", certfile),
        ("--tls-keyfile", keyfile),
        ("--tls-cafile", cafile),
    ):
        if path is not None and (
            not os.path.isfile(path) or not os.access(path, os.R_OK)
        ):
            raise UsageError(
                f"{flag} {path!r} cannot be read: give the path of a PEM file this"
                f" user can read"
            )
    if capath is not None and not os.path.isdir(capath):
        raise UsageError(
            f"--tls-capath {capath!r} is not a directory: give a directory of"
            f" CA files, or leave it out"
        )
    if certfile is None:
        return
    context = SSL.Context(SSL.TLS_METHOD)
    key = keyfile or certfile
    key_flag = "--tls-keyfile" if keyfile else "--tls-certfile"
    pair = "give the PEM files of one certificate and its key"
    steps: list[tuple[Any, str, str]] = [
        (
            lambda: context.use_certificate_chain_file(certfile),
            f"--tls-certfile {certfile!r} holds no usable PEM certificate",
            pair,
        ),
        (
            # Alone first: next to a certificate, OpenSSL also compares them.
            lambda: SSL.Context(SSL.TLS_METHOD).use_privatekey_file(key),
            f"{key_flag} {key!r} holds no usable PEM private key",
            pair,
        ),
        (
            lambda: context.use_privatekey_file(key),
            f"{key_flag} {key!r} is not the key of --tls-certfile {certfile!r}",
            pair,
        ),
    ]
    if cafile or capath:
        where = f"--tls-cafile {cafile!r}" if cafile else f"--tls-capath {capath!r}"
        steps.append(
            (
                lambda: context.load_verify_locations(cafile, capath),
                f"{where} holds no usable PEM CA certificate",
                "give the CA certificates (PEM) that sign your players' certificates,"
                " or leave it out",
            )
        )
    for step, problem, fix in steps:
        try:
            step()
        except SSL.Error as error:
            raise UsageError(f"{problem} ({_reason(error)}): {fix}") from None


def available_memory() -> int:
    """Bytes the kernel can give without swapping (MemAvailable), or all of it."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_memory(slabs: Sequence[Slab[Any]], defaults: SlabOptions) -> None:
    """Refuse slabs larger than the memory the machine has free, before
    reserving them.

    Slabs are zero-filled when they are made, so an oversized one would not
    fail cleanly: it would push the machine into swap or the OOM killer.
    """
    needed = 0
    for slab in slabs:
        options = slab.resolve(defaults)
        size = slab.codec_for(options).record_size
        needed += MemoryStore.bytes_needed(size, options.max_records)
    free = available_memory()
    if needed > free:
        raise UsageError(
            f"the slabs need {needed / (1 << 30):.1f} GiB but this machine has"
            f" {free / (1 << 30):.1f} GiB of memory available: lower --max-records"
            f" or --record-size"
        )
