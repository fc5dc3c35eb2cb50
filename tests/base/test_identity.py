"""Fingerprints in every spelling servers use, and certificate validity dates."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jetforce_sesh.identity import BadFingerprint, parse_fingerprint, validity_problem

RAW = bytes(range(32))
HEX = RAW.hex()


@pytest.mark.parametrize(
    "spelling",
    [
        "SHA256:" + HEX.upper(),  # Jetforce's TLS_CLIENT_HASH
        HEX,  # gmid
        HEX.upper(),
        "sha256:" + HEX,
        ":".join(HEX[i : i + 2] for i in range(0, 64, 2)),
        base64.urlsafe_b64encode(RAW).decode(),  # TLS_CLIENT_HASH_B64
        base64.urlsafe_b64encode(RAW).decode().rstrip("="),
    ],
)
def test_every_spelling_gives_the_same_32_bytes(spelling: str) -> None:
    assert parse_fingerprint(spelling) == RAW


B64 = base64.urlsafe_b64encode(RAW).decode()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "SHA256:",
        "SHA256:" + "G" * 64,
        HEX[:-2],
        "x",
        # fromhex() skips spaces: these once gave 31 bytes, another player's prefix.
        "SHA256:" + "AB" * 31 + "  ",
        "ab" * 31 + "\t\n",
        "SHA256:" + "AB" * 31 + " A B",
        " " + HEX,
        HEX + "\n",
        "SHA256:" + HEX[:10] + " " + HEX[10:],
        # base64 with junk characters, or with the spare bits set
        "!!" + B64[:10] + "*#" + B64[10:],
        B64[:42] + "B",
        base64.b64encode(bytes([0xFB, 0xFF] * 16)).decode(),  # standard alphabet
        "SHA256:" + "٣" * 64,
    ],
)
def test_anything_else_is_refused_with_the_accepted_forms(bad: str) -> None:
    with pytest.raises(BadFingerprint) as raised:
        parse_fingerprint(bad)
    assert (
        "fingerprint must be SHA256:<64 hex digits>, 64 hex digits or urlsafe"
        f" base64 of 32 bytes (got {bad!r})"
    ) == str(raised.value)


@settings(max_examples=300)
@given(st.text(max_size=100))
def test_any_text_parses_to_32_bytes_or_is_refused(text: str) -> None:
    try:
        raw = parse_fingerprint(text)
    except BadFingerprint:
        return
    assert 32 == len(raw)
    assert (
        text
        in {
            "SHA256:" + raw.hex().upper(),
            raw.hex(),
            raw.hex().upper(),
        }
        or text.lower().replace("sha256:", "").replace(":", "") == raw.hex()
        or (text.rstrip("=") == base64.urlsafe_b64encode(raw).decode().rstrip("="))
    )


DATES = {
    "TLS_CLIENT_HASH": "SHA256:" + HEX.upper(),
    "TLS_CLIENT_NOT_BEFORE": "2026-01-01T00:00:00Z",
    "TLS_CLIENT_NOT_AFTER": "2026-12-31T00:00:00Z",
}
START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
END = 1_798_675_200.0  # 2026-12-31T00:00:00Z


def test_certificate_is_usable_between_its_dates_inclusive() -> None:
    assert validity_problem(DATES, START) is None
    assert validity_problem(DATES, END) is None


def test_certificate_before_its_start_is_not_yet_valid() -> None:
    assert (
        validity_problem(DATES, START - 1)
        == "Your certificate is not valid until 2026-01-01 00:00 UTC: use another one"
    )


def test_certificate_after_its_end_has_expired() -> None:
    assert (
        validity_problem(DATES, END + 1)
    ) == "Your certificate expired on 2026-12-31: make a new one"
