"""Flags that cannot work are refused at start-up, in one line naming the flag;
flags that will disappoint (a server certificate clients refuse) are warned
about; and each message blames what is wrong, not something else."""

from __future__ import annotations

import datetime
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from jetforce_sesh.cli import checks
from jetforce_sesh.cli.main import build_parser
from tests.support import REPO, Server

ADMIN = "SHA256:" + "AB" * 32


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The launcher with ``args``; a server that starts instead of refusing is
    stopped after a few seconds, and the test then fails on its exit status."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "jetforce_sesh", "--port", "0", *args],
            capture_output=True,
            text=True,
            timeout=20,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        )
    except subprocess.TimeoutExpired as expired:
        out = expired.stderr
        text = out.decode() if isinstance(out, bytes) else (out or "")
        return subprocess.CompletedProcess(args, -1, "", "still serving:\n" + text)


def refused(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str]:
    result = run(*args, cwd=cwd, env=env)
    return result.returncode, result.stderr


def error(message: str) -> tuple[int, str]:
    return 2, f"jetforce-sesh: error: {message}\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tls-keyfile", "server.key"],
            "--tls-keyfile 'server.key' needs --tls-certfile: without a certificate"
            " the server makes one of its own, with its own key; give both, or"
            " neither",
        ),
        (
            ["--no-tls", "--tls-certfile", "server.crt"],
            "--tls-certfile is a TLS file, and --no-tls turns TLS off: leave one of"
            " them out",
        ),
        (
            ["--cgi-dir", "cgi-bin"],
            "--cgi-dir 'cgi-bin' needs --dir: it says how the files of --dir are"
            " served, and without --dir none are; give --dir too, or leave --cgi-dir"
            " out",
        ),
        (
            ["--index-file", "index.gmi"],
            "--index-file 'index.gmi' needs --dir: it says how the files of --dir"
            " are served, and without --dir none are; give --dir too, or leave"
            " --index-file out",
        ),
        (
            ["--default-lang", "en"],
            "--default-lang 'en' needs --dir: it says how the files of --dir are"
            " served, and without --dir none are; give --dir too, or leave"
            " --default-lang out",
        ),
        (
            ["--rate-limit", "0/1m"],
            "--rate-limit '0/1m' lets no request through, and every one would get"
            " 44: give 1 or more requests per period, e.g. 60/5m, or leave"
            " --rate-limit out",
        ),
        (
            ["--rate-limit-cert", "0/1m"],
            "argument --rate-limit-cert: --rate-limit-cert '0/1m' lets no request"
            " through, and every one would get 44: give 1 or more requests per"
            " period, e.g. 60/5m, or leave --rate-limit-cert out",
        ),
        (
            ["--health-path", "/admin", "--admin-cert", ADMIN],
            "--health-path '/admin' is a path the capsule answers already (the admin"
            " pages of --admin-cert, '/admin'), which it would replace for everyone:"
            " give a path of its own, e.g. /health",
        ),
        (
            ["--health-path", "/counter/"],
            "--health-path '/counter' is a path the capsule answers already (a route"
            " of --app 'jetforce_sesh:app', '/counter'), which it would replace for"
            " everyone: give a path of its own, e.g. /health",
        ),
        (
            ["--store-prefix", "capsule"],
            "--store-prefix 'capsule' needs a Redis --store: records kept in memory"
            " or in --state-dir have no keys to prefix; give --store too, or leave"
            " --store-prefix out",
        ),
        (
            ["--host", "999.1.1.1"],
            "--host '999.1.1.1' is not an IP address: give an address of this"
            " machine, e.g. 127.0.0.1, or '' for every address",
        ),
        (
            # TEST-NET-1: an address, but never one of this machine's.
            ["--host", "192.0.2.1"],
            "--host '192.0.2.1' is not an address of this machine (Cannot assign"
            " requested address): give an address of this machine, e.g. 127.0.0.1,"
            " or '' for every address",
        ),
    ],
)
def test_a_flag_that_cannot_work_is_refused_in_one_line(
    args: list[str], message: str
) -> None:
    assert error(message) == refused(*args)


def test_a_state_dir_that_is_a_file_is_called_a_file(tmp_path: Path) -> None:
    afile = tmp_path / "passwd"
    afile.write_text("root:x:0:0::/root:/bin/sh\n")
    assert error(
        f"--state-dir {str(afile)!r} is a file, not a directory: give a directory"
        " (one that does not exist yet is made)"
    ) == refused("--state-dir", str(afile))


@pytest.mark.parametrize(
    ("flag", "inside"),
    [
        ("--state-dir", "capsule/state"),
        ("--state-dir", "capsule"),
        ("--bridge-socket", "capsule/sesh.sock"),
        ("--state-dir", "link/state"),  # the same directory, through a link
    ],
)
def test_nothing_private_may_lie_in_what_dir_serves(
    tmp_path: Path, flag: str, inside: str
) -> None:
    (tmp_path / "capsule").mkdir()
    (tmp_path / "link").symlink_to("capsule")
    args = ["--dir", "capsule", flag, inside]
    if flag == "--bridge-socket":
        args += ["--app", "tests.apps.bridged_counter:app"]
    assert error(
        f"{flag} {inside!r} is inside --dir 'capsule', which serves its files to"
        " anyone without a certificate: keep it outside --dir"
    ) == refused(*args, cwd=tmp_path)


def test_the_servers_private_key_may_not_lie_in_what_dir_serves(
    tmp_path: Path,
) -> None:
    capsule = tmp_path / "capsule"
    capsule.mkdir()
    certfile, keyfile = write_certificate(capsule, "localhost", days=30)
    assert error(
        f"--tls-keyfile {str(keyfile)!r} is inside --dir {str(capsule)!r}, which"
        " serves its files to anyone without a certificate: keep it outside --dir"
    ) == refused(
        "--dir",
        str(capsule),
        "--tls-certfile",
        str(certfile),
        "--tls-keyfile",
        str(keyfile),
    )


def test_the_ad_hoc_key_may_not_lie_in_what_dir_serves(tmp_path: Path) -> None:
    """``--dir /tmp`` would serve /tmp/jetforce-sesh-UID/localhost.key."""
    (tmp_path / "tmp").mkdir()
    key = tmp_path / "tmp" / f"jetforce-sesh-{os.getuid()}" / "localhost.key"
    assert error(
        f"the ad-hoc server key {str(key)!r} is inside --dir {str(tmp_path)!r},"
        " which serves its files to anyone without a certificate: serve another"
        " directory, or give --tls-certfile and --tls-keyfile outside --dir"
    ) == refused("--dir", str(tmp_path), env={"TMPDIR": str(tmp_path / "tmp")})


def test_a_capsule_that_raises_while_importing_is_named_with_file_and_line() -> None:
    line = (
        "--app 'tests.apps.raises:app': importing tests.apps.raises failed:"
        " KeyError: 'missing' (tests/apps/raises.py, line 7; --log-level debug"
        " shows the traceback)"
    )
    assert error(line) == refused("--app", "tests.apps.raises:app", cwd=REPO)
    status, shown = refused(
        "--app", "tests.apps.raises:app", "--log-level", "debug", cwd=REPO
    )
    assert 2 == status
    assert shown.startswith("Traceback (most recent call last):\n")
    assert 'raises.py", line 7, in <module>\n' in shown
    assert shown.endswith(f"KeyError: 'missing'\njetforce-sesh: error: {line}\n")


def test_admin_cert_takes_the_line_openssl_prints() -> None:
    pairs = ":".join(["AB"] * 32)
    for printed in (f"sha256 Fingerprint={pairs}", f"SHA256 Fingerprint={pairs}\n"):
        args = build_parser().parse_args(["--admin-cert", printed])
        assert [bytes.fromhex("AB" * 32)] == args.admin_cert


# -- the server certificate ------------------------------------------------------


def write_certificate(
    directory: Path,
    *names: str,
    days: float,
    common_name: str = "capsule",
    start_days: float = -1,
) -> tuple[Path, Path]:
    """A self-signed server certificate for ``names`` (none: a CN only),
    valid from ``start_days`` to ``days`` from now."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=start_days))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    general: list[x509.GeneralName] = []
    for name in names:
        try:
            general.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            general.append(x509.DNSName(name))
    if general:
        builder = builder.add_extension(x509.SubjectAlternativeName(general), False)
    certificate = builder.sign(key, hashes.SHA256())
    certfile, keyfile = directory / "server.crt", directory / "server.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


NOW = datetime.datetime.now(datetime.UTC)


@pytest.mark.parametrize(
    ("names", "hostname"),
    [
        (["example.org"], "example.org"),
        (["EXAMPLE.org", "www.example.org"], "example.org"),
        (["*.example.org"], "gemini.example.org"),
        (["127.0.0.1"], "127.0.0.1"),
        (["::1"], "::1"),
    ],
)
def test_a_certificate_for_the_hostname_in_date_draws_no_warning(
    tmp_path: Path, names: list[str], hostname: str
) -> None:
    certfile, _ = write_certificate(tmp_path, *names, days=30)
    assert [] == checks.certificate_warnings(str(certfile), hostname, NOW)


def test_a_certificate_of_common_name_only_is_read_by_its_common_name(
    tmp_path: Path,
) -> None:
    certfile, _ = write_certificate(tmp_path, days=30, common_name="example.org")
    assert [] == checks.certificate_warnings(str(certfile), "example.org", NOW)
    assert [
        f"--tls-certfile {str(certfile)!r} is for example.org, not for --hostname"
        " localhost: clients that check the name refuse it; give the certificate"
        " of --hostname, or the --hostname it is for"
    ] == checks.certificate_warnings(str(certfile), "localhost", NOW)


@pytest.mark.parametrize(
    ("names", "hostname"),
    [
        (["*.example.org"], "example.org"),  # a wildcard covers one label, not none
        (["*.example.org"], "a.b.example.org"),  # nor two
        (["example.org"], "example.org.evil"),
    ],
)
def test_a_certificate_for_other_names_is_warned_about(
    tmp_path: Path, names: list[str], hostname: str
) -> None:
    certfile, _ = write_certificate(tmp_path, *names, days=30)
    assert [
        f"--tls-certfile {str(certfile)!r} is for {', '.join(names)}, not for"
        f" --hostname {hostname}: clients that check the name refuse it; give the"
        " certificate of --hostname, or the --hostname it is for"
    ] == checks.certificate_warnings(str(certfile), hostname, NOW)


def test_an_expired_or_early_certificate_is_warned_about(tmp_path: Path) -> None:
    certfile, _ = write_certificate(tmp_path, "localhost", days=-2, start_days=-30)
    ended = (NOW - datetime.timedelta(days=2)).strftime("%Y-%m-%d")
    assert [
        f"--tls-certfile {str(certfile)!r} expired on {ended}: clients refuse an"
        " expired certificate; renew it"
    ] == checks.certificate_warnings(str(certfile), "localhost", NOW)
    certfile, _ = write_certificate(tmp_path, "localhost", days=30, start_days=2)
    starts = x509.load_pem_x509_certificate(
        certfile.read_bytes()
    ).not_valid_before_utc.strftime("%Y-%m-%d %H:%M")
    assert [
        f"--tls-certfile {str(certfile)!r} is not valid until {starts} UTC: clients"
        " refuse it until then; check the machine's clock, or the certificate"
    ] == checks.certificate_warnings(str(certfile), "localhost", NOW)


def test_the_server_starts_with_an_expired_certificate_and_says_so_once(
    tmp_path: Path,
) -> None:
    certfile, keyfile = write_certificate(
        tmp_path, "example.org", days=-1, start_days=-30
    )
    server = Server(["--tls-certfile", str(certfile), "--tls-keyfile", str(keyfile)])
    try:
        assert 20 == server.request("/").status
    finally:
        output = server.stop()
    warnings = [line for line in output.splitlines() if "warning" in line]
    ended = (NOW - datetime.timedelta(days=1)).strftime("%Y-%m-%d")
    assert [
        f"jetforce-sesh: warning: --tls-certfile {str(certfile)!r} expired on"
        f" {ended}: clients refuse an expired certificate; renew it",
        f"jetforce-sesh: warning: --tls-certfile {str(certfile)!r} is for"
        " example.org, not for --hostname localhost: clients that check the name"
        " refuse it; give the certificate of --hostname, or the --hostname it is"
        " for",
    ] == warnings
