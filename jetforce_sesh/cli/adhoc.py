"""A self-signed server certificate for when none is given, as jetforce makes one.

Jetforce's own ad-hoc certificate has an RSA-2048 key. Gemini clients trust on
first use and accept any key type, and an EC P-256 handshake costs the server
about half a millisecond less per connection (measured in docs/performance.md),
which is more than a whole session route costs.

The pair lives in a directory only this user may enter (``jetforce-sesh-<uid>``
under the temporary directory), checked before use: another user of the machine
must not be able to plant a file or a symlink where the private key is written,
or hand the server a certificate of their own. Files are created exclusively,
mode 0600, and moved into place whole. A pair is reused while it is whole,
ours, for the same hostname and valid for another :data:`RENEW_BEFORE`; an
expired, foreign or damaged one is replaced. An IP address as ``--hostname``
gets an IP address entry, which Go clients such as amfora insist on; a loopback
name (``localhost``, ``127.0.0.1``, ``::1``) gets all three, since the capsule
answers to each of them alike.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import stat
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jetforce_sesh.cli.checks import UsageError
from jetforce_sesh.session.application import LOOPBACK

#: How long a new ad-hoc certificate is valid.
LIFETIME = datetime.timedelta(days=365)
#: A certificate with less validity left than this is replaced at start-up.
RENEW_BEFORE = datetime.timedelta(days=30)


def private_directory() -> Path:
    """This user's own directory for ad-hoc pairs, made if need be and checked."""
    path = Path(tempfile.gettempdir()) / f"jetforce-sesh-{os.getuid()}"
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    problem = None
    if not stat.S_ISDIR(info.st_mode):
        problem = "is not a directory"
    elif info.st_uid != os.getuid():
        problem = f"belongs to user {info.st_uid}, not to {os.getuid()}"
    elif info.st_mode & 0o077:
        problem = f"may be entered by others (mode {stat.S_IMODE(info.st_mode):o})"
    if problem is not None:
        raise UsageError(
            f"the ad-hoc certificate directory {str(path)!r} {problem}: remove it,"
            f" or give --tls-certfile and --tls-keyfile"
        )
    return path


def _san(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


def names_for(hostname: str) -> list[x509.GeneralName]:
    """The subject alternative names of the ad-hoc certificate for ``hostname``:
    the hostname first, and for a loopback name the other loopback names."""
    # A capsule on a loopback name answers to all of them: its certificate too.
    others = [name for name in ("localhost", "127.0.0.1", "::1") if name != hostname]
    names = [hostname, *others] if hostname in LOOPBACK else [hostname]
    return [_san(name) for name in names]


def _usable(certfile: Path, keyfile: Path, hostname: str) -> bool:
    """Whether an existing pair is ours, whole, for ``hostname`` and not about to
    expire."""
    try:
        for path in (certfile, keyfile):
            info = path.lstat()
            if (
                not stat.S_ISREG(info.st_mode)
                or info.st_uid != os.getuid()
                or info.st_mode & 0o077
            ):
                return False
        certificate = x509.load_pem_x509_certificate(certfile.read_bytes())
        key = serialization.load_pem_private_key(keyfile.read_bytes(), None)
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except (OSError, ValueError, TypeError, x509.ExtensionNotFound):
        return False
    now = datetime.datetime.now(datetime.UTC)
    return (
        key.public_key() == certificate.public_key()
        and list(names) == names_for(hostname)
        and certificate.not_valid_before_utc <= now
        and certificate.not_valid_after_utc - RENEW_BEFORE > now
    )


def _write(directory: Path, path: Path, data: bytes) -> None:
    # mkstemp creates the file exclusively, mode 0600, under a fresh name; the
    # rename puts it in place whole, so no reader ever sees half of it.
    handle, partial = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def ad_hoc_certificate(hostname: str) -> tuple[str, str]:
    """Paths of a certificate and key for ``hostname``, made once and reused."""
    directory = private_directory()
    certfile = directory / f"{hostname}.crt"
    keyfile = directory / f"{hostname}.key"
    if _usable(certfile, keyfile, hostname):
        return str(certfile), str(keyfile)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names_for(hostname)), False)
        .sign(key, hashes.SHA256())
    )
    _write(
        directory,
        keyfile,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write(directory, certfile, certificate.public_bytes(serialization.Encoding.PEM))
    return str(certfile), str(keyfile)
