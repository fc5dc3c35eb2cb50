"""``--store`` URLs of the Redis store: where the server is and how to log in.

``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` (the same over TLS,
the server's certificate checked against the system's CAs, or the PEM file of
``?ca=PATH``), ``unix:///path/redis.sock[?db=N]``, and
``redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/service[/db]``:
the primary that the Sentinels at those addresses (port 26379 unless given)
monitor under the name ``service``, found again after every failover; the login
is the primary's (the Sentinels are asked without one), and
``redis+cluster://[[user]:password@]host[:port][,host[:port]...][/]``: a Valkey or
Redis Cluster, found from any of those nodes (port 6379 unless given), database 0
as every cluster has only that one. A password is better kept out
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
SENTINEL_PORT = 26379
SENTINEL = "redis+sentinel"
CLUSTER = "redis+cluster"
SCHEMES = ("redis", "rediss", "unix", SENTINEL, CLUSTER)
FORMS = (
    "redis://[:password@]host[:port][/db], rediss://... (TLS),"
    " unix:///path/redis.sock[?db=N],"
    " redis+sentinel://host[:port][,host[:port]...]/service[/db] or"
    " redis+cluster://host[:port][,host[:port]...]"
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
    #: The Sentinels to ask for the primary of ``service``, with a Sentinel URL.
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    #: The nodes to learn a cluster's layout from, with a cluster URL.
    nodes: tuple[tuple[str, int], ...] = ()

    @property
    def cluster(self) -> bool:
        """Whether this is a Valkey or Redis Cluster."""
        return bool(self.nodes)

    @property
    def shown(self) -> str:
        """The URL without its password, for messages and the banner."""
        if self.service is not None:
            return f"{SENTINEL}://{_hosts(self.sentinels)}/{self.service}/{self.db}"
        if self.nodes:
            return f"{CLUSTER}://{_hosts(self.nodes)}/"
        if self.path is not None:
            return f"unix://{self.path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/{self.db}"


def _hosts(addresses: tuple[tuple[str, int], ...]) -> str:
    return ",".join(
        f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        for host, port in addresses
    )


def _bad(url: str, why: str) -> ConfigError:
    return ConfigError(f"--store {url!r}: {why}")


def _db(url: str, text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _bad(url, f"the database must be a number such as 0 (got {text!r})")
    return int(text)


def parse_store_url(url: str, environ: Mapping[str, str]) -> RedisTarget:
    """The Redis server ``url`` names; ConfigError naming what is wrong."""
    if url.startswith(f"{SENTINEL}:"):
        return _sentinel_target(url, environ)
    if url.startswith(f"{CLUSTER}:"):
        return _cluster_target(url, environ)
    if url.startswith("rediss+cluster:"):
        raise _bad(
            url,
            "TLS to a cluster is not supported yet: use redis+cluster:// on a"
            " private network",
        )
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


def _login(url: str, environ: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """The addresses part of a URL with several hosts, and its login."""
    parts = urlsplit(url)
    login, _, hosts = parts.netloc.rpartition("@")
    username, _, password = login.partition(":")
    return (
        hosts,
        unquote(username) if username else None,
        unquote(password) if password else environ.get(PASSWORD_ENV) or None,
    )


def _addresses(
    url: str, hosts: str, default_port: int, what: str
) -> tuple[tuple[str, int], ...]:
    found: list[tuple[str, int]] = []
    for address in hosts.split(","):
        try:
            place = urlsplit(f"//{address}")
            port = place.port
        except ValueError as error:
            raise _bad(url, f"{error}: use {FORMS}") from None
        if not place.hostname:
            raise _bad(url, f"{what} is host[:port] (got {address!r})")
        found.append((place.hostname, default_port if port is None else port))
    return tuple(found)


def _sentinel_target(url: str, environ: Mapping[str, str]) -> RedisTarget:
    """A ``redis+sentinel://`` URL: several addresses, a service name, a db."""
    parts = urlsplit(url)
    if parts.query:
        raise _bad(url, "a Sentinel URL takes no ?parameters")
    hosts, username, password = _login(url, environ)
    sentinels = _addresses(url, hosts, SENTINEL_PORT, "a Sentinel address")
    service, _, db = parts.path.strip("/").partition("/")
    if not service:
        raise _bad(url, "name the service the Sentinels monitor: .../service[/db]")
    return RedisTarget(
        db=_db(url, db) if db else 0,
        username=username,
        password=password,
        sentinels=sentinels,
        service=unquote(service),
    )


def _cluster_target(url: str, environ: Mapping[str, str]) -> RedisTarget:
    """A ``redis+cluster://`` URL: the addresses of some of the nodes."""
    parts = urlsplit(url)
    if parts.query:
        raise _bad(url, "a cluster URL takes no ?parameters")
    if parts.path.strip("/") not in ("", "0"):
        raise _bad(url, "a cluster has only database 0: end the URL after the nodes")
    hosts, username, password = _login(url, environ)
    nodes = _addresses(url, hosts, DEFAULT_PORT, "a cluster node's address")
    return RedisTarget(username=username, password=password, nodes=nodes)
