"""The capsules the load benchmark serves, one per scenario.

Every scenario answers with the same page (:func:`page`) so that the only thing
that differs between them is where the visit count is kept. Each is started the
way a user starts a capsule: ``python -m jetforce_sesh --app benchmarks.apps:NAME``.
"""

from __future__ import annotations

import os
import sqlite3

import attrs
from jetforce.app.base import Request, Response, Status

# The plain page and path, kept where stock Jetforce can import them alone.
from benchmarks.pages import PLAIN_PATH as PLAIN_PATH
from benchmarks.pages import page as page
from jetforce_sesh import SessionApplication, use_accounts

COUNTER_PATH = "/counter"
SQLITE_PATH = "/sqlite"
SQLITE_DB_ENV = "BENCH_SQLITE_DB"


# 1. The plain route: a route that keeps nothing (stock Jetforce's is the ceiling).
plain = SessionApplication("plain")


@plain.route(PLAIN_PATH)
def constant(request: Request) -> Response:
    return Response(Status.SUCCESS, "text/gemini", page(1))


# 2. The visit counter on @session_route, in a 64-byte slab record.
counter = SessionApplication("counter")


@attrs.define
class Visits:
    count: int = 0


counter.slab(Visits, record_size=64)


@counter.session_route(COUNTER_PATH, record=Visits)
def count_visit(request: Request, record: Visits) -> Response:
    record.count += 1
    return Response(Status.SUCCESS, "text/gemini", page(record.count))


# 4. The astrobotany model: one SQLite connection per process, WAL, and a read
# and a write per request (astrobotany reads the user by fingerprint, then saves
# its last_seen). Raw sqlite3 rather than an ORM, so this is its best case.
sqlite_counter = SessionApplication("sqlite")
_db: sqlite3.Connection | None = None


def _connection() -> sqlite3.Connection:
    global _db
    if _db is None:
        path = os.environ.get(SQLITE_DB_ENV)
        if not path:
            raise RuntimeError(
                f"{SQLITE_DB_ENV} is not set: give the SQLite counter a database"
                f" file, e.g. {SQLITE_DB_ENV}=/tmp/counter.db"
            )
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # astrobotany's own pragmas: WAL with synchronous=normal, so a commit
        # appends to the WAL and only checkpoints fsync.
        db.execute("PRAGMA journal_mode=wal")
        db.execute("PRAGMA synchronous=normal")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute(
            "CREATE TABLE IF NOT EXISTS visits"
            " (fingerprint TEXT PRIMARY KEY, count INTEGER NOT NULL)"
        )
        _db = db
    return _db


@sqlite_counter.route(SQLITE_PATH)
def sqlite_visit(request: Request) -> Response:
    fingerprint = request.environ.get("TLS_CLIENT_HASH")
    if not fingerprint:
        return Response(Status.CLIENT_CERTIFICATE_REQUIRED, "Attach a certificate")
    db = _connection()
    row = db.execute(
        "SELECT count FROM visits WHERE fingerprint = ?", (fingerprint,)
    ).fetchone()
    count = (row[0] if row else 0) + 1
    db.execute(
        "INSERT INTO visits (fingerprint, count) VALUES (?, ?)"
        " ON CONFLICT(fingerprint) DO UPDATE SET count = excluded.count",
        (fingerprint, count),
    )
    return Response(Status.SUCCESS, "text/gemini", page(count))


# 5. The CGI scenarios: no routes, so every path goes to --dir and its cgi-bin.
cgi_only = SessionApplication("cgi")


# 6. The CGI bridge: the demo counter's record with its fixed layout, served to
# the example C CGI (examples/cgi-bin/counter.c) over --bridge-socket, and a
# 64-byte record, the KV daemon's size, for benchmarks.bridgetrip.
bridged = SessionApplication("bridge")


@attrs.define
class Pair:
    count: int = 0
    ever: int = 0


@attrs.define
class Wide:
    count: int = 0


bridged.slab(Pair, name="visits", layout="<QQ")
bridged.slab(Wide, name="wide", layout="<Q56x")


# 7. The visit counter with accounts on: every request maps its certificate to
# its account first (benchmarks.micro times it against the counter above).
accounted = SessionApplication("accounts")


@attrs.define
class AccountVisits:
    count: int = 0


accounted.slab(AccountVisits, record_size=64)


@accounted.session_route(COUNTER_PATH, record=AccountVisits)
def count_account_visit(request: Request, record: AccountVisits) -> Response:
    record.count += 1
    return Response(Status.SUCCESS, "text/gemini", page(record.count))


accounts = use_accounts(accounted)
