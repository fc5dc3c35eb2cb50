"""``jetforce-sesh``: Jetforce's command line, plus ``--app`` and the slab settings.

This is the one module that touches the global reactor. It reuses Jetforce's own
argument parser, so every ``jetforce`` flag keeps its meaning and default here,
except ``--dir``: nothing from the working directory is served unless asked for.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import os
import resource
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

# First: installs the asyncio reactor when --store names a cluster, before
# jetforce (imported next) imports the default one.
import jetforce_sesh.cli.reactor  # noqa: F401

# isort: split
import attrs
from jetforce.__main__ import parser as jetforce_parser
from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import globalLogBeginner

from jetforce_sesh.bridge.limits import (
    BridgeLimits,
    check_hold_budget,
    check_hold_window,
    check_max_connections,
    check_max_per_process,
    check_max_per_user,
    check_max_unsent,
)
from jetforce_sesh.bridge.protocol import BridgeFactory
from jetforce_sesh.bridge.service import BridgeService, bridged, check_keys
from jetforce_sesh.bridge.socket import check_path, group_id, listener
from jetforce_sesh.cli.adhoc import ad_hoc_certificate
from jetforce_sesh.cli.apps import DEFAULT_APP, jetforce_apps, load_app, session_apps
from jetforce_sesh.cli.checks import (
    KEEP_OUTSIDE,
    Unset,
    UsageError,
    certificate_warnings,
    check_file_flags,
    check_hostname,
    check_memory,
    check_not_served,
    check_port,
    check_state_dir,
    check_tls_files,
    check_tls_flags,
)
from jetforce_sesh.cli.operations import (
    add_operations,
    check_operations,
    log_observer,
    serve_operations,
)
from jetforce_sesh.cli.transfer import main as transfer
from jetforce_sesh.cli.workers import supervise
from jetforce_sesh.errors import ConfigError
from jetforce_sesh.keys import FingerprintKeys
from jetforce_sesh.ops.ratelimit import (
    ClockedRateLimiter,
    SharedCertificateRateLimiter,
    SharedCounts,
    SharedRateLimiter,
)
from jetforce_sesh.options import (
    ON_FULL_CHOICES,
    SlabOptions,
    check_grace,
    check_idle_timeout,
    check_max_queued,
    check_max_records,
    check_on_full,
    check_record_size,
)
from jetforce_sesh.server.banner import banner as games_banner
from jetforce_sesh.server.files import CapsuleFiles
from jetforce_sesh.server.server import SessionServer
from jetforce_sesh.server.workers import WorkerPlace, WorkerServer, WorkersView
from jetforce_sesh.session import autostart
from jetforce_sesh.session.application import SessionApplication
from jetforce_sesh.session.slab import Slab
from jetforce_sesh.stores.contract import StoreFactory
from jetforce_sesh.stores.memory import memory_stores
from jetforce_sesh.stores.redis.cluster import check_reactor
from jetforce_sesh.stores.redis.store import RedisStores
from jetforce_sesh.stores.redis.url import PASSWORD_ENV
from jetforce_sesh.stores.sqlite.file import Sync
from jetforce_sesh.stores.sqlite.store import SQLiteStores
from jetforce_sesh.version import VERSION
from sesh_bridge import SOCKET_VARIABLE

#: The bridge's bounds when no flag changes them, for the flags' help.
BRIDGE_LIMITS = BridgeLimits()
#: The most processes --workers starts.
MAX_WORKERS = 256


class Parser(argparse.ArgumentParser):
    """argparse, answering a bad value in one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        # One line naming the value and the fix; the usage block would bury it.
        self.exit(2, f"{self.prog}: error: {message}\n")


def _names(text: str) -> list[str]:
    """``--bridge-slabs``: slab names, separated by commas."""
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"{text!r} holds an empty slab name: give names separated by commas,"
            f" such as visits,scores"
        )
    return names


def _flag(
    check: Callable[[Any], Any], convert: Callable[[str], Any]
) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value: Any = convert(text)
        except ValueError:
            value = text
        try:
            return check(value)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return parse


EPILOG = """\
Players need a Gemini client with a client certificate: each certificate is one
player, and the capsule answers 60 to a request without one.

With --state-dir, back the records up or move them with:
  jetforce-sesh export --state-dir DIR [--app MODULE:ATTR] [--slab NAME] > records.jsonl
  jetforce-sesh import --state-dir DIR [--app MODULE:ATTR] [--slab NAME] < records.jsonl

examples:
  jetforce-sesh
      the demo capsule, at gemini://localhost/
  jetforce-sesh --app mycapsule:app --hostname example.org --host ''
      your capsule, for everyone, on every address of this machine
  jetforce-sesh --app mycapsule:app --dir capsule/ --idle-timeout 2592000
      files and CGI programs from capsule/ too; players away 30 days forgotten
  jetforce-sesh --app mycapsule:app --store redis://127.0.0.1:6379/0 --port 1966
      one more process of the capsule: the records are in Redis, shared by all
"""

#: Jetforce's help for its flags, said again where it misleads here.
_JETFORCE_HELP = {
    "hostname": "The host name players use, as in gemini://HOSTNAME/: routes answer"
    " URLs for it alone (a loopback name answers to every loopback name)",
    "certfile": "Server TLS certificate (PEM); unset: a self-signed one is made and"
    " kept in a private temporary directory",
    "keyfile": "Server TLS private key (PEM); unset: the one made with the certificate",
    "use_tls": "Serve plain TCP, without TLS: only behind a proxy that ends TLS and"
    " passes the client certificate on",
    "root_directory": "Serve static files (and CGI programs from --cgi-dir) from this"
    " directory for paths the app does not claim; unset: serve none",
    "cgi_directory": "Directory of CGI programs, inside --dir (only with --dir)",
    "index_file": "File served for a directory inside --dir, instead of a listing"
    " (only with --dir)",
    "default_lang": "Language tag added to text/gemini files served from --dir",
}


class HelpFormatter(
    argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter
):
    """Defaults shown where they say something: not for on/off flags, not None."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def build_parser() -> Parser:
    defaults = SlabOptions()
    # A copy, so jetforce's own parser stays as jetforce has it.
    jetforce = copy.deepcopy(jetforce_parser)
    for action in jetforce._actions:
        if action.dest in _JETFORCE_HELP:
            action.help = _JETFORCE_HELP[action.dest]
        if action.dest in ("cgi_directory", "index_file"):
            # The same default, told apart from the flag given (see configure).
            action.default = Unset(action.default)
        if isinstance(action, argparse._VersionAction):
            action.version = f"jetforce-sesh {VERSION}"
    parser = Parser(
        prog="jetforce-sesh",
        description="Jetforce Gemini server for capsules that remember each player\n"
        "by their client certificate.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
        parents=[jetforce],
        add_help=False,  # jetforce's parser brings its -h
    )
    parser.set_defaults(root_directory=None)
    group = parser.add_argument_group("session application")
    group.add_argument(
        "--app",
        default=DEFAULT_APP,
        metavar="MODULE:ATTR",
        help="The Jetforce application to serve",
    )
    group.add_argument(
        "--state-dir",
        default=None,
        metavar="DIR",
        help="Keep every record in SQLite files in this directory too, so they"
        " survive restarts and crashes; unset: records live in memory only",
    )
    group.add_argument(
        "--store",
        default="memory",
        metavar="URL",
        help="Where records live: memory (this process), or a Redis every process"
        " of the capsule shares: redis://[:password@]host[:port][/db], rediss://"
        " (TLS), unix:///path/redis.sock, or the primary Sentinels watch:"
        " redis+sentinel://host[:port][,host[:port]...]/service[/db]; the password"
        f" may instead be in ${PASSWORD_ENV}",
    )
    group.add_argument(
        "--store-prefix",
        default=None,
        metavar="PREFIX",
        help="With a Redis --store: start every key with this; unset:"
        " jetforce-sesh:MODULE:ATTR of --app, so capsules sharing a Redis keep"
        " apart and the processes of one capsule meet",
    )
    group.add_argument(
        "--store-wait-replicas",
        type=_whole,
        default=0,
        metavar="N",
        help="With a Redis --store: answer a save only once N replicas have it"
        " (WAIT), and answer 41 'may or may not have been kept' when fewer confirm"
        " it in time, so that no save a player was told of is lost on failover;"
        " 0 (the default): do not wait",
    )
    group.add_argument(
        "--store-wait-timeout",
        type=_whole,
        default=100,
        metavar="MS",
        help="With --store-wait-replicas: how long a save waits for its replicas,"
        " in milliseconds (default 100)",
    )
    group.add_argument(
        "--sync",
        default=None,
        choices=("normal", "full"),
        help="With --state-dir: normal survives a crash of the server (kill -9);"
        " full also a power loss, at an fsync per save",
    )
    group.add_argument(
        "--bridge-socket",
        default=None,
        metavar="PATH",
        help="Serve the records of slabs with a fixed layout to CGI programs over"
        " this UNIX socket (mode 0600); they find it in $SESH_BRIDGE_SOCKET",
    )
    group.add_argument(
        "--bridge-group",
        default=None,
        metavar="GROUP",
        help="With --bridge-socket: let this group's members connect too (mode 0660)",
    )
    group.add_argument(
        "--bridge-slabs",
        type=_names,
        default=None,
        metavar="NAME[,NAME...]",
        help="With --bridge-socket: serve only these slabs; unset: every slab with"
        " a fixed layout",
    )
    group.add_argument(
        "--bridge-max-connections",
        type=_flag(check_max_connections, int),
        default=None,
        metavar="N",
        help=f"With --bridge-socket: connections served at once; more are refused"
        f" (default {BRIDGE_LIMITS.max_connections}, at most half of ulimit -n)",
    )
    group.add_argument(
        "--bridge-max-per-user",
        type=_flag(check_max_per_user, int),
        default=None,
        metavar="N",
        help=f"With --bridge-socket: connections one user's programs may have open"
        f" (default {BRIDGE_LIMITS.max_per_user})",
    )
    group.add_argument(
        "--bridge-max-per-process",
        type=_flag(check_max_per_process, int),
        default=None,
        metavar="N",
        help=f"With --bridge-socket: connections one process may have open (default"
        f" {BRIDGE_LIMITS.max_per_process})",
    )
    group.add_argument(
        "--bridge-max-unsent",
        type=_flag(check_max_unsent, int),
        default=None,
        metavar="BYTES",
        help=f"With --bridge-socket: stop reading a connection while more of its"
        f" replies than this wait unsent (default {BRIDGE_LIMITS.max_unsent})",
    )
    group.add_argument(
        "--bridge-hold-budget",
        type=_flag(check_hold_budget, float),
        default=None,
        metavar="SECONDS",
        help=f"With --bridge-socket: how long one user's programs may hold one"
        f" player's turn within --bridge-hold-window; past it they are refused"
        f" (default {BRIDGE_LIMITS.hold_budget:g})",
    )
    group.add_argument(
        "--bridge-hold-window",
        type=_flag(check_hold_window, float),
        default=None,
        metavar="SECONDS",
        help=f"With --bridge-socket: the window of --bridge-hold-budget, from the"
        f" first hold (default {BRIDGE_LIMITS.hold_window:g})",
    )
    group.add_argument(
        "--shutdown-grace",
        type=_flag(check_grace, float),
        default=10.0,
        metavar="SECONDS",
        help="On SIGINT, SIGTERM or SIGHUP, how long requests in flight may take to"
        " finish before they are cut off (keeping nothing of their change)",
    )
    group.add_argument(
        "--workers",
        type=_flag(check_workers, int),
        default=1,
        metavar="N",
        help="Serve the port with N processes, started again when they die; they"
        " must share a Redis --store",
    )
    add_operations(parser)
    group = parser.add_argument_group("game records (defaults for games that set none)")
    group.add_argument(
        "--max-records",
        type=_flag(check_max_records, int),
        default=defaults.max_records,
        metavar="N",
        help="Players each game keeps at most",
    )
    group.add_argument(
        "--record-size",
        type=_flag(check_record_size, int),
        default=defaults.record_size,
        metavar="BYTES",
        help="Bytes each player's record in a game may take once encoded",
    )
    group.add_argument(
        "--idle-timeout",
        type=_flag(check_idle_timeout, float),
        default=defaults.idle_timeout,
        metavar="SECONDS",
        help="Forget a player away from a game this long (0: never)",
    )
    group.add_argument(
        "--on-full",
        type=_flag(check_on_full, str),
        default=defaults.on_full,
        choices=ON_FULL_CHOICES,
        help="When a game is full: evict forgets the player away longest, refuse"
        " turns new players away with status 41",
    )
    group.add_argument(
        "--max-queued",
        type=_flag(check_max_queued, int),
        default=defaults.max_queued,
        metavar="N",
        help="Requests of one player that may wait for their turn at a game while"
        " another of theirs is answered; more get status 44",
    )
    return parser


def configure(
    args: argparse.Namespace, place: WorkerPlace | None = None
) -> tuple[Any, list[SessionApplication], Deferred[list[str]], list[IService]]:
    """The application to serve, its session applications, a Deferred that
    fires with the banner lines once their stores serve, and the services to
    start then. Everything that can be checked before the reactor runs is checked
    here, and raises UsageError. ``place``: this process is that worker of
    ``--workers``, on its supervisor's port."""
    from twisted.internet import reactor

    args.hostname = check_hostname(args.hostname)
    check_tls_flags(args.use_tls, args.certfile, args.keyfile, args.cafile, args.capath)
    check_file_flags(
        args.root_directory, args.cgi_directory, args.index_file, args.default_lang
    )
    if args.state_dir is not None:
        check_state_dir(args.state_dir)
    if args.store_prefix is not None and args.store == "memory":
        raise UsageError(
            f"--store-prefix {args.store_prefix!r} needs a Redis --store: records"
            f" kept in memory or in --state-dir have no keys to prefix; give --store"
            f" too, or leave --store-prefix out"
        )
    app = load_app(args.app)
    sessions = session_apps(app)
    check_operations(args, jetforce_apps(app))
    shared = args.store != "memory"
    if args.rate_limit:
        kind = SharedRateLimiter if shared else ClockedRateLimiter
        try:
            limiter = kind(args.rate_limit, reactor)
        except ValueError as error:
            raise UsageError(str(error)) from None
        for each in jetforce_apps(app):
            each.rate_limiter = limiter
    lines: list[str] = []
    services = bridge_services(args, sessions, reactor)
    if services:
        at = args.bridge_socket
        if place is not None:  # PATH.k, made by the supervisor
            at = f"{at} (worker 1; worker K at {at[: -len(str(place.index))]}K)"
        lines.append(f"CGI programs reach the records at {at}")
    if args.root_directory is not None:
        files = static_files(args, has_sessions=bool(sessions))
        if services:
            files.cgi_environ[SOCKET_VARIABLE] = os.path.abspath(args.bridge_socket)
        for session_app in sessions:
            session_app.serve_unclaimed(files)
        lines.append(f"Serving unclaimed paths from {args.root_directory}")
    defaults = SlabOptions(
        max_records=args.max_records,
        record_size=args.record_size,
        idle_timeout=args.idle_timeout,
        on_full=args.on_full,
        max_queued=args.max_queued,
    )
    if place is None:
        check_port(args.host, args.port)  # a worker's supervisor listens on it
    given = args.certfile is not None
    if args.use_tls:
        if not given:
            args.certfile, args.keyfile = ad_hoc_certificate(args.hostname)
        check_tls_files(args.certfile, args.keyfile, args.cafile, args.capath)
        if given:
            # A certificate clients will refuse is the owner's to renew: said
            # once, and served all the same.
            now = datetime.datetime.now(datetime.UTC)
            told = place is not None and place.index > 1  # worker 1 said it
            for line in (
                [] if told else certificate_warnings(args.certfile, args.hostname, now)
            ):
                print(f"jetforce-sesh: warning: {line}", file=sys.stderr)
    if args.root_directory is not None:
        key = (
            ("--tls-keyfile", KEEP_OUTSIDE)
            if given
            else (
                "the ad-hoc server key",
                "serve another directory, or give --tls-certfile and --tls-keyfile"
                " outside --dir",
            )
        )
        private = [
            ("--state-dir", args.state_dir, KEEP_OUTSIDE),
            ("--bridge-socket", args.bridge_socket, KEEP_OUTSIDE),
            (key[0], args.keyfile or args.certfile, key[1]),
        ]
        check_not_served(args.root_directory, [entry for entry in private if entry[1]])
    stores: StoreFactory = memory_stores
    if args.store != "memory":
        stores = redis_stores(args, reactor)
        lines.append(
            f"Records are kept in Redis at {stores.target.shown} under"
            f" {stores.prefix!r}: every process given this --store shares them."
        )
    else:
        if args.store_wait_replicas:
            raise UsageError(
                "--store-wait-replicas waits for the replicas of a Redis: give a"
                " Redis --store, or leave it out"
            )
        try:
            check_memory([s for a in sessions for s in a.slabs.values()], defaults)
        except ConfigError as error:
            raise UsageError(str(error)) from None
    if args.sync is not None and args.state_dir is None:
        raise UsageError(
            f"--sync {args.sync} needs --state-dir: without it records live in"
            f" memory only and nothing is written to disk"
        )
    sync: Sync = args.sync or "normal"
    if args.state_dir is not None:
        try:
            stores = SQLiteStores(args.state_dir, sync)
        except ConfigError as error:
            raise UsageError(f"--state-dir: {error}") from None
        lines.append(
            f"Records are kept in {args.state_dir} (synchronous={sync}): they"
            f" survive restarts."
        )
    opening: list[Deferred[Any]] = []
    counted = shared_counts(args, app, sessions, reactor)
    for counts in counted:
        opening.append(counts.open(stores).addCallback(lambda _: []))
        services.append(_Closed(counts))
    for session_app in sessions:
        try:
            opening.append(session_app.open(reactor, defaults, stores))
        except ConfigError as error:
            raise UsageError(str(error)) from None
        except MemoryError:
            raise UsageError(
                f"cannot reserve the memory for the slabs of --app {args.app!r}:"
                f" lower --max-records or --record-size"
            ) from None

    def described(opened: list[list[Slab[Any]]]) -> list[str]:
        if place is not None and place.index > 1:
            return []  # worker 1 prints the banner for all
        return lines + games_banner(
            [slab for slabs in opened for slab in slabs], defaults
        )

    ready = gatherResults(opening, consumeErrors=True).addCallback(described)
    return app, sessions, ready, services


class _Closed(Service):
    """Closes a limiter's shared counts when the server stops."""

    def __init__(self, counts: SharedCounts) -> None:
        self.counts = counts

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return self.counts.close()


def shared_counts(
    args: argparse.Namespace,
    app: Any,
    sessions: list[SessionApplication],
    reactor: Any,
) -> list[SharedCounts]:
    """The counts of the rate limits that live in a shared store, which open
    and close with it; on a store of this process alone, none (each limiter
    counts in memory)."""
    if args.store == "memory":
        return []
    counted = []
    limiter = next(
        (each.rate_limiter for each in jetforce_apps(app) if each.rate_limiter), None
    )
    if isinstance(limiter, SharedRateLimiter):
        counted.append(limiter.counts_kept)
    if args.rate_limit_cert and sessions:
        by_cert = SharedCertificateRateLimiter(args.rate_limit_cert, reactor)
        for session_app in sessions:
            session_app.certificate_limiter = by_cert
        counted.append(by_cert.counts_kept)
    return counted


def check_workers(value: object) -> int:
    if type(value) is not int or not 1 <= value <= MAX_WORKERS:
        raise ConfigError(
            f"--workers {value!r} must be a whole number of processes from 1 to"
            f" {MAX_WORKERS}: use e.g. --workers 2, or the number of cores"
        )
    return value


def bridge_services(
    args: argparse.Namespace, sessions: list[SessionApplication], reactor: Any
) -> list[IService]:
    """The CGI bridge, if ``--bridge-socket`` asks for one."""
    settings = {
        name: getattr(args, f"bridge_{name}")
        for name in attrs.fields_dict(BridgeLimits)
        if getattr(args, f"bridge_{name}") is not None
    }
    if args.bridge_socket is None:
        if args.bridge_group is not None:
            raise UsageError(
                f"--bridge-group {args.bridge_group} needs --bridge-socket: there"
                f" is no bridge socket to give the group"
            )
        given = [f"--bridge-{name.replace('_', '-')}" for name in settings]
        if args.bridge_slabs is not None:
            given.insert(0, "--bridge-slabs")
        if given:
            raise UsageError(
                f"{given[0]} needs --bridge-socket: without it there is no bridge"
                f" to set it for"
            )
        return []
    flag = f"--bridge-socket {args.bridge_socket}"
    if args.store != "memory" and any(
        not isinstance(app.keys, FingerprintKeys) for app in sessions
    ):
        raise UsageError(
            f"{flag}: with accounts on, the bridge maps a fingerprint to its account"
            f" at once, which needs the certificate links in this process: leave"
            f" --store {args.store} or --bridge-socket out"
        )
    try:
        limits = BridgeLimits(**settings)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    check_descriptors(limits.max_connections)
    try:
        slabs = [slab for app in sessions for slab in app.slabs.values()]
        served = bridged(slabs, args.bridge_slabs)
        for app in sessions:
            check_keys(app.slabs.values(), app.keys)
        gid = None if args.bridge_group is None else group_id(args.bridge_group)
        check_path(args.bridge_socket)
    except ConfigError as error:
        raise UsageError(f"{flag}: {error}") from None
    factory = BridgeFactory(
        served, reactor, limits, restricted=args.bridge_slabs is not None
    )
    return [BridgeService(factory, listener(reactor, args.bridge_socket, gid))]


def _whole(text: str) -> int:
    """A Redis flag's number of replicas or milliseconds."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number such as 1")
    return int(text)


def check_descriptors(connections: int) -> None:
    """UsageError unless bridge connections can take at most half the files
    this process may open, leaving the rest to the Gemini players."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and connections > soft // 2:
        raise UsageError(
            f"--bridge-max-connections {connections}: this process may open"
            f" {soft} files (ulimit -n), and bridge connections may take at most"
            f" half of them, so that players can still connect: lower it to"
            f" {soft // 2}, or raise ulimit -n"
        )


def redis_stores(args: argparse.Namespace, reactor: Any) -> RedisStores:
    """The Redis store factory ``--store`` asks for; UsageError saying why not."""
    if args.state_dir is not None:
        raise UsageError(
            f"--store {args.store!r} keeps the records in Redis, and --state-dir"
            f" would keep them in files too: leave --state-dir out (Redis keeps"
            f" them across restarts with its own persistence)"
        )
    prefix = args.store_prefix or f"jetforce-sesh:{args.app}"
    try:
        stores = RedisStores(
            args.store,
            prefix=prefix,
            reactor=reactor,
            wait_replicas=args.store_wait_replicas,
            wait_timeout=args.store_wait_timeout,
        )
        check_reactor(stores.link, reactor)
    except ConfigError as error:
        raise UsageError(str(error)) from None
    return stores


def static_files(args: argparse.Namespace, *, has_sessions: bool) -> CapsuleFiles:
    if not os.path.isdir(args.root_directory):
        raise UsageError(
            f"--dir {args.root_directory!r} is not a directory: give the"
            f" directory of files to serve, or leave --dir out"
        )
    if not has_sessions:
        raise UsageError(
            f"--dir serves the paths a SessionApplication leaves unclaimed, and"
            f" --app {args.app!r} is not one: serve it with a SessionApplication,"
            f" or serve files with stock jetforce"
        )
    return CapsuleFiles(
        root_directory=args.root_directory,
        index_file=str(args.index_file),
        cgi_directory=str(args.cgi_directory),
        default_lang=args.default_lang,
    )


def main(argv: Sequence[str] | None = None) -> None:
    # jetforce 1.0.0 reads a certificate's naive validity dates on every request
    # that has one; the warning says nothing an operator can act on.
    warnings.filterwarnings("ignore", message="Properties that return a na")
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] in (["export"], ["import"]):
        transfer(given)
        return
    args = build_parser().parse_args(given)
    place = WorkerPlace.from_environ(os.environ)
    if place is None and args.workers > 1:
        raise SystemExit(supervise(args, given))
    # This server opens and closes the applications itself, with the flags'
    # settings: a SessionApplication must not open on its own as well.
    autostart.turn_off()
    try:
        app, sessions, ready, services = configure(args, place)
    except UsageError as error:
        if error.detail is not None and args.log_level == "debug":
            print(error.detail, end="", file=sys.stderr)
        print(f"jetforce-sesh: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    # Jetforce prints its own access log; from Twisted's log keep what needs
    # attention (records that could not be saved, handlers that failed).
    observer = log_observer(args.log_format, args.log_level)
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
    view = WorkersView()
    extra: dict[str, Any] = {}
    kind: type[SessionServer] = SessionServer
    if place is not None:
        # Ctrl-C reaches the supervisor alone, which tells every worker once.
        os.setpgrp()
        view = WorkersView(place.index, place.count)
        kind, extra = WorkerServer, {"place": place, "view": view}
    server = kind(
        **extra,
        app=app,
        ready=ready,
        apps=sessions,
        grace=args.shutdown_grace,
        services=services,
        summary_every=args.log_summary,
        host=args.host,
        port=args.port,
        hostname=args.hostname,
        certfile=args.certfile,
        keyfile=args.keyfile,
        cafile=args.cafile,
        capath=args.capath,
        proxy_protocol=args.proxy_protocol,
        use_tls=args.use_tls,
    )
    serve_operations(args, jetforce_apps(app), server, view)
    server.run()
    if server.exit_code:
        raise SystemExit(server.exit_code)
