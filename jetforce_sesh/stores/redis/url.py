"""``--store`` URLs of the Redis store: where the server is and how to log in.

``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (the same over TLS,
the server's certificate checked against the system's CAs, or the PEM file of
``?ca=PATH``), ``unix:///path/redis.sock[?db=N]``. A password is better kept out
of the command line, where ``ps`` shows it to every user of the machine: the
environment variable :data:`PASSWORD_ENV` gives it instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import attrs

from jetforce_sesh.errors import ConfigError

#: Environment variable holding the Redis password when the URL has none.
PASSWORD_ENV = "JETFORCE_SESH_REDIS_PASSWORD"
DEFAULT_PORT = 6379
SCHEMES = ("redis", "rediss", "unix")
FORMS = (
    "redis://[:password@]host[:port][/db], rediss://... (TLS) or"
    " unix:///path/redis.sock[?db=N]"
)


@attrs.frozen
class RedisTarget:
    """A Redis server to reach, from a ``--store`` URL."""

    host: str | None = None
    port: int = DEFAULT_PORT
    path: str | None = None
    db: int = 0
    tls: bool = False
    ca: str | None = None
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """The URL without its password, for messages and the banner."""
        if self.path is not None:
            return f"unix://{self.path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{self.db}"


def _bad(url: str, why: str) -> ConfigError:
    return ConfigError(f"--store {url!r}: {why}")


def _db(url: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _bad(url, f"the database must be a number such as 0 (got {text!r})")
    return int(text)


def parse_store_url(url: str, environ: Mapping[str, str]) -> RedisTarget:
    """The Redis server ``url`` names; ConfigError naming what is wrong."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise _bad(url, f"{error}: use {FORMS}") from None
    if parts.scheme not in SCHEMES:
        raise _bad(url, f"use memory, {FORMS}")
    query = parse_qs(parts.query)
    unknown = sorted(set(query) - {"db", "ca"})
    if unknown:
        raise _bad(url, f"unknown parameter {unknown[0]!r}: only db and ca are read")
    password = unquote(parts.password) if parts.password is not None else None
    username = unquote(parts.username) if parts.username else None
    if password is None:
        password = environ.get(PASSWORD_ENV) or None
    if parts.scheme == "unix":
        if not parts.path or parts.netloc:
            raise _bad(url, "a socket is unix:///path/redis.sock (three slashes)")
        db = _db(url, query["db"][-1]) if "db" in query else 0
        return RedisTarget(path=parts.path, db=db, password=password)
    if not parts.hostname:
        raise _bad(url, f"no host: use {FORMS}")
    path = parts.path.strip("/")
    if "db" in query:
        raise _bad(url, "give the database as the path, redis://host:port/db")
    if "ca" in query and parts.scheme != "rediss":
        raise _bad(url, "?ca= is for rediss:// (TLS) only")
    return RedisTarget(
        host=parts.hostname,
        port=DEFAULT_PORT if port is None else port,
        db=_db(url, path) if path else 0,
        tls=parts.scheme == "rediss",
        ca=query["ca"][-1] if "ca" in query else None,
        username=username,
        password=password,
    )
