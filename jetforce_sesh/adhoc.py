"""A self-signed server certificate for when none is given, as jetforce makes one.

Jetforce's own ad-hoc certificate has an RSA-2048 key. Gemini clients trust on
first use and accept any key type, and an EC P-256 handshake costs the server
about half a millisecond less per connection (measured in docs/performance.md),
which is more than a whole session route costs.
"""

from __future__ import annotations

import datetime
import os
import tempfile

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def ad_hoc_certificate(hostname: str) -> tuple[str, str]:
    """Paths of a certificate and key for ``hostname``, made once and reused."""
    directory = tempfile.gettempdir()
    certfile = os.path.join(directory, f"{hostname}.sesh-ec.crt")
    keyfile = os.path.join(directory, f"{hostname}.sesh-ec.key")
    if os.path.exists(certfile) and os.path.exists(keyfile):
        return certfile, keyfile
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
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), False)
        .sign(key, hashes.SHA256())
    )
    # Written under new names, then moved: two servers starting at once never
    # read a half-written file.
    for path, data, mode in (
        (
            keyfile,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            0o600,
        ),
        (certfile, certificate.public_bytes(serialization.Encoding.PEM), 0o644),
    ):
        partial = f"{path}.{os.getpid()}"
        with open(
            os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb"
        ) as out:
            out.write(data)
        os.replace(partial, path)
    return certfile, keyfile
