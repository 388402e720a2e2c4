"""The one cluster loop: the control plane decides, an executor carries out, and what the executor
reports settles both. Live workers, Ray actors and the simulator all run through it.

schedule -> execute -> update (vLLM v1's shape, with SimPy's lesson that only the clock differs):
- schedule: `offer(worker, now)` gives a free worker its next step: load the variant the plan gave
  it, else run the next batch of its variant's queues (`ControlPlane.next_batch`), else wait idle
  until `wake` (an arrival, a re-plan, a lent worker, a re-dispatch).
- execute: an `Executor` loads variants and runs batches: worker processes (`argus.runtime`), or
  profiled service and load times on a virtual clock (`argus.sim`).
- update: the executor reports each outcome (`job_done`, `job_ended`, `batch_finished`,
  `variant_loaded`, `worker_died`, `worker_ready`); the loop settles the plane and offers the freed
  worker more work.

The loop owns each worker's execution state (the variant it holds or is loading, idle / loading /
busy / down, the batch it runs); the plane owns which variant each worker should hold
(`plane.workers`). Every request leaves through the plane: completed, requeued after a crash, or
aborted; requests the plane rejects after admission go to `Executor.unserved`.

`offer`, `wake` and `admit` run once per simulated request: they are kept flat.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Protocol

from argus.control.plane import ControlPlane
from argus.types import Request, RequestStatus

_REJECTED = RequestStatus.REJECTED
_RUNNING = RequestStatus.RUNNING
_COMPLETED = RequestStatus.COMPLETED


class WorkerStatus(IntEnum):
    IDLE = 0
    LOADING = 1
    BUSY = 2
    DOWN = 3
    """Not running (booting, or dead until it reports ready)."""


_IDLE, _LOADING, _BUSY, _DOWN = WorkerStatus


class Executor(Protocol):
    """What carries out the loop's decisions. Each call returns at once; outcomes come back
    through the loop's update methods (on the executor's clock)."""

    def load(self, worker: int, variant: int, now: float) -> None:
        """Start loading `variant` (a position in `LevelTable.variant_names`) on `worker`, then
        report `variant_loaded`."""

    def run(self, worker: int, batch: list[Request], now: float) -> bool:
        """Start `batch` (one level, marked RUNNING) on `worker`, then report each request's
        `job_done` or `job_ended` and `batch_finished`. False if nothing was started (every
        request was answered meanwhile; the executor ended each through `job_ended`)."""

    def unserved(self, requests: list[Request], now: float) -> None:
        """Requests the plane rejected or failed after admission (expired in the queue, failed
        twice, stranded by a re-plan): answer them."""


class ClusterLoop:
    """The dispatch state machine over a `ControlPlane` and an `Executor`."""

    def __init__(
        self,
        plane: ControlPlane,
        executor: Executor,
        max_batch: int,
        workers_up: bool = True,
    ) -> None:
        """`workers_up`: the workers start idle holding the plan's variants (the simulator);
        else they start down and each reports `worker_ready` (processes booting)."""
        self.plane = plane
        self.executor = executor
        self.max_batch = max_batch
        table = plane.table
        self._level_variant = table.variant
        self._variant_of = {name: table.variant[i] for name, i in table.index.items()}
        count = plane.num_workers
        if workers_up:
            self.loaded = [table.variant[level] for level in plane.worker_levels]
            self.status = [_IDLE] * count
        else:
            self.loaded = [-1] * count
            self.status = [_DOWN] * count
        """Variant each worker holds or is loading (-1: none); its state."""
        self.batches: list[list[Request] | None] = [None] * count
        """The batch each busy worker runs."""
        self._ran: list[tuple[str | None, float, float]] = [(None, 1.0, 0.0)] * count
        """(level, cost scale, start time) of each worker's batch, as it was started."""
        self._idle: list[list[int]] = [[] for _ in table.load_time_s]
        """Per variant: workers that went idle holding it (lazily pruned: check `status`)."""
        for w in range(count):
            if workers_up:
                self._idle[self.loaded[w]].append(w)
        self.loads = 0
        """Variant loads started."""
        self._upgrades = plane.upgrades
        """Idle workers take other variants' queued work where it is better served there."""
        self._assignments = plane.workers.changes

    # ----------------------------------------------------------------- schedule
    def offer(self, worker: int, now: float) -> bool:
        """A free worker's next step: load its planned variant, run a batch, or go idle (then
        False)."""
        plane = self.plane
        plane.running.free(worker)  # offered: its batch, if any, is over
        if plane.workers.lent:
            plane.release_lent(worker, now)
        v = self._level_variant[plane.workers.level[worker]]
        if self.loaded[worker] != v:
            self.loaded[worker] = v
            self.status[worker] = _LOADING
            self.loads += 1
            self.executor.load(worker, v, now)
            return True
        queues = plane.queues
        while queues.variant_count[v] or (self._upgrades and queues.total):
            batch = plane.next_batch(worker, now, self.max_batch)
            if plane.rejected_later:  # requests that expired in the queue
                self.executor.unserved(plane.take_rejected(), now)
            if not batch:
                break
            self.status[worker] = _BUSY
            self.batches[worker] = batch
            self._ran[worker] = (batch[0].level, batch[0].work_scale, now)
            if self.executor.run(worker, batch, now):
                return True
            self.batches[worker] = None
        self.status[worker] = _IDLE
        self._idle[v].append(worker)
        return False

    def wake(self, variant: int, now: float) -> bool:
        """Offer work to one idle worker holding `variant`, if any; True if it took some."""
        pool = self._idle[variant]
        status = self.status
        while pool:
            w = pool.pop()
            if status[w] is _IDLE:
                status[w] = _LOADING  # claimed; `offer` sets the real state
                return self.offer(w, now)
        return False

    def wake_other(self, variant: int, now: float) -> None:
        """Work queued at `variant` found no idle worker there: offer it to an idle worker of
        another variant that may take it better served (the plane's quality up when idle)."""
        for v in range(len(self._idle)):
            if v != variant and self._idle[v] and self.wake(v, now):
                return

    def wake_all(self, now: float) -> None:
        """Offer work to every idle worker (a new plan, a lent worker)."""
        status = self.status
        for pool in self._idle:
            waiting = [w for w in pool if status[w] is _IDLE]
            pool.clear()
            for w in waiting:
                if status[w] is _IDLE:
                    status[w] = _LOADING
                    self.offer(w, now)

    def admit(self, request: Request, now: float) -> Request:
        """Admission (the plane's), then an idle worker of its variant is offered it. A
        rejected request is returned REJECTED; the caller answers it."""
        plane = self.plane
        plane.admit(request, now)
        if plane.workers.changes != self._assignments:  # a worker was lent
            self._assignments = plane.workers.changes
            self.wake_all(now)
        if request.status is not _REJECTED:  # `wake_for`, inlined (once per request)
            v = self._variant_of[request.level]  # type: ignore[index]
            if not self.wake(v, now) and self._upgrades:
                self.wake_other(v, now)
        return request

    def wake_for(self, request: Request, now: float) -> None:
        """A request was queued (admitted, re-dispatched, requeued): an idle worker of its
        variant takes it, else one of another variant may (quality up when idle)."""
        v = self._variant_of[request.level]  # type: ignore[index]
        if not self.wake(v, now) and self._upgrades:
            self.wake_other(v, now)

    def tick(self, now: float) -> object | None:
        """The plane's planning tick; a new plan is offered to the idle workers. Returns it."""
        plan = self.plane.tick(now)
        if plan is not None:
            self.settle(now)
            self.wake_all(now)
        return plan

    def settle(self, now: float) -> None:
        """Hand requests the plane rejected meanwhile to the executor."""
        if self.plane.rejected_later:
            self.executor.unserved(self.plane.take_rejected(), now)

    # ----------------------------------------------------------------- update
    def job_done(self, request: Request, now: float) -> Request:
        """A request of a running batch finished. The policy may re-dispatch it (a cascade):
        it is then QUEUED again and an idle worker of its new variant is offered it."""
        self.plane.complete(request, now)
        if request.status is not _COMPLETED:
            self.wake_for(request, now)
        return request

    def job_ended(
        self, request: Request, now: float, reason: str,
        status: RequestStatus = RequestStatus.CANCELLED,
    ) -> None:
        """A request ends without a result (cancelled, failed, over its time limit): the plane
        releases it (queued: its queue; running: its worker time)."""
        if request.status in (RequestStatus.QUEUED, _RUNNING):
            self.plane.abort(request, now, reason, status)

    def batch_finished(self, worker: int, now: float, calibrate: bool = True) -> None:
        """The worker's batch is over (every request done or ended): its run time calibrates
        the plane's estimates (`observe_service`; not for a batch cut short, `calibrate`
        False), then the worker takes its next step."""
        if self.status[worker] is not _BUSY:  # a late report (the worker died meanwhile)
            return
        batch = self.batches[worker]
        if batch and calibrate:
            # As run: a cascade may have re-dispatched its requests to another level since.
            level, scale, started = self._ran[worker]
            images = batch[0].n if len(batch) == 1 else sum(r.n for r in batch)
            self.plane.observe_service(level, images, scale, now - started)  # type: ignore[arg-type]
        self.batches[worker] = None
        self.offer(worker, now)

    def finish_batch(self, worker: int, now: float) -> None:
        """Every request of the worker's batch is done at once (the simulated executor). It
        runs exactly the profiled time, which calibrates to a factor of exactly 1 (ratios
        within 1e-9 snap to 1): nothing to observe."""
        batch = self.batches[worker]
        if batch is not None:
            plane = self.plane
            for request in batch:
                if request.status is _RUNNING:  # not cancelled meanwhile
                    plane.complete(request, now)
                    if request.status is not _COMPLETED:  # re-dispatched (a cascade)
                        self.wake_for(request, now)
        self.batch_finished(worker, now, calibrate=False)

    def variant_loaded(self, worker: int, now: float,
                       probe: tuple[str, float] | None = None) -> None:
        """The worker's variant is loaded; a timed `probe` (level, seconds of one image)
        calibrates the plane before its first batch there."""
        if probe is not None and probe[0] in self.plane.table.index:
            self.plane.observe_service(probe[0], 1, 1.0, probe[1])
        if self.status[worker] is _LOADING:
            self.offer(worker, now)

    def worker_died(self, worker: int, now: float) -> list[Request]:
        """Its running requests go back to the plane, which retries each once and then fails
        it (to `Executor.unserved`). Returns the requeued ones."""
        batch = self.batches[worker] or ()
        self.batches[worker] = None
        self.plane.running.free(worker)
        self.status[worker] = _DOWN
        self.loaded[worker] = -1
        requeued = self._requeue(batch, now)
        self.settle(now)
        for request in requeued:
            self.wake_for(request, now)
        return requeued

    def worker_ready(self, worker: int, now: float) -> None:
        """A (re)started worker is up, holding no variant (work it had, unreported, is
        requeued)."""
        if self.batches[worker]:
            self.worker_died(worker, now)
        self.status[worker] = _LOADING
        self.loaded[worker] = -1
        self.offer(worker, now)

    def _requeue(self, batch: Iterable[Request], now: float) -> list[Request]:
        requeued = []
        for request in batch:
            if request.status is _RUNNING:
                self.plane.requeue(request, now)
                if request.status is RequestStatus.QUEUED:
                    requeued.append(request)
        return requeued

    # ----------------------------------------------------------------- views
    def is_free(self, worker: int) -> bool:
        return self.status[worker] is _IDLE

    def busy_workers(self) -> list[int]:
        return [w for w, s in enumerate(self.status) if s is _BUSY]
