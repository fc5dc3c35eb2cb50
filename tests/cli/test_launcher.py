"""The jetforce-sesh command line: jetforce's flags, ours, and one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from jetforce.__main__ import parser as jetforce_parser
from jetforce.app.base import Request
from twisted.internet.task import Clock

from jetforce_sesh.cli.checks import available_memory
from jetforce_sesh.cli.main import build_parser
from jetforce_sesh.ops.ratelimit import ClockedRateLimiter
from jetforce_sesh.testing import (
    client_context,
    exchange,
    make_client_certificate,
    make_environ,
)
from tests.support import MakeCert, Server


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jetforce_sesh", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--app", "nocolon"],
            "--app 'nocolon' must be MODULE:ATTR, e.g. --app jetforce_sesh:app",
        ),
        (
            ["--app", "no_such_module:app"],
            "--app 'no_such_module:app': no module named 'no_such_module'; check the"
            " name, or start from the directory that holds it",
        ),
        (
            ["--app", "jetforce_sesh:nothing"],
            "--app 'jetforce_sesh:nothing': module 'jetforce_sesh' has no attribute"
            " 'nothing'; name the application object after the colon",
        ),
        (
            ["--app", "jetforce_sesh:__version__"],
            "--app 'jetforce_sesh:__version__' is a str, not a Jetforce application:"
            " point it at a SessionApplication or JetforceApplication",
        ),
        (
            ["--max-records", "0"],
            "argument --max-records: max_records must be a whole number from 1 to"
            " 268435456 (got 0): use e.g. 10000 (--max-records 10000)",
        ),
        (
            ["--record-size", "big"],
            "argument --record-size: record_size must be a whole number of bytes from"
            " 1 to 1048576 (got 'big'): use e.g. 256 (--record-size 256)",
        ),
        (
            ["--idle-timeout", "-5"],
            "argument --idle-timeout: idle_timeout must be a number of seconds, 0 or"
            " more (got -5.0): use e.g. 86400 (--idle-timeout 86400), or 0 to keep"
            " idle records",
        ),
        (
            ["--max-queued", "-1"],
            "argument --max-queued: max_queued must be a whole number from 0 to 1000"
            " (got -1): use e.g. 4 (--max-queued 4)",
        ),
        (
            ["--shutdown-grace", "soon"],
            "argument --shutdown-grace: shutdown grace must be a number of seconds"
            " from 0 to 3600 (got 'soon'): use e.g. 10 (--shutdown-grace 10)",
        ),
        (
            ["--on-full", "panic"],
            "argument --on-full: on_full must be 'evict' or 'refuse' (got 'panic'):"
            " 'evict' drops the least recently used record, 'refuse' turns new"
            " players away",
        ),
        (
            ["--dir", "/no/such/dir"],
            "--dir '/no/such/dir' is not a directory: give the directory of files to"
            " serve, or leave --dir out",
        ),
        (
            ["--rate-limit", "lots"],
            "--rate-limit 'lots' must be N/PERIOD, e.g. 60/5m (60 requests per 5"
            " minutes; units s, m, h, d)",
        ),
        (
            ["--sync", "full"],
            "--sync full needs --state-dir: without it records live in memory only"
            " and nothing is written to disk",
        ),
        (
            ["--port", "70000"],
            "--port 70000 is not a TCP port: give one from 0 to 65535",
        ),
        (
            ["--tls-certfile", "/no/such.crt"],
            "--tls-certfile '/no/such.crt' cannot be read: give the path of a PEM"
            " file this user can read",
        ),
        (
            ["--app", "jetforce.app.static:StaticDirectoryApplication"],
            "--app 'jetforce.app.static:StaticDirectoryApplication' is a type, not a"
            " Jetforce application: point it at a SessionApplication or"
            " JetforceApplication",
        ),
        (
            ["--app", "tests.apps.plain:app", "--dir", "."],
            "--dir serves the paths a SessionApplication leaves unclaimed, and --app"
            " 'tests.apps.plain:app' is not one: serve it with a SessionApplication,"
            " or serve files with stock jetforce",
        ),
        (
            ["--app", "tests.apps.exits:app"],
            "--app 'tests.apps.exits:app': importing tests.apps.exits called"
            " sys.exit(3); a capsule module must not exit when imported",
        ),
        (
            ["--app", "tests.apps.odd_getattr:app"],
            "--app 'tests.apps.odd_getattr:app': reading 'app' from"
            " tests.apps.odd_getattr failed: RuntimeError: no app here"
            " (tests/apps/odd_getattr.py, line 7; --log-level debug shows the"
            " traceback)",
        ),
        (
            ["--hostname", "a/b"],
            "--hostname 'a/b' is not a host name ('a/b' is not a label of letters,"
            " digits and inner hyphens): give the name clients use to reach the"
            " capsule, e.g. --hostname example.org",
        ),
        (
            ["--hostname", ""],
            "--hostname '' is not a host name (empty): give the name clients use to"
            " reach the capsule, e.g. --hostname example.org",
        ),
        (
            ["--hostname", "a" * 70 + ".org"],
            f"--hostname '{'a' * 70}.org' is not a host name (encoding with 'idna'"
            " codec failed (UnicodeError: label empty or too long)): give the name"
            " clients use to reach the capsule, e.g. --hostname example.org",
        ),
        (
            ["--app", "tests.apps.oversized:app"],
            "record type Diary needs 129 bytes for its defaults but its slots hold 64:"
            " give it record_size=129 or more",
        ),
    ],
)
def test_bad_value_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert (2, "", f"jetforce-sesh: error: {message}\n") == (
        result.returncode,
        result.stdout,
        result.stderr,
    )


def test_every_jetforce_flag_is_accepted_with_its_default() -> None:
    ours = {a.dest: a for a in build_parser()._actions}
    for action in jetforce_parser._actions:
        assert action.dest in ours
        assert action.option_strings == ours[action.dest].option_strings
        if action.dest != "root_directory":
            assert action.default == ours[action.dest].default, action.dest
    assert ours["root_directory"].default is None


def test_session_flags_and_their_defaults() -> None:
    args = build_parser().parse_args([])
    assert ("jetforce_sesh:app", 10000, 256, 0.0, "evict", 4, 10.0) == (
        args.app,
        args.max_records,
        args.record_size,
        args.idle_timeout,
        args.on_full,
        args.max_queued,
        args.shutdown_grace,
    )


def test_console_script_and_module_show_the_same_help() -> None:
    script = subprocess.run(
        [str(Path(sys.executable).parent / "jetforce-sesh"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    module = subprocess.run(
        [sys.executable, "-m", "jetforce_sesh", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (0, 0) == (script.returncode, module.returncode)
    assert script.stdout == module.stdout
    assert "--app MODULE:ATTR" in script.stdout
    assert "--tls-certfile FILE" in script.stdout


def test_slabs_larger_than_the_available_memory_are_refused_before_reserving() -> None:
    available = available_memory()
    huge = available // 100  # records of 100 bytes (+68 of bookkeeping) each
    result = run("--app", "tests.apps.slow_counter:app", "--max-records", str(huge))
    assert 2 == result.returncode
    assert re.fullmatch(
        r"jetforce-sesh: error: the slabs need [0-9.]+ GiB but this machine has"
        r" [0-9.]+ GiB of memory available: lower --max-records or --record-size\n",
        result.stderr,
    )


def test_available_memory_is_what_the_kernel_calls_available() -> None:
    meminfo = Path("/proc/meminfo").read_text()
    (line,) = [line for line in meminfo.splitlines() if line.startswith("MemAvailable")]
    kib = int(line.split()[1])
    assert abs(available_memory() - kib * 1024) < 256 * 1024 * 1024


def test_rate_limit_counts_per_address_on_the_clock() -> None:
    clock = Clock()
    limiter = ClockedRateLimiter("2/2h", clock)
    request = Request(make_environ("/"))
    assert (7200, [None, None]) == (
        limiter.period,
        [limiter.check(request), limiter.check(request)],
    )
    refused = limiter.check(request)
    assert refused is not None
    # The seconds to wait, and only them: what a client reads a 44's meta as.
    assert (44, "7200") == (refused.status, refused.meta)
    clock.advance(7199)
    assert limiter.check(request) is not None
    clock.advance(1)
    assert limiter.check(request) is None


@pytest.fixture
def pems(tmp_path: Path) -> dict[str, Path]:
    """A certificate, its key, another key, and a file that is no PEM at all."""
    one = make_client_certificate(tmp_path, "one")
    two = make_client_certificate(tmp_path, "two")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    return {
        "cert": one.cert_path,
        "key": one.key_path,
        "other": two.key_path,
        "junk": junk,
    }


def test_unusable_tls_files_stop_the_server_with_one_line(
    pems: dict[str, Path], tmp_path: Path
) -> None:
    cert, key, other, junk = pems["cert"], pems["key"], pems["other"], pems["junk"]
    cases = [
        (
            ["--tls-certfile", str(junk), "--tls-keyfile", str(key)],
            f"--tls-certfile {str(junk)!r} holds no usable PEM certificate (no start"
            " line): give the PEM files of one certificate and its key",
        ),
        (
            ["--tls-certfile", str(tmp_path), "--tls-keyfile", str(key)],
            f"--tls-certfile {str(tmp_path)!r} cannot be read: give the path of a PEM"
            " file this user can read",
        ),
        (
            ["--tls-certfile", str(cert), "--tls-keyfile", str(junk)],
            # OpenSSL's words, from the OpenSSL that cryptography bundles.
            f"--tls-keyfile {str(junk)!r} holds no usable PEM private key"
            " (unsupported): give the PEM files of one certificate and its key",
        ),
        (
            ["--tls-certfile", str(cert), "--tls-keyfile", str(other)],
            f"--tls-keyfile {str(other)!r} is not the key of --tls-certfile"
            f" {str(cert)!r} (key values mismatch): give the PEM files of one"
            " certificate and its key",
        ),
        (
            [
                "--tls-certfile",
                str(cert),
                "--tls-keyfile",
                str(key),
                "--tls-cafile",
                str(junk),
            ],
            f"--tls-cafile {str(junk)!r} holds no usable PEM CA certificate (no"
            " certificate or crl found): give the CA certificates (PEM) that sign"
            " your players' certificates, or leave it out",
        ),
    ]
    for args, message in cases:
        result = run(*args)
        assert (2, f"jetforce-sesh: error: {message}\n") == (
            result.returncode,
            result.stderr,
        )


def test_a_unicode_hostname_is_served_in_its_ascii_form() -> None:
    server = Server(["--hostname", "ünïcode.example"])
    try:
        assert 20 == server.request("/", host="xn--ncode-cta3g.example").status
    finally:
        output = server.stop()
    assert "Open gemini://xn--ncode-cta3g.example:" in output


def test_a_hostname_in_capitals_still_routes(make_cert: MakeCert) -> None:
    server = Server(["--hostname", "LocalHost"])
    try:
        assert 20 == server.request("/counter", make_cert("launch-caps")).status
    finally:
        server.stop()


def test_host_empty_listens_on_ipv4_and_ipv6_at_once() -> None:
    server = Server(["--host", ""], listening=r"Listening on \[::\]:(\d+)")
    try:
        for address in ("127.0.0.1", "::1"):
            reply = exchange(
                client_context(),
                server.port,
                f"gemini://localhost:{server.port}/\r\n".encode(),
                address=address,
            )
            assert reply.startswith(b"20 text/gemini\r\n"), address
    finally:
        output = server.stop()
    assert "Traceback" not in output
    assert 1 == output.count("Listening on")
