"""The ad-hoc server certificate: a private directory, exclusive files, replaced
when expired or not ours, an IP address entry for an IP hostname, and every
loopback name for a loopback hostname."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jetforce_sesh.cli.adhoc import ad_hoc_certificate, private_directory
from jetforce_sesh.cli.checks import UsageError


@pytest.fixture(autouse=True)
def temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory the pair goes under, for this test alone."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path / f"jetforce-sesh-{os.getuid()}"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


#: What the pair for localhost is for: every name of the loopback interface, as
#: the capsule answers to each (amfora checks gemini://127.0.0.1:PORT/'s IP).
LOOPBACK_NAMES = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
    x509.IPAddress(ipaddress.ip_address("::1")),
]


def names(certfile: str) -> list[x509.GeneralName]:
    certificate = x509.load_pem_x509_certificate(Path(certfile).read_bytes())
    return list(
        certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    )


def test_a_new_pair_is_private_and_reused_next_time(temporary: Path) -> None:
    certfile, keyfile = ad_hoc_certificate("localhost")
    assert (str(temporary / "localhost.crt"), str(temporary / "localhost.key")) == (
        certfile,
        keyfile,
    )
    assert (0o700, 0o600, 0o600) == (
        mode(temporary),
        mode(Path(certfile)),
        mode(Path(keyfile)),
    )
    key = serialization.load_pem_private_key(Path(keyfile).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert LOOPBACK_NAMES == names(certfile)
    before = Path(certfile).read_bytes()
    assert (certfile, keyfile) == ad_hoc_certificate("localhost")
    assert before == Path(certfile).read_bytes()
    assert ["localhost.crt", "localhost.key"] == sorted(
        p.name for p in temporary.iterdir()
    )


def test_an_ip_hostname_gets_an_ip_address_entry() -> None:
    certfile, _ = ad_hoc_certificate("192.0.2.7")
    assert [x509.IPAddress(ipaddress.ip_address("192.0.2.7"))] == names(certfile)


@pytest.mark.parametrize("hostname", ["127.0.0.1", "::1"])
def test_a_loopback_address_gets_every_loopback_name(hostname: str) -> None:
    certfile, _ = ad_hoc_certificate(hostname)
    own = x509.IPAddress(ipaddress.ip_address(hostname))
    assert [own, *(n for n in LOOPBACK_NAMES if n != own)] == names(certfile)


def test_a_directory_others_may_enter_is_refused(temporary: Path) -> None:
    temporary.mkdir(mode=0o755)
    temporary.chmod(0o755)
    with pytest.raises(UsageError) as raised:
        ad_hoc_certificate("localhost")
    assert (
        f"the ad-hoc certificate directory {str(temporary)!r} may be entered by"
        " others (mode 755): remove it, or give --tls-certfile and --tls-keyfile"
    ) == str(raised.value)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a directory away")
def test_a_directory_of_another_user_is_refused(temporary: Path) -> None:
    temporary.mkdir(mode=0o700)
    os.chown(temporary, 4242, -1)
    with pytest.raises(UsageError) as raised:
        private_directory()
    assert (
        f"the ad-hoc certificate directory {str(temporary)!r} belongs to user 4242,"
        f" not to {os.getuid()}: remove it, or give --tls-certfile and --tls-keyfile"
    ) == str(raised.value)


def test_a_symlink_in_place_of_the_directory_is_refused(
    temporary: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    temporary.symlink_to(elsewhere)
    with pytest.raises(UsageError) as raised:
        private_directory()
    assert (
        f"the ad-hoc certificate directory {str(temporary)!r} is not a directory:"
        " remove it, or give --tls-certfile and --tls-keyfile"
    ) == str(raised.value)


def test_a_planted_symlink_is_replaced_not_followed(
    temporary: Path, tmp_path: Path
) -> None:
    temporary.mkdir(mode=0o700)
    target = tmp_path / "victim"
    target.write_text("precious\n")
    (temporary / "localhost.key").symlink_to(target)
    _, keyfile = ad_hoc_certificate("localhost")
    assert "precious\n" == target.read_text()
    assert not Path(keyfile).is_symlink()
    assert 0o600 == mode(Path(keyfile))


def test_a_pair_readable_by_others_is_replaced(temporary: Path) -> None:
    certfile, keyfile = ad_hoc_certificate("localhost")
    Path(keyfile).chmod(0o666)
    before = Path(keyfile).read_bytes()
    assert (certfile, keyfile) == ad_hoc_certificate("localhost")
    assert before != Path(keyfile).read_bytes()
    assert 0o600 == mode(Path(keyfile))


def write_pair(
    directory: Path,
    *,
    days_left: float,
    key_of_other: bool = False,
    names: list[x509.GeneralName] = LOOPBACK_NAMES,
) -> bytes:
    """A pair for localhost with ``days_left`` of validity; its certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=400))
        .not_valid_after(now + datetime.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName(names), False)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    directory.mkdir(mode=0o700, exist_ok=True)
    for path, data in (
        (directory / "localhost.crt", pem),
        (
            directory / "localhost.key",
            (other if key_of_other else key).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        ),
    ):
        path.write_bytes(data)
        path.chmod(0o600)
    return pem


def test_a_pair_made_for_localhost_alone_is_replaced_by_one_for_every_loopback(
    temporary: Path,
) -> None:
    """What 0.3.0 made: a certificate amfora refuses for gemini://127.0.0.1/."""
    write_pair(temporary, days_left=200, names=[x509.DNSName("localhost")])
    certfile, _ = ad_hoc_certificate("localhost")
    assert LOOPBACK_NAMES == names(certfile)


@pytest.mark.parametrize(
    ("days_left", "key_of_other", "replaced"),
    [(-400, False, True), (10, False, True), (200, True, True), (200, False, False)],
)
def test_an_expired_ending_or_mismatched_pair_is_replaced(
    temporary: Path, days_left: float, key_of_other: bool, replaced: bool
) -> None:
    planted = write_pair(temporary, days_left=days_left, key_of_other=key_of_other)
    certfile, _ = ad_hoc_certificate("localhost")
    assert replaced == (planted != Path(certfile).read_bytes())
    served = x509.load_pem_x509_certificate(Path(certfile).read_bytes())
    assert served.not_valid_after_utc > datetime.datetime.now(
        datetime.UTC
    ) + datetime.timedelta(days=9)
