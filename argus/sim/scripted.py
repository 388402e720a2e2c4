"""A scripted scenario on a virtual clock: arrivals, worker crashes and client cancels, run through
the `ClusterLoop` with the simulated executor. Each run of a request (level, worker, start) and
each outcome is recorded, so the same scenario run through the live runtime (with a scripted
pool, `tests/runtime/fake_pool.py`) can be compared decision by decision.

Events at the same moment run in a fixed order: crashes, restarts, cancels, executor reports,
arrivals, then the planning tick.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from argus.control.cluster import ClusterLoop, WorkerStatus
from argus.control.plane import ControlPlane
from argus.sim.executor import SimulatedExecutor
from argus.types import Request, RequestStatus

CRASH, RESTART, CANCEL, REPORT, ARRIVAL, TICK = range(6)
"""Event kinds, in their order at equal times."""


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


@dataclass
class Decisions:
    runs: list[tuple[int, str, int, float]] = field(default_factory=list)
    """(arrival index, level, worker, start time) for each batch a request was started in."""
    outcomes: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    """Arrival index -> (final status, level) once it has one."""

    def record_run(self, index: int, request: Request, worker: int, now: float) -> None:
        self.runs.append((index, request.level or "", worker, round(now, 9)))


class _RecordingExecutor(SimulatedExecutor):
    def __init__(self, plane: ControlPlane, decisions: Decisions) -> None:
        super().__init__(plane.table, lambda request: None)
        self.decisions = decisions
        self.forgotten: set[int] = set()
        """Sequence numbers of reports lost with a crashed worker."""
        self._pending: dict[int, int] = {}

    def load(self, worker: int, variant: int, now: float) -> None:
        super().load(worker, variant, now)
        self._pending[worker] = self._seq

    def run(self, worker: int, batch: list[Request], now: float) -> bool:
        for request in batch:
            self.decisions.record_run(int(request.request_id), request, worker, now)
        super().run(worker, batch, now)
        self._pending[worker] = self._seq
        return True

    def crash(self, worker: int) -> None:
        if worker in self._pending:
            self.forgotten.add(self._pending.pop(worker))


def run_scripted(plane: ControlPlane, scenario: Scenario, max_batch: int) -> Decisions:
    """The scenario through the cluster loop and the simulated executor."""
    decisions = Decisions()
    executor = _RecordingExecutor(plane, decisions)
    loop = ClusterLoop(plane, executor, max_batch)
    n = scenario.n or [1] * len(scenario.arrivals)
    requests = [
        Request(prompt=scenario.prompt, arrival_s=t, deadline_s=t + plane.slo_s, n=n[i],
                request_id=str(i))
        for i, t in enumerate(scenario.arrivals)
    ]
    script: list[tuple[float, int, int, int]] = []  # (time, kind, order, subject)
    for i, t in enumerate(scenario.arrivals):
        script.append((t, ARRIVAL, i, i))
    for j, (t, worker) in enumerate(scenario.crashes):
        script.append((t, CRASH, j, worker))
    for j, (t, index) in enumerate(scenario.cancels):
        script.append((t, CANCEL, j, index))
    heapq.heapify(script)
    plane.tick(0.0)
    while True:
        report = executor.next_time()
        tick = plane.next_plan_s
        first = min(script[0][0] if script else float("inf"), report, tick)
        if first > scenario.end_s:
            break
        if script and script[0][0] == first and script[0][1] < REPORT:
            t, kind, _, subject = heapq.heappop(script)
            if kind == CRASH:
                executor.crash(subject)
                loop.worker_died(subject, t)
                heapq.heappush(script, (t + scenario.restart_s, RESTART, 0, subject))
            elif kind == RESTART:
                loop.worker_ready(subject, t)
            else:
                _cancel(loop, requests[subject], t)
        elif report == first:
            t, seq, worker = heapq.heappop(executor.events)
            if seq in executor.forgotten:
                continue
            if loop.status[worker] is WorkerStatus.LOADING:
                loop.variant_loaded(worker, t)
            else:
                loop.finish_batch(worker, t)
        elif script and script[0][0] == first:
            t, _, _, index = heapq.heappop(script)
            loop.admit(requests[index], t)
        else:
            loop.tick(first)
    for i, request in enumerate(requests):
        decisions.outcomes[i] = (request.status.value, request.level)
    return decisions


def _cancel(loop: ClusterLoop, request: Request, now: float) -> None:
    if request.status in (RequestStatus.QUEUED, RequestStatus.RUNNING):
        loop.job_ended(request, now, "cancelled by its client")
