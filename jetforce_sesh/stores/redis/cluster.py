"""The Redis store's connection to a Valkey or Redis Cluster: redis.asyncio.

redis-py's cluster client (the ``redis`` package, in the ``[redis]`` extra) knows
the cluster's layout and keeps up with it: it follows MOVED and ASK, learns where
a slot went after a reshard, and finds the replica promoted after a primary died.
Nothing here handles a redirection. The client runs on asyncio, so the process
must run Twisted's asyncio reactor (the launcher installs it when ``--store``
names a cluster): each script is an asyncio task, told by a Deferred.

What this adds is what the store needs of any connection (as
:mod:`jetforce_sesh.stores.redis.link` does for one server): one line at start-up
when the cluster cannot be reached or refuses us, no retry of a script whose
answer was lost (its write may have been made: StoreUnsure), scripts sent by
their SHA-1, and saves that wait for a replica on the connection that wrote them.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Coroutine, Sequence
from types import ModuleType
from typing import Any, TypeVar

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from jetforce_sesh.errors import ConfigError, StoreUnavailable, StoreUnsure
from jetforce_sesh.stores.redis.link import CONNECT_TIMEOUT, REPLY_TIMEOUT, WATCH_PERIOD
from jetforce_sesh.stores.redis.scripts import Script
from jetforce_sesh.stores.redis.url import PASSWORD_ENV, RedisTarget

T = TypeVar("T")
_log = Logger()

#: As the single server's (link.INSTALL_HINT): the extra from the checkout,
#: or the pinned packages.
INSTALL_HINT = (
    "a cluster store needs the redis package: pip install '.[redis]' in the"
    " jetforce-sesh checkout, or pip install redis==8.2.0 hiredis==3.5.0"
)
REACTOR_HINT = (
    "a cluster store runs on Twisted's asyncio reactor: start the capsule with"
    " jetforce-sesh, which installs it, or install"
    " twisted.internet.asyncioreactor before anything imports the reactor"
)
#: Seconds a connection to one node may take: a node that does not accept in
#: that time fails the script (the cluster may be electing its replacement).
NODE_CONNECT_TIMEOUT = 0.5
_PENDING = object()


def check_reactor(link: object, reactor: object) -> None:
    """ConfigError in one line if ``link`` is a cluster's and ``reactor`` is
    not Twisted's asyncio reactor, which redis.asyncio needs."""
    from twisted.internet.asyncioreactor import AsyncioSelectorReactor

    if isinstance(link, ClusterLink) and not isinstance(
        reactor, AsyncioSelectorReactor
    ):
        raise ConfigError(f"--store {link.target.shown}: {REACTOR_HINT}")


class _Api:
    """The parts of the redis package the link uses, imported when a cluster
    store is chosen: a capsule on any other store needs none of it."""

    def __init__(self, target: RedisTarget) -> None:
        try:
            self.cluster: ModuleType = importlib.import_module("redis.asyncio.cluster")
            self.errors: ModuleType = importlib.import_module("redis.exceptions")
            retry = importlib.import_module("redis.asyncio.retry")
            backoff = importlib.import_module("redis.backoff")
        except ImportError:
            raise ConfigError(f"--store {target.shown}: {INSTALL_HINT}") from None
        # No retry by the client after a lost connection or a timeout: the
        # script may have run, and running a save again could apply a change
        # twice. Redirections (MOVED, ASK, TRYAGAIN) are followed all the same:
        # Redis answers them without running anything.
        self.no_retry = retry.Retry(backoff.NoBackoff(), 0)


class ClusterLink:
    """The connections of one store factory to one cluster, shared by its slabs.

    With ``wait_replicas`` above 0, every write is sent together with ``WAIT
    wait_replicas wait_timeout``, both to the primary of the slab's slot and on
    one connection of it, the WAIT right behind the script: the write is
    answered once that many replicas have it, and fails with StoreUnsure if
    fewer said so within ``wait_timeout`` milliseconds.
    """

    def __init__(
        self,
        target: RedisTarget,
        reactor: IReactorTime,
        wait_replicas: int = 0,
        wait_timeout: int = 100,
    ) -> None:
        self.target = target
        self.reactor = reactor
        self.wait_replicas = wait_replicas
        self.wait_timeout = wait_timeout
        self._api = _Api(target)
        self._client: Any = None
        self._opening: Deferred[None] | None = None
        self._waiters: list[Deferred[None]] = []
        self._outcome: object = _PENDING
        self._users: set[object] = set()
        #: Scripts sent and not yet answered.
        self.in_flight = 0
        #: Each of them, by the number it was given when sent, oldest first:
        #: when it was sent, and its task, which the watchdog cancels when its
        #: answer is late (redis-py then drops the connection it waits on).
        self._sent: dict[int, tuple[float, asyncio.Task[Any]]] = {}
        self._calls = 0
        self._watchdog = LoopingCall(self._watch)
        self._watchdog.clock = reactor
        self._quiet: list[Deferred[None]] = []

    # -- life cycle --------------------------------------------------------------

    def open(self, user: object) -> Deferred[None]:
        """Learn the cluster's layout, once for every store of the factory;
        fails with one line saying what is wrong if no node answers or the
        cluster refuses us."""
        try:
            check_reactor(self, self.reactor)
        except ConfigError:
            return fail()
        self._users.add(user)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        if self._opening is None:
            self._outcome = _PENDING
            self._opening = self._task(self._start()).addBoth(self._opened)
        elif self._outcome is not _PENDING:
            self._tell()
        return waiter

    def _opened(self, outcome: object) -> None:
        self._outcome = outcome
        if isinstance(outcome, Failure):
            self._opening = None  # the next store to open tries again
        else:
            self._watchdog.start(WATCH_PERIOD, now=False)
        self._tell()

    def _tell(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if isinstance(self._outcome, Failure):
                waiter.errback(self._outcome)
            else:
                waiter.callback(None)

    async def _start(self) -> None:
        target, api = self.target, self._api
        client = api.cluster.RedisCluster(
            startup_nodes=[api.cluster.ClusterNode(h, p) for h, p in target.nodes],
            username=target.username,
            password=target.password,
            retry=api.no_retry,
            # The watchdog's job: a timeout per read costs two timers a script.
            socket_timeout=None,
            socket_connect_timeout=NODE_CONNECT_TIMEOUT,
        )
        try:
            await asyncio.wait_for(client.initialize(), CONNECT_TIMEOUT)
        except BaseException as error:
            await client.aclose()
            raise self._start_error(error) from None
        self._client = client

    def _start_error(self, error: BaseException) -> Exception:
        shown, errors = self.target.shown, self._api.errors
        said = _said(error)
        if isinstance(error, errors.AuthenticationError) or "WRONGPASS" in said:
            return ConfigError(
                f"the cluster at {shown} refused the password ({said}): check the"
                f" URL of --store, or ${PASSWORD_ENV}"
            )
        if "luster mode is not enabled" in said or "cluster support disabled" in said:
            return ConfigError(
                f"Redis at {shown} is not a cluster (cluster support disabled):"
                f" give a single server as redis://host:port"
            )
        if isinstance(error, asyncio.TimeoutError | TimeoutError):
            said = f"no answer within {CONNECT_TIMEOUT:g} s"
        return StoreUnavailable(
            f"the cluster at {shown} could not be reached ({said}): start it, or"
            f" check --store"
        )

    def close(self, user: object) -> Deferred[None]:
        """Disconnect once the last store using the link has closed; a store
        that closes again (or never opened) changes nothing."""
        if user not in self._users:
            return succeed(None)
        self._users.discard(user)
        if self._users or self._opening is None:
            return succeed(None)
        opening, self._opening = self._opening, None

        def disconnect(_: object) -> Deferred[None] | None:
            if self._watchdog.running:
                self._watchdog.stop()
            client, self._client = self._client, None
            if client is None:
                return None
            return self._task(client.aclose())

        # Answers still owed are waited for (each within the client's socket
        # timeout), so that their hooks run before the stores go.
        closing = opening.addCallback(lambda _: self.quiet()).addCallback(disconnect)
        return closing.addCallback(lambda _: None)

    def quiet(self) -> Deferred[None]:
        """Fires once no script is waiting for its answer."""
        if not self.in_flight:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._quiet.append(waiter)
        return waiter

    def _watch(self) -> None:
        now = self.reactor.seconds()
        late = [
            task for sent, task in self._sent.values() if now - sent >= REPLY_TIMEOUT
        ]
        if late:
            _log.warn(
                "the cluster at {url} did not answer within {timeout} s: dropping"
                " the connections that wait",
                url=self.target.shown,
                timeout=REPLY_TIMEOUT,
            )
        for task in late:
            task.cancel()

    def _answered(self, result: object, call: int) -> object:
        self.in_flight -= 1
        del self._sent[call]
        if not self.in_flight and self._quiet:
            # Told on the next turn: the stores' callbacks on this answer (and
            # their hooks) run first.
            waiters, self._quiet = self._quiet, []
            for waiter in waiters:
                self.reactor.callLater(0, waiter.callback, None)
        return result

    def _task(self, coroutine: Coroutine[Any, Any, T]) -> Deferred[T]:
        return Deferred.fromFuture(_loop().create_task(coroutine))

    def _watched(
        self, coroutine: Coroutine[Any, Any, Any], name: str, writes: bool
    ) -> Deferred[Any]:
        """``coroutine`` as a task the watchdog follows; cancelled when late,
        it fails as StoreUnsure (a write) or StoreUnavailable."""
        self.in_flight += 1
        self._calls += 1
        call = self._calls
        task = _loop().create_task(coroutine)
        self._sent[call] = (self.reactor.seconds(), task)

        def late(failure: Failure) -> Failure:
            if isinstance(failure.value, CancelledError | asyncio.CancelledError):
                kind = StoreUnsure if writes else StoreUnavailable
                raise kind(
                    f"the cluster at {self.target.shown} did not answer the {name}"
                    f" within {REPLY_TIMEOUT:g} s"
                )
            return failure

        watched: Deferred[Any] = Deferred.fromFuture(task)
        return watched.addBoth(self._answered, call).addErrback(late)

    # -- scripts -----------------------------------------------------------------

    def run(
        self,
        script: Script,
        keys: Sequence[bytes],
        args: Sequence[str | bytes | int],
        writes: bool,
    ) -> Deferred[Any]:
        """Run ``script`` on the primary of its keys' slot; StoreUnavailable at
        once before the cluster is known.

        A write whose answer is lost may have been made: it fails with
        StoreUnsure, a StoreUnavailable that says so.
        """
        if self._client is None:
            return fail(
                StoreUnavailable(f"no connection to the cluster at {self.target.shown}")
            )
        if writes and self.wait_replicas > 0:
            running = self._waited(script, keys, args)
        else:
            running = self._eval(script, keys, args, writes)
        return self._watched(running, script.name, writes)

    def command(self, *args: str | bytes) -> Deferred[Any]:
        """Send one plain command with a key (start-up checks);
        StoreUnavailable if it cannot be sent or the cluster refuses it."""
        if self._client is None:
            return fail(
                StoreUnavailable(f"no connection to the cluster at {self.target.shown}")
            )
        return self._watched(self._command(args), str(args[0]), writes=False)

    async def _command(self, args: Sequence[str | bytes | int]) -> Any:
        try:
            return await self._client.execute_command(*args)
        except Exception as error:
            raise self._failed(str(args[0]), error, writes=False) from None

    async def _eval(
        self,
        script: Script,
        keys: Sequence[bytes],
        args: Sequence[str | bytes | int],
        writes: bool,
    ) -> Any:
        client = self._client
        try:
            try:
                return await client.execute_command(
                    "EVALSHA", script.sha, len(keys), *keys, *args
                )
            except self._api.errors.NoScriptError:
                # A node forgets its scripts when it restarts, and a replica
                # promoted never had them (SCRIPT LOAD and EVAL are not
                # replicated): send this one whole, which also makes the node
                # keep it for the next EVALSHA.
                return await client.execute_command(
                    "EVAL", script.source, len(keys), *keys, *args
                )
        except Exception as error:
            raise self._failed(script.name, error, writes) from None

    async def _waited(
        self, script: Script, keys: Sequence[bytes], args: Sequence[str | bytes | int]
    ) -> Any:
        """The script's answer once ``wait_replicas`` replicas have its write.

        WAIT counts what its own connection wrote, on its own node: sent
        anywhere else it would confirm nothing. So both commands go to the one
        node the client names for the slot, in one pipeline (one connection,
        one round trip), and the pipeline follows no redirection: a script
        answered MOVED ran nowhere, and is sent again, once, where the client
        (having followed a MOVED of its own) says the slot is now.
        """
        client, errors = self._client, self._api.errors
        try:
            for attempt in range(2):
                # A refresh of the layout asked for by an error runs here first.
                await client.initialize()
                node = client.get_node_from_key(keys[0])
                reply, acked = await self._with_wait(
                    node, "EVALSHA", script.sha, keys, args
                )
                if isinstance(reply, errors.NoScriptError):
                    reply, acked = await self._with_wait(
                        node, "EVAL", script.source, keys, args
                    )
                if isinstance(reply, errors.MovedError) and not attempt:
                    # A keyed command that writes nothing: the client follows
                    # its MOVED and learns the slot's new primary.
                    await client.execute_command("EXISTS", keys[0])
                    continue
                break
        except Exception as error:
            raise self._failed(script.name, error, writes=True) from None
        if isinstance(reply, Exception):
            raise self._failed(script.name, reply, writes=True)
        if isinstance(acked, Exception):
            # The script ran; whether a replica has it is not known.
            raise StoreUnsure(f"Redis at {self.target.shown}: {_said(acked)}")
        if int(acked) < self.wait_replicas:
            raise StoreUnsure(
                f"Redis at {self.target.shown}: {int(acked)} of the"
                f" {self.wait_replicas} replicas asked for confirmed the write"
                f" within {self.wait_timeout} ms"
            )
        return reply

    async def _with_wait(
        self,
        node: Any,
        command: str,
        script: str | bytes,
        keys: Sequence[bytes],
        args: Sequence[str | bytes | int],
    ) -> list[Any]:
        pipe = self._client.pipeline(transaction=False)
        pipe.execute_command(
            command, script, len(keys), *keys, *args, target_nodes=node
        )
        pipe.execute_command(
            "WAIT", self.wait_replicas, self.wait_timeout, target_nodes=node
        )
        replies: list[Any] = await pipe.execute(
            raise_on_error=False, allow_redirections=False
        )
        return replies

    def _failed(self, name: str, error: Exception, writes: bool) -> Exception:
        """What a failed script (or command) tells the store: StoreUnavailable
        when the cluster said no without running it, StoreUnsure for a write
        whose fate is not known."""
        shown, errors = self.target.shown, self._api.errors
        said = _said(error)
        if isinstance(error, errors.AskError | errors.TryAgainError) or (
            type(error) is errors.ClusterError
        ):
            # ASK, TRYAGAIN, or the client out of redirections: the slot is
            # moving to another node, and nothing ran.
            return StoreUnavailable(
                f"the cluster at {shown} is moving the slab's hash slot; the"
                f" {name} did not run ({said})"
            )
        if isinstance(error, errors.ResponseError):
            return StoreUnavailable(
                f"the cluster at {shown} refused the {name}: {said}"
            )
        if isinstance(error, errors.MaxConnectionsError) or (
            isinstance(error, errors.RedisClusterException)
            and not isinstance(error, errors.RedisClusterUnreachableError)
        ):
            # Refused by the client before anything was sent.
            return StoreUnavailable(f"the cluster at {shown}: {said}")
        kind = StoreUnsure if writes else StoreUnavailable
        return kind(f"the cluster at {shown}: {said}")


def _loop() -> asyncio.AbstractEventLoop:
    """The asyncio loop that the reactor runs: the running one, or before the
    reactor runs (a store opened at start-up), the one it was installed with."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.get_event_loop()


def _said(error: BaseException) -> str:
    return str(error) or type(error).__name__
