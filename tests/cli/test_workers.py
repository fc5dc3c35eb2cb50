"""The supervisor of ``--workers``, on a Clock, with workers that are fakes of
a process transport: restarts and their back-off, a failed start, and a stop."""

from __future__ import annotations

from typing import Any

import pytest
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from jetforce_sesh.cli.workers import FIRST_WAIT, LAST_WAIT, Supervisor
from jetforce_sesh.server.workers import STATUS_FD, WorkerPlace, WorkersView


class FakeWorker:
    """What the supervisor sees of one worker process."""

    def __init__(self, pid: int, protocol: ProcessProtocol) -> None:
        self.pid = pid
        self.protocol = protocol
        self.signals: list[str] = []
        self.told: list[bytes] = []

    def signalProcess(self, name: str) -> None:
        self.signals.append(name)

    def writeToChild(self, fd: int, data: bytes) -> None:
        self.told.append(data)

    def serve(self) -> None:
        self.protocol.childDataReceived(STATUS_FD, b"ready\n")

    def end(self, code: int | None = 0, signal: int | None = None) -> None:
        reason = ProcessDone(0) if code == 0 else ProcessTerminated(code, signal)
        self.protocol.processEnded(Failure(reason))


class Harness:
    def __init__(self, count: int = 2) -> None:
        self.clock = Clock()
        self.spawned: list[FakeWorker] = []
        self.lines: list[str] = []
        self.ready = 0
        self.done: list[int] = []
        self.supervisor = Supervisor(
            count,
            {"127.0.0.1": 5},
            self.spawn,
            self.clock,
            on_ready=self.on_ready,
            on_done=self.done.append,
            log=self.lines.append,
            kill_after=70.0,
        )

    def spawn(self, place: WorkerPlace, protocol: ProcessProtocol) -> Any:
        worker = FakeWorker(100 + len(self.spawned), protocol)
        self.spawned.append(worker)
        return worker

    def on_ready(self) -> None:
        self.ready += 1

    def live(self, index: int) -> FakeWorker:
        return self.supervisor.transports[index]  # type: ignore[return-value]


def test_it_is_ready_once_every_worker_serves() -> None:
    harness = Harness()
    harness.supervisor.start()
    harness.spawned[0].serve()
    assert 0 == harness.ready
    harness.spawned[1].serve()
    assert 1 == harness.ready


def test_a_worker_that_served_and_died_is_started_again_at_once() -> None:
    harness = Harness()
    harness.supervisor.start()
    for worker in harness.spawned:
        worker.serve()
    harness.spawned[1].end(None, 9)
    assert ["worker 2 (pid 101) was killed by SIGKILL; starting it again now"] == (
        harness.lines
    )
    harness.clock.advance(0)
    assert 3 == len(harness.spawned)
    harness.spawned[2].serve()
    assert "worker 2 (pid 102) serves again" == harness.lines[-1]
    table = harness.supervisor.table()
    assert [(1, 100, 0, "serving"), (2, 102, 1, "serving")] == [
        (i.index, i.pid, i.restarts, i.state) for i in table
    ]


def test_a_worker_that_dies_before_it_serves_waits_longer_each_time() -> None:
    harness = Harness()
    harness.supervisor.start()
    for worker in harness.spawned:
        worker.serve()
    harness.live(1).end(1)  # it had served: at once
    assert harness.lines[-1].endswith("exited with status 1; starting it again now")
    harness.clock.advance(0)
    waits = []
    for _ in range(9):
        harness.live(1).end(1)
        waits.append(harness.lines[-1].rsplit(" again in ", 1)[1])
        before = len(harness.spawned)
        (call,) = harness.clock.getDelayedCalls()
        harness.clock.advance(call.getTime() - harness.clock.seconds() - 0.001)
        assert before == len(harness.spawned)  # not a moment early
        harness.clock.advance(0.002)
        assert before + 1 == len(harness.spawned)
    expected = [min(FIRST_WAIT * 2**n, LAST_WAIT) for n in range(9)]
    assert [f"{wait:g} s" for wait in expected] == waits
    assert (
        f"worker 1 (pid {harness.spawned[-2].pid}) exited with status 1 before it"
        f" served; starting it again in 60 s"
    ) == harness.lines[-1]
    # Once it serves again, the next death is restarted at once.
    harness.live(1).serve()
    harness.live(1).end(None, 9)
    assert harness.lines[-1].endswith("killed by SIGKILL; starting it again now")


def test_status_2_at_the_first_start_stops_the_others_and_exits_2() -> None:
    harness = Harness()
    harness.supervisor.start()
    harness.spawned[0].end(2)
    assert ["TERM"] == harness.spawned[1].signals
    assert [] == harness.done
    harness.spawned[1].end(None, 15)
    assert [2] == harness.done
    assert [] == harness.clock.getDelayedCalls()


def test_a_signal_is_handed_to_every_worker_and_done_once_all_ended() -> None:
    harness = Harness()
    harness.supervisor.start()
    for worker in harness.spawned:
        worker.serve()
    harness.supervisor.stop_for("SIGINT")
    harness.supervisor.stop_for("SIGTERM")
    assert [["INT"], ["INT"]] == [w.signals for w in harness.spawned]
    assert [
        "SIGINT: stopping the 2 workers gracefully",
        "SIGTERM: already stopping",
    ] == harness.lines
    harness.spawned[0].end(0)
    assert [] == harness.done
    harness.spawned[1].end(0)
    assert [0] == harness.done  # no restart while stopping
    assert 2 == len(harness.spawned)


def test_a_worker_that_does_not_stop_is_killed_and_the_status_is_1() -> None:
    harness = Harness()
    harness.supervisor.start()
    for worker in harness.spawned:
        worker.serve()
    harness.supervisor.stop_for("SIGTERM")
    harness.spawned[0].end(0)
    harness.clock.advance(70)
    assert ["TERM", "KILL"] == harness.spawned[1].signals
    harness.spawned[1].end(None, 9)
    assert [1] == harness.done


def test_a_restart_waiting_when_the_stop_comes_is_not_made() -> None:
    harness = Harness()
    harness.supervisor.start()
    harness.spawned[0].serve()
    harness.spawned[1].end(1)  # before it served: waits FIRST_WAIT
    harness.supervisor.stop_for("SIGTERM")
    harness.spawned[0].end(0)
    assert [0] == harness.done
    harness.clock.advance(LAST_WAIT)
    assert 2 == len(harness.spawned)


def test_every_worker_is_told_the_table_and_shows_it() -> None:
    harness = Harness()
    harness.supervisor.start()
    for worker in harness.spawned:
        worker.serve()
    view = WorkersView(1, 2)
    view.update(harness.spawned[0].told[-1])
    assert [
        "* Worker 1: pid 100, serving, 0 restarts",
        "* Worker 2: pid 101, serving, 0 restarts",
    ] == view.lines()[1:]


@pytest.mark.parametrize("count", [0, 257, "2"])
def test_workers_out_of_range_are_refused(count: object) -> None:
    from jetforce_sesh.cli.main import check_workers
    from jetforce_sesh.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        check_workers(count)
    assert (
        f"--workers {count!r} must be a whole number of processes from 1 to 256:"
        f" use e.g. --workers 2, or the number of cores"
    ) == str(raised.value)
