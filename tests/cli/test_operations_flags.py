"""The flags for running in public: their defaults, and a bad value in one line."""

from __future__ import annotations

import json

import pytest
from twisted.logger import Logger

from jetforce_sesh.cli.main import build_parser
from jetforce_sesh.cli.operations import log_observer
from tests.cli.test_launcher import run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--admin-cert", "alice"],
            "argument --admin-cert: --admin-cert 'alice' is not a fingerprint: give"
            " the admin's certificate's SHA-256 fingerprint, e.g. from `openssl x509"
            " -noout -fingerprint -sha256 -in admin.crt` (fingerprint must be"
            " SHA256:<64 hex digits>, 64 hex digits or urlsafe base64 of 32 bytes"
            " (got 'alice'))",
        ),
        (
            ["--rate-limit-cert", "60 a minute"],
            "argument --rate-limit-cert: --rate-limit-cert '60 a minute' must be"
            " N/PERIOD, e.g. 60/5m (60 requests per 5 minutes; units s, m, h, d)",
        ),
        (
            ["--health-path", "health"],
            "argument --health-path: --health-path 'health' must be a path from the"
            " root, e.g. /health",
        ),
        (
            ["--log-summary", "-1"],
            "argument --log-summary: --log-summary '-1' must be a number of seconds,"
            " 0 or more: use e.g. 300 for a line every 5 minutes, or 0 for none",
        ),
    ],
)
def test_a_bad_value_exits_2_with_one_line(args: list[str], message: str) -> None:
    result = run(*args)
    assert (2, "", f"jetforce-sesh: error: {message}\n") == (
        result.returncode,
        result.stdout,
        result.stderr,
    )


def test_everything_is_off_unless_asked_for() -> None:
    args = build_parser().parse_args([])
    assert (None, None, None, 0.0, "warn", "text") == (
        args.admin_cert,
        args.rate_limit_cert,
        args.health_path,
        args.log_summary,
        args.log_level,
        args.log_format,
    )


def test_admin_certs_are_parsed_and_repeatable() -> None:
    hexa, hexb = "ab" * 32, "CD:" * 31 + "CD"
    args = build_parser().parse_args(
        ["--admin-cert", "SHA256:" + hexa.upper(), "--admin-cert", hexb]
    )
    assert [bytes.fromhex(hexa), bytes.fromhex("cd" * 32)] == args.admin_cert


def test_the_health_path_loses_a_trailing_slash() -> None:
    assert "/up" == build_parser().parse_args(["--health-path", "/up/"]).health_path


@pytest.mark.parametrize(
    ("level", "shown"),
    [
        ("warn", ["stats info", "route warn"]),
        ("error", []),
        ("debug", ["stats info", "route debug", "route info", "route warn"]),
    ],
)
def test_the_log_level_and_the_figures_asked_for(
    capsys: pytest.CaptureFixture[str], level: str, shown: list[str]
) -> None:
    observer = log_observer("text", level)
    stats = Logger(namespace="jetforce_sesh.server.stats", observer=observer)
    route = Logger(namespace="jetforce_sesh.session.route", observer=observer)
    stats.info("stats info")
    route.debug("route debug")
    route.info("route info")
    route.warn("route warn")
    printed = capsys.readouterr().err.splitlines()
    assert shown == [line.split("] ", 1)[1] for line in printed]


def test_json_logs_keep_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    observer = log_observer("json")
    Logger(namespace="jetforce_sesh.session.route", observer=observer).warn(
        "late", slab="pig.Pig", player="3fa0c2d1", event="store late", status=41
    )
    event = json.loads(capsys.readouterr().err)
    assert ("pig.Pig", "3fa0c2d1", "store late", 41) == (
        event["slab"],
        event["player"],
        event["event"],
        event["status"],
    )
