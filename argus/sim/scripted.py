"""A scripted scenario on a virtual clock: arrivals, worker crashes and client cancels, played
against a cluster and recorded decision by decision (level, worker, start time of each run).

`play` orders the events and hands each to a `Driver`; `SimulatedDriver` is the cluster loop with
the simulated executor. The same scenario played against the live runtime (the real dispatcher
over a scripted worker pool, `tests/runtime/fake_pool.py`) must give the same decisions: the
simulator is only worth what it predicts about the live server.

Events at the same moment run in a fixed order: crashes, restarts, cancels, executor reports,
arrivals, then the planning tick.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Protocol

from argus.control.cluster import ClusterLoop, WorkerStatus
from argus.control.plane import ControlPlane
from argus.sim.executor import SimulatedExecutor
from argus.types import Request, RequestStatus

CRASH, RESTART, CANCEL, REPORT, ARRIVAL, TICK = range(6)
"""Event kinds, in their order at equal times."""
CANCELLED_BY_CLIENT = "cancelled by its client"


@dataclass
class Scenario:
    arrivals: list[float]
    """Arrival times, ascending."""
    n: list[int] | None = None
    """Images per request (default 1)."""
    crashes: list[tuple[float, int]] = field(default_factory=list)
    """(time, worker): the worker dies, losing its batch; it is back `restart_s` later."""
    cancels: list[tuple[float, int]] = field(default_factory=list)
    """(time, arrival index): its client cancels it."""
    restart_s: float = 0.5
    end_s: float = 60.0
    prompt: str = "a red circle"

    def images(self, index: int) -> int:
        return self.n[index] if self.n else 1


@dataclass
class Decisions:
    runs: list[tuple[int, str, int, float]] = field(default_factory=list)
    """(arrival index, level, worker, start time) for each batch a request was started in."""
    loads: list[tuple[int, int, float]] = field(default_factory=list)
    """(worker, variant, start time) of each variant load."""
    outcomes: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    """Arrival index -> (final status name, lower case; level)."""

    def record_run(self, index: int, level: str | None, worker: int, now: float) -> None:
        self.runs.append((index, level or "", worker, round(now, 9)))

    def record_load(self, worker: int, variant: int, now: float) -> None:
        self.loads.append((worker, variant, round(now, 9)))


class Driver(Protocol):
    """A cluster the scenario is played against (every call at virtual time `now`)."""

    def boot(self, now: float) -> None: ...
    def crash(self, worker: int, now: float) -> None: ...
    def restart(self, worker: int, now: float) -> None: ...
    def cancel(self, index: int, now: float) -> None: ...
    def next_report_s(self) -> float: ...
    def report(self) -> None:
        """Deliver the executor's earliest report (a finished batch or load)."""
    def arrive(self, index: int, now: float) -> None: ...
    def next_tick_s(self) -> float: ...
    def tick(self, now: float) -> None: ...
    def outcomes(self) -> dict[int, tuple[str, str | None]]: ...


def play(scenario: Scenario, driver: Driver) -> None:
    """Run the scenario's events and the cluster's own (reports, ticks) in time order."""
    script: list[tuple[float, int, int, int]] = []  # (time, kind, order, subject)
    for i, t in enumerate(scenario.arrivals):
        script.append((t, ARRIVAL, i, i))
    for j, (t, worker) in enumerate(scenario.crashes):
        script.append((t, CRASH, j, worker))
    for j, (t, index) in enumerate(scenario.cancels):
        script.append((t, CANCEL, j, index))
    heapq.heapify(script)
    driver.boot(0.0)
    while True:
        scripted = script[0][0] if script else float("inf")
        report, tick = driver.next_report_s(), driver.next_tick_s()
        first = min(scripted, report, tick)
        if first > scenario.end_s:
            break
        if scripted == first and script[0][1] < REPORT:
            t, kind, _, subject = heapq.heappop(script)
            if kind == CRASH:
                driver.crash(subject, t)
                heapq.heappush(script, (t + scenario.restart_s, RESTART, 0, subject))
            elif kind == RESTART:
                driver.restart(subject, t)
            else:
                driver.cancel(subject, t)
        elif report == first:
            driver.report()
        elif scripted == first:
            t, _, _, index = heapq.heappop(script)
            driver.arrive(index, t)
        else:
            driver.tick(first)


class _RecordingExecutor(SimulatedExecutor):
    """The simulated executor, recording each run and load; a crash forgets the worker's
    pending report."""

    def __init__(self, plane: ControlPlane, decisions: Decisions) -> None:
        super().__init__(plane.table, lambda request: None)
        self.decisions = decisions
        self.forgotten: set[int] = set()
        self._pending: dict[int, int] = {}

    def load(self, worker: int, variant: int, now: float) -> None:
        self.decisions.record_load(worker, variant, now)
        super().load(worker, variant, now)
        self._pending[worker] = self._seq

    def run(self, worker: int, batch: list[Request], now: float) -> bool:
        for request in batch:
            self.decisions.record_run(int(request.request_id), request.level, worker, now)
        super().run(worker, batch, now)
        self._pending[worker] = self._seq
        return True

    def crash(self, worker: int) -> None:
        if worker in self._pending:
            self.forgotten.add(self._pending.pop(worker))


class SimulatedDriver:
    """The cluster loop over the simulated executor. `boot`: workers start down and load their
    planned variant as live workers do (else they start holding it, as `argus simulate`)."""

    def __init__(self, plane: ControlPlane, scenario: Scenario, max_batch: int,
                 boot: bool = True) -> None:
        self.plane = plane
        self.decisions = Decisions()
        self.executor = _RecordingExecutor(plane, self.decisions)
        self.loop = ClusterLoop(plane, self.executor, max_batch, workers_up=not boot)
        self._boot = boot
        self.requests = [
            Request(prompt=scenario.prompt, arrival_s=t, deadline_s=t + plane.finish_within_s,
                    n=scenario.images(i), request_id=str(i))
            for i, t in enumerate(scenario.arrivals)
        ]

    def boot(self, now: float) -> None:
        self.plane.tick(now)
        if self._boot:
            for worker in range(self.plane.num_workers):
                self.loop.worker_ready(worker, now)

    def crash(self, worker: int, now: float) -> None:
        self.executor.crash(worker)
        self.loop.worker_died(worker, now)

    def restart(self, worker: int, now: float) -> None:
        self.loop.worker_ready(worker, now)

    def cancel(self, index: int, now: float) -> None:
        request = self.requests[index]
        if request.status in (RequestStatus.QUEUED, RequestStatus.RUNNING):
            self.loop.job_ended(request, now, CANCELLED_BY_CLIENT)

    def next_report_s(self) -> float:
        return self.executor.next_time()

    def report(self) -> None:
        t, seq, worker = heapq.heappop(self.executor.events)
        if seq in self.executor.forgotten:
            return
        if self.loop.status[worker] is WorkerStatus.LOADING:
            self.loop.variant_loaded(worker, t)
        else:
            self.loop.finish_batch(worker, t)

    def arrive(self, index: int, now: float) -> None:
        self.loop.admit(self.requests[index], now)

    def next_tick_s(self) -> float:
        return self.plane.next_plan_s

    def tick(self, now: float) -> None:
        self.loop.tick(now)

    def outcomes(self) -> dict[int, tuple[str, str | None]]:
        return {i: (r.status.name.lower(), r.level) for i, r in enumerate(self.requests)}


def run_scripted(plane: ControlPlane, scenario: Scenario, max_batch: int,
                 boot: bool = True) -> Decisions:
    """The scenario through the cluster loop and the simulated executor."""
    driver = SimulatedDriver(plane, scenario, max_batch, boot)
    play(scenario, driver)
    driver.decisions.outcomes = driver.outcomes()
    return driver.decisions
