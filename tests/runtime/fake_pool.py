"""A scripted worker pool on a virtual clock, for the real `Dispatcher`.

`ScriptedPool` answers commands as workers would, after the profiled time: `LoadVariant` ->
`VariantLoaded`, `RunBatch` -> one `JobDone` per job (no image) then `BatchFinished`,
`CancelJobs` -> `JobCancelled` at once for a running job. `crash` loses a worker's pending reports
and reports it dead; `stall` keeps it silent. `LiveDriver` plays an `argus.sim.scripted.Scenario`
against the dispatcher through it, so the live runtime's decisions can be compared with the
simulator's, and cancel, crash retry and the stall watchdog are tested in milliseconds.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

from argus.config import ArgusConfig
from argus.control.dispatcher import batch_time
from argus.control.plane import ControlPlane
from argus.control.profile import Profile
from argus.runtime.base import GenerationRequest, JobHandle
from argus.runtime.dispatcher import Dispatcher
from argus.runtime.messages import (
    BatchFinished,
    CancelJobs,
    JobCancelled,
    JobDone,
    LoadVariant,
    RunBatch,
    VariantLoaded,
    WorkerDied,
    WorkerEvent,
    WorkerReady,
)
from argus.runtime.pool import EventSink, WorkerCommand, WorkerPool
from argus.sim.scripted import Decisions, Scenario
from argus.types import Request


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedPool(WorkerPool):
    """Workers that take exactly the profiled time. `duration(worker, batch)` gives a batch's
    run time (the driver knows each job's level)."""

    def __init__(self, num_workers: int, clock: VirtualClock, load_time_s: dict[str, float],
                 duration: Callable[[RunBatch], float]) -> None:
        self.num_workers = num_workers
        self.clock = clock
        self.load_time_s = load_time_s
        self.duration = duration
        self.events: list[tuple[float, int, int, list[WorkerEvent]]] = []
        """(time, sequence, worker, events): a heap of pending reports."""
        self.sent: list[tuple[float, int, WorkerCommand]] = []
        self.stalled: set[int] = set()
        self.restarts: list[int] = []
        self._seq = 0
        self._running: dict[int, RunBatch] = {}
        self._cancelled: set[str] = set()
        self._on_event: EventSink = lambda event: None

    # -- WorkerPool ---------------------------------------------------------------------------
    def start(self, on_event: EventSink) -> None:
        self._on_event = on_event
        for worker in range(self.num_workers):
            on_event(WorkerReady(worker, pid=1000 + worker))

    def send(self, worker_id: int, command: WorkerCommand) -> None:
        now = self.clock()
        self.sent.append((now, worker_id, command))
        if worker_id in self.stalled:
            return
        match command:
            case LoadVariant(variant=name):
                self._later(now + self.load_time_s[name], worker_id,
                            [VariantLoaded(worker_id, name, self.load_time_s[name])])
            case RunBatch():
                self._running[worker_id] = command
                self._later(now + self.duration(command), worker_id, [])  # events at delivery
            case CancelJobs(request_ids=ids):
                batch = self._running.get(worker_id)
                running = {job.request_id for job in batch.jobs} if batch else set()
                for request_id in ids:
                    if request_id in running and request_id not in self._cancelled:
                        self._cancelled.add(request_id)
                        self._later(now, worker_id, [JobCancelled(worker_id, request_id, 1)])

    def stop(self, timeout_s: float = 10.0) -> None:
        self.events.clear()

    def restart(self, worker_id: int) -> None:
        self.restarts.append(worker_id)
        self.crash(worker_id)

    def pids(self) -> dict[int, int | None]:
        return {w: 1000 + w for w in range(self.num_workers)}

    # -- scripting ----------------------------------------------------------------------------
    def crash(self, worker_id: int) -> None:
        """The worker dies now: its pending reports are lost; it is reported dead."""
        self.events = [e for e in self.events if e[2] != worker_id]
        heapq.heapify(self.events)
        self._running.pop(worker_id, None)
        self.stalled.discard(worker_id)
        self._on_event(WorkerDied(worker_id, exitcode=-9))

    def come_back(self, worker_id: int) -> None:
        self._on_event(WorkerReady(worker_id, pid=2000 + worker_id))

    def stall(self, worker_id: int) -> None:
        """The worker hangs: nothing it was doing is reported, commands are ignored."""
        self.events = [e for e in self.events if e[2] != worker_id]
        heapq.heapify(self.events)
        self.stalled.add(worker_id)

    def next_time(self) -> float:
        return self.events[0][0] if self.events else float("inf")

    def deliver_next(self) -> None:
        t, _, worker, events = heapq.heappop(self.events)
        self.clock.now = t
        if not events:  # a batch's end: its jobs' results, then the worker is free
            batch = self._running.pop(worker)
            events = [JobDone(worker, job.request_id, (), (), job.steps)
                      for job in batch.jobs if job.request_id not in self._cancelled]
            events.append(BatchFinished(worker, batch.batch_id))
        for event in events:
            self._on_event(event)

    def _later(self, t: float, worker: int, events: list[WorkerEvent]) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, worker, events))


def scripted_dispatcher(config: ArgusConfig, profile: Profile, max_batch: int
                        ) -> tuple[Dispatcher, ScriptedPool, VirtualClock]:
    """The real dispatcher (and control plane) over a scripted pool on a virtual clock."""
    clock = VirtualClock()
    plane = ControlPlane(config, profile, num_workers=config.server.workers)
    table = plane.table
    service = {name: table.service_s[i] for name, i in table.index.items()}
    loads = dict(zip(table.variant_names, table.load_time_s, strict=True))
    holder: list[Dispatcher] = []

    def duration(batch: RunBatch) -> float:
        requests = [holder[0].request_of(job.request_id) for job in batch.jobs]
        first = requests[0]
        return batch_time(service[first.level], sum(r.n for r in requests)) * first.work_scale

    pool = ScriptedPool(config.server.workers, clock, loads, duration)
    dispatcher = Dispatcher(config, pool, profile, plane=plane, max_batch=max_batch, clock=clock)
    holder.append(dispatcher)
    return dispatcher, pool, clock


class LiveDriver:
    """Plays a scenario against the real dispatcher (an `argus.sim.scripted.Driver`)."""

    def __init__(self, dispatcher: Dispatcher, pool: ScriptedPool, clock: VirtualClock,
                 scenario: Scenario, loop: asyncio.AbstractEventLoop) -> None:
        self.dispatcher, self.pool, self.clock = dispatcher, pool, clock
        self.scenario = scenario
        self.loop = loop
        self.decisions = Decisions()
        self.handles: dict[int, JobHandle | Exception] = {}
        self.requests: dict[int, Request] = {}
        self._index: dict[str, int] = {}
        self._recorded = 0

    def boot(self, now: float) -> None:
        self.clock.now = now
        self._await(self.dispatcher.start(background=False))
        self._record()

    def crash(self, worker: int, now: float) -> None:
        self._at(now, self.pool.crash, worker)

    def restart(self, worker: int, now: float) -> None:
        self._at(now, self.pool.come_back, worker)

    def cancel(self, index: int, now: float) -> None:
        self.clock.now = now
        handle = self.handles.get(index)
        if isinstance(handle, JobHandle):
            self._await(self.dispatcher.cancel(handle.request_id))
        self._record()

    def next_report_s(self) -> float:
        return self.pool.next_time()

    def report(self) -> None:
        self.pool.deliver_next()
        self._record()

    def arrive(self, index: int, now: float) -> None:
        self.clock.now = now
        spec = GenerationRequest(prompt=self.scenario.prompt, n=self.scenario.images(index))
        try:
            handle = self._await(self.dispatcher.submit(spec))
        except Exception as error:  # rejected at admission
            self.handles[index] = error
        else:
            self.handles[index] = handle
            self._index[handle.request_id] = index
            self.requests[index] = self.dispatcher.request_of(handle.request_id)
        self._record()

    def next_tick_s(self) -> float:
        return self.dispatcher.plane.next_plan_s

    def tick(self, now: float) -> None:
        self._at(now, self.dispatcher.on_timer)

    def outcomes(self) -> dict[int, tuple[str, str | None]]:
        """Index -> (final status, level); None for the level of one rejected at admission."""
        out = {i: (r.status.name.lower(), r.level) for i, r in self.requests.items()}
        out.update({i: ("rejected", None) for i, h in self.handles.items()
                    if isinstance(h, Exception)})
        return dict(sorted(out.items()))

    def _at(self, now: float, fn: Callable, *args: object) -> None:
        self.clock.now = now
        fn(*args) if args else fn(now)
        self._record()

    def _await(self, coro):  # noqa: ANN001, ANN202 - any coroutine
        return self.loop.run_until_complete(coro)

    def _record(self) -> None:
        """Runs and loads sent since the last call, as decisions."""
        for now, worker, command in self.pool.sent[self._recorded:]:
            if isinstance(command, RunBatch):
                for job in command.jobs:
                    index = self._index[job.request_id]
                    self.decisions.record_run(index, self.requests[index].level, worker, now)
            elif isinstance(command, LoadVariant):
                table = self.dispatcher.plane.table
                self.decisions.record_load(worker, table.variant_names.index(command.variant),
                                           now)
        self._recorded = len(self.pool.sent)
