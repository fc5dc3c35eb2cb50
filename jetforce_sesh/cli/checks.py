"""Start-up checks: each bad setting fails here, in one line naming it and the fix.

Jetforce would accept most of these and then fail later, on every handshake or
every request, with a traceback; a capsule owner should learn at once.
"""

from __future__ import annotations

import datetime
import errno
import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

from jetforce_sesh.options import SlabOptions
from jetforce_sesh.server.interfaces import listen_interfaces
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.memory import MemoryStore


class UsageError(Exception):
    """A command-line value that cannot be used; its message is the one line shown.

    ``detail`` is more for whoever asks for it (``--log-level debug``): the
    traceback of a capsule module that failed to import.
    """

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class Unset(str):
    """A flag's default, told apart from the same value given on the command
    line: ``--cgi-dir cgi-bin`` without ``--dir`` cannot work, and its default
    alone is no mistake."""


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


_ANY_ADDRESS = (
    "give an address of this machine, e.g. 127.0.0.1, or '' for every address"
)


def check_host(host: str) -> None:
    """``--host`` names an address this machine can listen on, or fails in one
    line that blames it (not the port)."""
    if not host:
        return
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    if re.fullmatch(r"[0-9.]+|[0-9a-fA-F:.]*:[0-9a-fA-F:.]*", host):
        # Digits and dots (or colons) are meant as an address, never a name to look up.
        raise UsageError(f"--host {host!r} is not an IP address: {_ANY_ADDRESS}")
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError as error:
        raise UsageError(
            f"--host {host!r} cannot be resolved ({error.strerror}): {_ANY_ADDRESS}"
        ) from None


def check_port(host: str, port: int) -> None:
    """Fail now, in one line, where Jetforce would log a traceback and idle on.

    Checked before the slabs are reserved, so a taken port costs no memory. The
    line blames what is wrong: the address (not this machine's), or the port
    (in use, or privileged).
    """
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port: give one from 0 to 65535")
    check_host(host)
    for interface in listen_interfaces(host):
        family = socket.AF_INET6 if ":" in interface else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As Twisted will: a port in TIME_WAIT is free, a listening one is not.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((interface, port))
            except OSError as error:
                raise UsageError(_bind_problem(host, interface, port, error)) from None


def _bind_problem(host: str, interface: str, port: int, error: OSError) -> str:
    reason = error.strerror or str(error)
    if error.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or isinstance(
        error, socket.gaierror
    ):
        return (
            f"--host {host!r} is not an address of this machine ({reason}):"
            f" {_ANY_ADDRESS}"
        )
    if error.errno == errno.EACCES:
        return (
            f"--port {port} on {interface} needs a privilege this user lacks"
            f" ({reason}): choose a --port from 1024 up, or give the server"
            f" CAP_NET_BIND_SERVICE"
        )
    return (
        f"--port {port} on {interface} is not available ({reason}): stop what"
        f" uses it, or choose another --port"
    )


def check_tls_flags(
    use_tls: bool,
    certfile: str | None,
    keyfile: str | None,
    cafile: str | None,
    capath: str | None,
) -> None:
    """TLS flags that would be ignored: refused, naming the flag."""
    if not use_tls:
        given = [
            flag
            for flag, value in (
                ("--tls-certfile", certfile),
                ("--tls-keyfile", keyfile),
                ("--tls-cafile", cafile),
                ("--tls-capath", capath),
            )
            if value is not None
        ]
        if given:
            raise UsageError(
                f"{given[0]} is a TLS file, and --no-tls turns TLS off: leave one of"
                f" them out"
            )
    elif keyfile is not None and certfile is None:
        raise UsageError(
            f"--tls-keyfile {keyfile!r} needs --tls-certfile: without a certificate"
            f" the server makes one of its own, with its own key; give both, or"
            f" neither"
        )


def check_file_flags(
    root_directory: str | None,
    cgi_directory: str,
    index_file: str,
    default_lang: str | None,
) -> None:
    """``--cgi-dir``, ``--index-file`` and ``--default-lang`` say how to serve
    ``--dir``: given without it, they would be ignored."""
    if root_directory is not None:
        return
    for flag, value in (
        ("--cgi-dir", cgi_directory),
        ("--index-file", index_file),
        ("--default-lang", default_lang),
    ):
        if value is not None and not isinstance(value, Unset):
            raise UsageError(
                f"{flag} {value!r} needs --dir: it says how the files of --dir are"
                f" served, and without --dir none are; give --dir too, or leave"
                f" {flag} out"
            )


def check_state_dir(path: str) -> None:
    """A ``--state-dir`` that names a file is a file, not a directory to make."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(
            f"--state-dir {path!r} is a file, not a directory: give a directory"
            f" (one that does not exist yet is made)"
        )


def _inside(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or under it, once links are followed."""
    real = os.path.realpath(path)
    root = os.path.realpath(directory)
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


#: What ``check_not_served`` says to do, unless told otherwise.
KEEP_OUTSIDE = "keep it outside --dir"


def check_not_served(
    root_directory: str, private: Sequence[tuple[str, str, str]]
) -> None:
    """Nothing private may lie in what ``--dir`` serves to anyone.

    ``private`` names each private path (the state directory: every record and
    account link; the bridge socket; the server's private key), gives it, and
    says what to do if it is inside.
    """
    for what, path, fix in private:
        if _inside(path, root_directory):
            raise UsageError(
                f"{what} {path!r} is inside --dir {root_directory!r}, which serves"
                f" its files to anyone without a certificate: {fix}"
            )


def _names(certificate: x509.Certificate) -> list[str]:
    """The host names and addresses a certificate is for (its SAN, else its CN)."""
    try:
        alternative = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        return [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(
                NameOID.COMMON_NAME
            )
        ]
    names: list[str] = list(alternative.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in alternative.get_values_for_type(x509.IPAddress)]
    return names


def _matches(name: str, hostname: str) -> bool:
    """Whether certificate name ``name`` covers ``hostname`` (a wildcard covers
    one leftmost label, as clients check it)."""
    name, hostname = name.lower().rstrip("."), hostname.lower().rstrip(".")
    if name.startswith("*."):
        first, _, rest = hostname.partition(".")
        return bool(first) and rest == name[2:]
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(hostname)
    except ValueError:
        return name == hostname


def certificate_warnings(
    certfile: str, hostname: str, now: datetime.datetime
) -> list[str]:
    """What a client will hold against the server certificate: expired, not yet
    valid, or for other names than ``--hostname``. The server starts all the
    same (a capsule owner may be about to renew it), with a line for each."""
    try:
        certificate = x509.load_pem_x509_certificates(Path(certfile).read_bytes())[0]
    except (OSError, ValueError, IndexError):
        return []  # check_tls_files says what is wrong with the file
    flag = f"--tls-certfile {certfile!r}"
    found = []
    if certificate.not_valid_after_utc < now:
        found.append(
            f"{flag} expired on {certificate.not_valid_after_utc:%Y-%m-%d}: clients"
            f" refuse an expired certificate; renew it"
        )
    elif certificate.not_valid_before_utc > now:
        found.append(
            f"{flag} is not valid until"
            f" {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC: clients"
            f" refuse it until then; check the machine's clock, or the certificate"
        )
    names = _names(certificate)
    if not any(_matches(name, hostname) for name in names):
        held = ", ".join(names) if names else "no host name"
        found.append(
            f"{flag} is for {held}, not for --hostname {hostname}: clients that"
            f" check the name refuse it; give the certificate of --hostname, or"
            f" the --hostname it is for"
        )
    return found


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
