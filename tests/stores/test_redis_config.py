"""Choosing the Redis store: each wrong setting stops the server with one line
saying what is wrong and how to fix it (exit status 2)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from jetforce_sesh.cli.main import main
from jetforce_sesh.errors import ConfigError
from jetforce_sesh.stores.redis import cluster, link
from jetforce_sesh.stores.redis.url import PASSWORD_ENV, RedisTarget, parse_store_url
from tests.redis_support import RedisServer, free_port
from tests.support import REPO

APP = "jetforce_sesh.games.counter:app"
SLAB = "visits"
FORMS = (
    "redis://[:password@]host[:port][/db], rediss://... (TLS),"
    " unix:///path/redis.sock[?db=N],"
    " redis+sentinel://host[:port][,host[:port]...]/service[/db] or"
    " redis+cluster://host[:port][,host[:port]...]"
)


@pytest.mark.parametrize(
    "url, target",
    [
        ("redis://localhost", RedisTarget(host="localhost")),
        ("redis://10.0.0.2:6380/3", RedisTarget(host="10.0.0.2", port=6380, db=3)),
        (
            "redis://:s%40cret@h/1",
            RedisTarget(host="h", db=1, password="s@cret"),
        ),
        (
            "redis://app:pw@h:1/2",
            RedisTarget(host="h", port=1, db=2, username="app", password="pw"),
        ),
        (
            "rediss://h?ca=/etc/ca.pem",
            RedisTarget(host="h", tls=True, ca="/etc/ca.pem"),
        ),
        ("unix:///run/redis.sock?db=2", RedisTarget(path="/run/redis.sock", db=2)),
        (
            "redis+sentinel://:pw@s1,s2:5000,[::1]:7/main/3",
            RedisTarget(
                db=3,
                password="pw",
                sentinels=(("s1", 26379), ("s2", 5000), ("::1", 7)),
                service="main",
            ),
        ),
        (
            "redis+cluster://u:pw@n1,n2:7001,[::1]:7002/",
            RedisTarget(
                username="u",
                password="pw",
                nodes=(("n1", 6379), ("n2", 7001), ("::1", 7002)),
            ),
        ),
        ("redis+cluster://n1:7000/0", RedisTarget(nodes=(("n1", 7000),))),
    ],
)
def test_store_urls_name_the_server_database_and_login(
    url: str, target: RedisTarget
) -> None:
    assert target == parse_store_url(url, {})


def test_the_password_comes_from_the_environment_when_the_url_has_none() -> None:
    environ = {PASSWORD_ENV: "from-env"}
    assert "from-env" == parse_store_url("redis://h/0", environ).password
    assert "in-url" == parse_store_url("redis://:in-url@h/0", environ).password
    assert "unix:///s?db=0" == parse_store_url("unix:///s", environ).shown
    assert "redis://h:6379/0" == parse_store_url("redis://:pw@h", environ).shown
    sentinel = parse_store_url("redis+sentinel://u:pw@s1,s2:9/main", environ)
    assert ("u", "pw") == (sentinel.username, sentinel.password)
    assert "redis+sentinel://s1:26379,s2:9/main/0" == sentinel.shown
    assert "from-env" == parse_store_url("redis+sentinel://s/m", environ).password
    cluster = parse_store_url("redis+cluster://:pw@n1,[::1]:7", environ)
    assert ("pw", "redis+cluster://n1:6379,[::1]:7/") == (
        cluster.password,
        cluster.shown,
    )
    assert "from-env" == parse_store_url("redis+cluster://n", environ).password


@pytest.mark.parametrize(
    "url, why",
    [
        ("http://h", f"use memory, {FORMS}"),
        (
            "redis://h:abc/0",
            f"Port could not be cast to integer value as 'abc': use {FORMS}",
        ),
        ("redis://h:70000", f"Port out of range 0-65535: use {FORMS}"),
        ("redis:///0", f"no host: use {FORMS}"),
        ("redis://h/zero", "the database must be a number such as 0 (got 'zero')"),
        ("redis://h?db=1", "give the database as the path, redis://host:port/db"),
        ("redis://h?ca=x", "?ca= is for rediss:// (TLS) only"),
        ("redis://h?timeout=1", "unknown parameter 'timeout': only db and ca are read"),
        (
            "unix://run/redis.sock",
            "a socket is unix:///path/redis.sock (three slashes)",
        ),
        ("unix:///s?db=-1", "the database must be a number such as 0 (got '-1')"),
        (
            "redis+sentinel://s1",
            "name the service the Sentinels monitor: .../service[/db]",
        ),
        ("redis+sentinel://s1,/m", "a Sentinel address is host[:port] (got '')"),
        ("redis+sentinel://s1/m?db=1", "a Sentinel URL takes no ?parameters"),
        (
            "redis+sentinel://s1/m/x",
            "the database must be a number such as 0 (got 'x')",
        ),
        (
            "redis+cluster://n1/2",
            "a cluster has only database 0: end the URL after the nodes",
        ),
        ("redis+cluster://n1,:7", "a cluster node's address is host[:port] (got ':7')"),
        ("redis+cluster://n1?x=1", "a cluster URL takes no ?parameters"),
        (
            "redis+cluster://n1:x",
            f"Port could not be cast to integer value as 'x': use {FORMS}",
        ),
        (
            "rediss+cluster://n1",
            "TLS to a cluster is not supported yet: use redis+cluster:// on a"
            " private network",
        ),
    ],
)
def test_a_bad_store_url_names_itself_and_the_forms(url: str, why: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_store_url(url, {})
    assert f"--store {url!r}: {why}" == str(raised.value)


def exits_with(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as raised:
        main(["--app", APP, "--port", "0", *args])
    assert 2 == raised.value.code
    return capsys.readouterr().err


def test_without_txredisapi_choosing_redis_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "txredisapi", None)  # import fails
    assert (
        "jetforce-sesh: error: --store redis://127.0.0.1:6379/0: the Redis store"
        " needs txredisapi: pip install '.[redis]' in the jetforce-sesh checkout,"
        " or pip install txredisapi==1.6.0 hiredis==3.5.0\n"
    ) == exits_with(capsys, "--store", "redis://127.0.0.1")


def test_without_the_redis_package_a_cluster_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis.asyncio.cluster", None)  # import fails
    assert (
        "jetforce-sesh: error: --store redis+cluster://127.0.0.1:7000/: a cluster"
        " store needs the redis package: pip install '.[redis]' in the"
        " jetforce-sesh checkout, or pip install redis==8.2.0 hiredis==3.5.0\n"
    ) == exits_with(capsys, "--store", "redis+cluster://127.0.0.1:7000")


def test_the_install_hints_name_the_pins_of_the_redis_extra() -> None:
    """What the hints tell to pip install by hand is what pyproject.toml's
    redis extra pins, and the extra is named as a checkout installs it
    (jetforce-sesh is not on PyPI)."""
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["redis"]
    for hint in (link.INSTALL_HINT, cluster.INSTALL_HINT):
        assert "pip install '.[redis]' in the jetforce-sesh checkout" in hint
        pins = hint.rpartition("pip install ")[2].split()
        assert pins and set(pins) <= set(extra), (pins, extra)


@pytest.mark.parametrize(
    "args, said",
    [
        (
            ("--store-wait-replicas", "1"),
            "--store-wait-replicas waits for the replicas of a Redis: give a Redis"
            " --store, or leave it out",
        ),
        (
            (
                "--store",
                "redis://h/0",
                "--store-wait-replicas",
                "1",
                "--store-wait-timeout",
                "1200",
            ),
            "the wait for replicas must be 1 to 1199 ms, under the 1200 ms a Redis"
            " answer may take (got 1200)",
        ),
        (
            ("--store", "redis://h/0", "--store-wait-replicas", "-1"),
            "argument --store-wait-replicas: '-1' is not a whole number such as 1",
        ),
    ],
)
def test_a_wait_for_replicas_is_checked_at_start_up(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], said: str
) -> None:
    assert f"jetforce-sesh: error: {said}\n" == exits_with(capsys, *args)


def test_redis_and_a_state_directory_are_refused_together(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert (
        "jetforce-sesh: error: --store 'redis://h/0' keeps the records in Redis, and"
        " --state-dir would keep them in files too: leave --state-dir out (Redis"
        " keeps them across restarts with its own persistence)\n"
    ) == exits_with(capsys, "--store", "redis://h/0", "--state-dir", str(tmp_path))


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("locked"), password="right")
    server.start()
    yield server
    server.stop()


def start_fails(*args: str) -> str:
    """The one line a server that cannot open its stores ends with; exit 2."""
    result = subprocess.run(
        [sys.executable, "-m", "jetforce_sesh", "--app", APP, "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 2 == result.returncode, result
    *_, last = result.stderr.splitlines()
    return last


@pytest.mark.e2e
def test_a_wrong_password_or_database_stops_the_start(
    locked_redis: RedisServer,
) -> None:
    base = f"127.0.0.1:{locked_redis.port}"
    assert (
        f"jetforce-sesh: error: the stores could not be opened: ConfigError: Redis at"
        f" redis://{base}/0 refused the password (WRONGPASS invalid username-password"
        f" pair or user is disabled.): check the URL of --store, or"
        f" $JETFORCE_SESH_REDIS_PASSWORD"
    ) == start_fails("--store", f"redis://:wrong@{base}/0")
    assert (
        f"jetforce-sesh: error: the stores could not be opened: ConfigError: Redis at"
        f" redis://{base}/9 has no database 9 (ERR DB index is out of range): give"
        f" one it has, such as /0"
    ) == start_fails("--store", f"redis://:right@{base}/9")


@pytest.mark.e2e
def test_redis_down_at_start_up_exits_2_after_three_seconds() -> None:
    port = free_port()
    assert (
        f"jetforce-sesh: error: the stores could not be opened: StoreUnavailable:"
        f" Redis at redis://127.0.0.1:{port}/0 did not answer within 3 s: start it,"
        f" or check --store"
    ) == start_fails("--store", f"redis://127.0.0.1:{port}/0")


@pytest.mark.e2e
@pytest.mark.parametrize(
    "name, plant, found",
    [
        ("string", lambda c, base: c.set(base + "used", "x"), "{base}used as string"),
        (
            "no-meta",
            lambda c, base: c.zadd(base + "keys", {"a": 1}),
            "{base}* as keys without {base}meta",
        ),
    ],
)
def test_foreign_data_under_the_prefix_stops_the_start(
    redis_server: RedisServer, name: str, plant: object, found: str
) -> None:
    prefix = f"foreign-{name}"
    base = f"{prefix}:{{{SLAB}}}:"
    plant(redis_server.client(), base)  # type: ignore[operator]
    assert (
        f"jetforce-sesh: error: the stores could not be opened: ConfigError: Redis at"
        f" redis://127.0.0.1:{redis_server.port}/0 holds {found.format(base=base)},"
        f" which the store of slab {SLAB!r} did not write: choose another"
        f" --store-prefix or database"
    ) == start_fails("--store", redis_server.url, "--store-prefix", prefix)


@pytest.mark.e2e
def test_records_of_another_codec_under_the_prefix_stop_the_start(
    redis_server: RedisServer,
) -> None:
    base = f"codec-test:{{{SLAB}}}:"
    redis_server.client().hset(
        base + "meta",
        mapping={"kind": "jetforce-sesh redis store 2", "codec": "struct/<q"},
    )
    assert (
        f"jetforce-sesh: error: the stores could not be opened: ConfigError: Redis at"
        f" redis://127.0.0.1:{redis_server.port}/0 holds records of slab {SLAB!r} in"
        f" struct/<q, not struct/<QQ: another capsule uses prefix"
        f" 'codec-test'; choose another --store-prefix"
    ) == start_fails("--store", redis_server.url, "--store-prefix", "codec-test")
