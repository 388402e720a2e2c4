"""The live runtime: the control plane's decisions carried out on a worker pool.

One asyncio loop (the API's) owns all state. The control plane decides and the cluster loop
(`argus.control.cluster.ClusterLoop`, the simulator's too) offers work to workers; this module is
its executor: it carries out loads and batches on the `WorkerPool`, reports what the workers say
back to the loop, and moves results and errors to the API's `JobHandle`s.

Bounded cost: a queued request expires at its deadline on a timer, a job past `server.max_job_s`
is aborted (its worker restarted if it does not stop), errors name the watchdog's restarts, and
`ready` is false while no worker can serve (`argus.runtime.health`).

NOTE: worker events arrive on the pool's thread and are handed to the loop with
`call_soon_threadsafe`, so no lock guards dispatcher state.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from argus.config import ArgusConfig, LevelConfig
from argus.control.cluster import ClusterLoop
from argus.control.plane import ControlPlane
from argus.control.profile import Profile
from argus.runtime.base import (
    CacheInfo,
    GenerationCancelledError,
    GenerationFailed,
    GenerationRequest,
    InvalidGenerationInput,
    JobHandle,
    JobOutcome,
    Overloaded,
    ProgressUpdate,
    Runtime,
)
from argus.runtime.cache_hook import CacheHook, NoCache
from argus.runtime.health import (
    JOB_LIMIT_SLOS,
    JOB_STOP_GRACE_S,
    WorkerState,
    failed_reason,
    not_ready_reason,
    stall_reason,
    time_limit_reason,
    unstoppable_reason,
)
from argus.runtime.messages import (
    BatchFinished,
    CancelJobs,
    Job,
    JobCancelled,
    JobDone,
    JobFailed,
    LoadVariant,
    Progress,
    RunBatch,
    VariantLoaded,
    WorkerDied,
    WorkerEvent,
    WorkerReady,
)
from argus.runtime.pool import WorkerPool
from argus.runtime.worker import JobInputRejected
from argus.types import Rejection, Request, RequestStatus

log = logging.getLogger("argus.runtime")

PUMP_PERIOD_S = 0.25
"""How often the plane is ticked, queued requests expire and idle workers are offered work
without any event (a re-level may have moved queued work to an idle worker's variant)."""
EXPIRED = "deadline passed while queued"


@dataclass
class _Entry:
    """Dispatcher state of one admitted request."""

    request: Request
    spec: GenerationRequest
    handle: JobHandle
    seed: int
    worker_id: int | None = None
    job: Job | None = None
    cache: CacheInfo = field(default_factory=CacheInfo)
    dispatched_s: float | None = None
    failures: list[str] = field(default_factory=list)
    """Why each worker that ran it died (the error names them if it fails for good)."""


class Dispatcher(Runtime):
    """`Runtime` over a `ControlPlane` and a `WorkerPool`."""

    def __init__(
        self,
        config: ArgusConfig,
        pool: WorkerPool,
        profile: Profile,
        plane: ControlPlane | None = None,
        cache: CacheHook | None = None,
        max_batch: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`clock`: seconds, monotonic (a virtual one in tests, with a scripted pool)."""
        self.config = config
        self._clock = clock
        self.pool = pool
        self.profile = profile
        self.plane = plane or ControlPlane(config, profile, num_workers=pool.num_workers)
        self.cache: CacheHook = cache or NoCache()
        self.max_batch = max_batch or config.server.max_batch
        self.loop = ClusterLoop(self.plane, self, self.max_batch, workers_up=False)
        self._entries: dict[str, _Entry] = {}
        self._workers = {w: WorkerState() for w in range(pool.num_workers)}
        self._batch_ids = iter(range(1, 1 << 62))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task | None = None
        self._booting: asyncio.Task | None = None
        self._draining = False
        self._stopped = False
        self._serving = asyncio.Event()
        """Set once a worker has its variant loaded: until then requests wait at the door."""
        self.worker_deaths = 0
        self.max_job_s = config.server.max_job_s or JOB_LIMIT_SLOS * self.plane.slo_s
        self.job_stop_grace_s = JOB_STOP_GRACE_S + 0.1 * self.max_job_s

    # -- Runtime interface ------------------------------------------------------------------

    async def start(self, background: bool = True) -> None:
        """`background` False: the pool reports on this thread and the caller calls `on_timer`
        (a scripted pool on a virtual clock)."""
        self._loop = asyncio.get_running_loop()
        self.plane.tick(self._clock())
        if not background:
            self.pool.start(self._on_event)
            return
        # Workers boot in the background (a fork server imports torch first): the API answers
        # /health at once and /ready when a worker has its variant loaded.
        boot = asyncio.to_thread(self.pool.start, self._from_pool_thread)
        self._booting = asyncio.create_task(boot, name="argus-pool-start")
        self._ticker = asyncio.create_task(self._tick_forever(), name="argus-dispatcher-tick")

    async def submit(self, spec: GenerationRequest) -> JobHandle:
        if self._draining:
            raise Overloaded("server is shutting down", retry_after_s=5.0, status_code=503)
        # The SLO counts from the HTTP arrival, or from the boot for a request that waited for it.
        waited = time.monotonic() - spec.received_s if spec.received_s is not None else 0.0
        if not self._serving.is_set():
            await self._wait_until_serving()
            waited = 0.0
        arrival = self._clock() - max(0.0, waited)
        request = Request(
            prompt=spec.prompt,
            arrival_s=arrival,
            deadline_s=arrival + self.plane.finish_within_s,
            n=spec.n,
            tenant=spec.tenant,
            seed=spec.seed,
            quality_floor=spec.quality_floor,
            pinned_variant=spec.pinned_variant,
            pinned_steps=spec.pinned_steps,
            pinned_level=spec.pinned_level,
            requested_steps=spec.requested_steps,
            no_approximation=spec.no_approximation,
            run_fraction=(cost := self._cost_scale(spec)),
            work_scale=cost,
            # The engine's batch terms; an edit (its own input image) runs alone.
            batch_key=(spec.width, spec.height, spec.guidance_scale, spec.edit and id(spec)),
        )
        if not isinstance(self.cache, NoCache):  # embeds the prompt: off the event loop
            await asyncio.to_thread(self.cache.annotate, request, spec)
        handle = JobHandle(request.request_id)
        seed = spec.seed if spec.seed is not None else random.randrange(2**31)
        # Registered first: admission may start it on an idle worker at once.
        self._entries[request.request_id] = _Entry(request, spec, handle, seed)
        self.loop.admit(request, self._clock())  # after the embedding's await
        if request.status == RequestStatus.REJECTED:
            del self._entries[request.request_id]
            raise self._rejection(request)
        handle.level = request.level
        handle.predicted_quality = self._predicted(request)
        return handle

    async def cancel(self, request_id: str) -> bool:
        entry = self._entries.get(request_id)
        if entry is None:
            return False
        if entry.worker_id is None:  # still queued
            self._finish(entry, error=GenerationCancelledError("cancelled while queued"))
        else:  # running: the worker stops at its next step boundary
            self.pool.send(entry.worker_id, CancelJobs((request_id,)))
        return True

    async def _wait_until_serving(self) -> None:
        """While the workers boot, a request waits here: its SLO clock starts when a worker can
        serve it, not while the first one imports torch (else early requests expire queued)."""
        if self._serving.is_set():
            return
        timeout = self.config.server.boot_wait_s
        try:
            await asyncio.wait_for(self._serving.wait(), timeout)
        except TimeoutError:
            raise Overloaded(
                f"no worker became ready within {timeout:g} s of waiting (see /ready)",
                retry_after_s=5.0, status_code=503,
            ) from None

    def ready(self) -> bool:
        return self.not_ready_reason() is None

    def request_of(self, request_id: str) -> Request | None:
        """The control plane's record of an admitted request not yet answered."""
        entry = self._entries.get(request_id)
        return entry.request if entry else None

    def not_ready_reason(self) -> str | None:
        if self._draining:
            return "the server is shutting down (draining)"
        hung_after_s = min(self.config.server.worker_stall_s, self.plane.slo_s)
        return not_ready_reason(self._workers, self._clock(), hung_after_s)

    def queue_lengths(self) -> dict[str, int]:
        return dict(self.plane.snapshot()["queue_lengths"])

    def snapshot(self) -> dict[str, Any]:
        snap = dict(self.plane.snapshot())
        placement = self.pool.placement()
        snap["runtime"] = {
            "backend": type(self.pool).__name__,
            "draining": self._draining,
            "worker_deaths": self.worker_deaths,
            "pids": self.pool.pids(),
            "workers": {
                w: {
                    "ready": s.ready,
                    "stopped": s.stopped,
                    "busy": s.batch_id is not None,
                    "variant": s.loaded,
                    "running": sorted(s.request_ids),
                    "restarts": s.restarts,
                    **placement.get(w, {}),  # node and device, where the pool knows them
                }
                for w, s in self._workers.items()
            },
            "queue_lengths": self.queue_lengths(),
        }
        return snap

    async def shutdown(self, drain_timeout_s: float = 30.0) -> None:
        if self._stopped:
            return
        self._draining = True
        deadline = time.monotonic() + drain_timeout_s  # real time: it sleeps
        while self._entries and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for entry in list(self._entries.values()):
            self._finish(entry, error=GenerationFailed("server shut down before serving it"))
        if self._ticker is not None:
            self._ticker.cancel()
        if self._booting is not None:
            await self._booting
        self._stopped = True
        await asyncio.to_thread(self.pool.stop)

    # -- Dispatch ---------------------------------------------------------------------------

    def _cost_scale(self, spec: GenerationRequest) -> float:
        """Its cost per image relative to a plain run of its level: an edit runs `strength` of
        the schedule, and a size other than the native one costs its pixel area (the
        denoiser's work grows with the latent area; profiles time the native size only)."""
        variant = spec.pinned_variant or self.config.level(
            self.plane.table.names[self.plane.table.full]).variant
        native = self.config.variant(variant).resolution
        area = (spec.width or native) * (spec.height or native) / native**2
        return area * (spec.edit.strength if spec.edit else 1.0)

    def _predicted(self, request: Request) -> float | None:
        if request.predicted_quality is None or request.level is None:
            return None
        return request.predicted_quality.get(request.level)

    def _rejection(self, request: Request) -> Overloaded:
        reason = request.reason or "rejected by admission control"
        return Overloaded.of(request.rejection, reason, self._retry_after_s())

    def _retry_after_s(self) -> float:
        """When the queued work will have drained (the plane's queued worker-seconds over its
        workers), within 1-60 s."""
        plane = self.plane
        queued_s = sum(plane.queues.work_s) / max(1, plane.num_workers)
        return max(1.0, min(60.0, queued_s))

    async def _tick_forever(self) -> None:
        pause_s = PUMP_PERIOD_S
        while True:
            await asyncio.sleep(pause_s)
            pause_s = PUMP_PERIOD_S
            try:
                pause_s = self.on_timer(self._clock())
            except Exception:  # a planning bug must not stop serving
                log.exception("dispatcher tick failed")

    def on_timer(self, now: float) -> float:
        """Plan, watch the workers, expire queued requests, offer idle workers work; returns
        the seconds until the next call (sooner when a queued request expires sooner)."""
        self.loop.tick(now)
        self._watch_workers(now)
        pause_s = max(0.02, min(PUMP_PERIOD_S, self._expire_queued(now) - now))
        self.loop.wake_all(now)
        return pause_s

    # -- Bounded cost -----------------------------------------------------------------------

    def _expire_queued(self, now: float) -> float:
        """Answer queued requests past their deadline (x the policy's `expire_after_slo`) with
        503, even when no worker asks for work (all busy, stopped or hung); returns when the
        next one expires."""
        expire_after, upcoming = self.plane.policy.expire_after_slo, math.inf
        if expire_after is None:
            return upcoming
        for entry in list(self._entries.values()):
            request = entry.request
            if entry.worker_id is not None or request.status != RequestStatus.QUEUED:
                continue
            expires_s = request.arrival_s + expire_after * (request.deadline_s - request.arrival_s)
            if now < expires_s:
                upcoming = min(upcoming, expires_s)
                continue
            reason = f"{EXPIRED} (no worker took it within {now - request.arrival_s:.1f} s)"
            error = Overloaded.of(Rejection.EXPIRED, reason, self._retry_after_s())
            self._abort(entry, now, error, RequestStatus.REJECTED)
        return upcoming

    def _abort(self, entry: _Entry, now: float, error: Exception, status: RequestStatus) -> None:
        """End a request the runtime gives up on (expired, over its time limit), plane too."""
        self.loop.job_ended(entry.request, now, str(error), status)
        self._entries.pop(entry.request.request_id, None)
        entry.handle.finish(error=error)

    def _watch_workers(self, now: float) -> None:
        """Note suspended workers (for `ready`); enforce the job time limit; restart a busy
        worker silent for `worker_stall_s` as hung (a crash would have been noticed; its death
        then requeues its requests). Loading a variant is silent and off both clocks."""
        stopped = self.pool.stopped_workers()
        stall_s = self.config.server.worker_stall_s
        for worker_id, state in self._workers.items():
            state.stopped = worker_id in stopped
            if state.batch_id is None or state.loading:
                continue
            if now - state.run_since_s > self.max_job_s:
                self._abort_overdue(worker_id, state, now)
            if state.overdue_s is not None and now - state.overdue_s > self.job_stop_grace_s:
                log.error("worker %d did not stop an overdue job; restarting it", worker_id)
                state.overdue_s = None  # once
                state.kill_reason = unstoppable_reason(self.job_stop_grace_s)
                self.pool.restart(worker_id)
            elif now - state.last_heard_s > stall_s:
                log.error("worker %d silent for %.0f s, busy: restarting it", worker_id, stall_s)
                state.last_heard_s = now  # once per stall
                state.kill_reason = stall_reason(stall_s)
                self.pool.restart(worker_id)

    def _abort_overdue(self, worker_id: int, state: WorkerState, now: float) -> None:
        """Its batch ran past `max_job_s`: abort those jobs (cancelled on the worker too)."""
        over = [e for rid in sorted(state.request_ids) if (e := self._entries.get(rid))
                and e.worker_id == worker_id]
        if not over:
            return
        reason = time_limit_reason(now - state.run_since_s, self.max_job_s)
        log.warning("worker %d: %d job(s) %s", worker_id, len(over), reason)
        self.pool.send(worker_id, CancelJobs(tuple(e.request.request_id for e in over)))
        for entry in over:
            self._abort(entry, now, GenerationFailed(reason), RequestStatus.FAILED)
        if state.overdue_s is None:
            state.overdue_s = now

    # -- Executor (for the cluster loop) ------------------------------------------------------

    def load(self, worker: int, variant: int, now: float) -> None:
        name = self.plane.table.variant_names[variant]
        self._workers[worker].variant = name
        self.pool.send(worker, LoadVariant(name))

    def run(self, worker: int, batch: list[Request], now: float) -> bool:
        """Send the batch as one `RunBatch` (the cache decision resolved per request)."""
        jobs = []
        variant = None
        for request in batch:
            entry = self._entries.get(request.request_id)
            if entry is None:  # answered meanwhile: release it in the plane, run nothing
                self.loop.job_ended(request, now, "answered before it ran")
                continue
            level = self.config.level(request.level)
            variant = level.variant
            entry.job, entry.cache = self.cache.prepare(request, self._job(entry, level), level)
            entry.worker_id, entry.dispatched_s = worker, now
            jobs.append(entry.job)
        if not jobs or variant is None:
            return False
        state = self._workers[worker]
        state.batch_id = next(self._batch_ids)
        state.last_heard_s = state.run_since_s = now
        state.overdue_s = None
        state.variant = variant
        state.request_ids = {job.request_id for job in jobs}
        self.pool.send(worker, RunBatch(state.batch_id, variant, tuple(jobs)))
        return True

    def unserved(self, requests: list[Request], now: float) -> None:
        """Answer requests the plane rejected or failed after admission."""
        for request in requests:
            entry = self._entries.get(request.request_id)
            if entry is None:
                continue
            if request.status == RequestStatus.FAILED:
                reason = request.reason or "generation failed"
                if entry.failures:  # the real causes, not the plane's guess
                    reason = failed_reason(entry.failures)
                error: Exception = GenerationFailed(reason)
            else:
                error = self._rejection(request)
            entry.worker_id = None  # the plane has already let go of it
            self._finish(entry, error=error)

    def _job(self, entry: _Entry, level: LevelConfig) -> Job:
        spec = entry.spec
        variant = self.config.variant(level.variant)
        guidance = spec.guidance_scale
        return Job(
            request_id=entry.request.request_id,
            prompt=spec.prompt,
            negative_prompt=spec.negative_prompt,
            seed=entry.seed,
            n=spec.n,
            steps=entry.request.run_steps or level.steps,
            height=spec.height or variant.resolution,
            width=spec.width or variant.resolution,
            guidance_scale=variant.guidance_scale if guidance is None else guidance,
            partial_images=spec.partial_images,
            edit=spec.edit,
            feature_cache=level.feature_cache,
        )

    # -- Worker events ----------------------------------------------------------------------

    def _from_pool_thread(self, event: WorkerEvent) -> None:
        assert self._loop is not None
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._on_event, event)

    def _on_event(self, event: WorkerEvent) -> None:
        worker = self._workers.get(getattr(event, "worker_id", -1))
        if worker is not None:
            worker.last_heard_s = self._clock()
        try:
            self._handle_event(event)
        except Exception:
            log.exception("handling %s failed", type(event).__name__)

    def _handle_event(self, event: WorkerEvent) -> None:
        match event:
            case Progress():
                for request_id in event.request_ids:
                    entry = self._entries.get(request_id)
                    if entry is not None:
                        entry.handle.progress.put_nowait(
                            ProgressUpdate(event.step, event.total_steps,
                                           event.previews.get(request_id, ()))
                        )
            case JobDone():
                self._on_done(event)
            case JobCancelled():
                self._on_stopped(event.request_id, GenerationCancelledError("cancelled"))
            case JobInputRejected():
                self._on_stopped(event.request_id, InvalidGenerationInput(event.error))
            case JobFailed():
                self._on_stopped(event.request_id, GenerationFailed(event.error))
            case BatchFinished():
                self._on_batch_finished(event)
            case WorkerReady():
                state = self._workers[event.worker_id]
                state.ready, state.batch_id = True, None
                state.variant = state.loaded = None
                self.loop.worker_ready(event.worker_id, self._clock())
            case VariantLoaded():
                state = self._workers[event.worker_id]
                state.variant = state.loaded = event.variant
                state.run_since_s = self._clock()  # a batch's clock starts once loaded
                self._serving.set()
                self.loop.variant_loaded(event.worker_id, state.run_since_s, event.probe)
            case WorkerDied():
                self._on_worker_died(event)

    def _on_batch_finished(self, event: BatchFinished) -> None:
        state = self._workers[event.worker_id]
        if state.batch_id != event.batch_id:
            return
        cut_short = state.overdue_s is not None
        state.batch_id, state.request_ids, state.overdue_s = None, set(), None
        self.loop.batch_finished(event.worker_id, self._clock(), calibrate=not cut_short)

    def _on_done(self, done: JobDone) -> None:
        entry = self._entries.get(done.request_id)
        if entry is None or entry.job is None:
            return
        now = self._clock()
        request = entry.request
        served_level = request.level
        self.cache.store(request, entry.job, done)
        self.loop.job_done(request, now)
        if request.status != RequestStatus.COMPLETED:  # re-dispatched (a cascade): queued, or
            if request.status == RequestStatus.QUEUED:  # already running again on a worker
                entry.worker_id = None                  # the loop offered it to at once
            return
        entry.handle.finish(self._outcome(entry, done, served_level, now))
        del self._entries[done.request_id]

    def _outcome(self, entry: _Entry, done: JobDone, level: str | None, now: float) -> JobOutcome:
        job, request = entry.job, entry.request
        assert job is not None and entry.dispatched_s is not None
        timings = {
            "queue": (entry.dispatched_s - request.arrival_s) * 1e3,
            "run": (now - entry.dispatched_s) * 1e3,
            "total": (now - request.arrival_s) * 1e3,
        }
        timings.update({f"engine_{k}": v for k, v in done.timings_ms.items()})
        return JobOutcome(
            request_id=request.request_id,
            images_png=list(done.images_png),
            variant=self.config.level(level).variant if level else "",
            level=level or "",
            steps=job.steps,
            steps_run=done.steps_run,
            seed=job.seed,
            width=job.width,
            height=job.height,
            cache=entry.cache,
            predicted_quality=request.predicted_quality.get(level)
            if request.predicted_quality and level
            else None,
            timings_ms=timings,
            met_slo=now <= request.deadline_s,
        )

    def _on_stopped(self, request_id: str, error: Exception) -> None:
        entry = self._entries.get(request_id)
        if entry is not None:
            failed = isinstance(error, GenerationFailed)
            status = RequestStatus.FAILED if failed else RequestStatus.CANCELLED
            self._finish(entry, error=error, status=status)

    def _finish(
        self,
        entry: _Entry,
        error: Exception,
        status: RequestStatus = RequestStatus.CANCELLED,
    ) -> None:
        """End a request that was not served: the plane's `abort` releases it (a queued one
        leaves its queue, a running one its worker time; it does not count as completed and no
        policy hook runs). One the plane already let go of (rejected, expired) is left as is."""
        request = entry.request
        self.loop.job_ended(request, self._clock(), request.reason or str(error), status)
        self._entries.pop(request.request_id, None)
        entry.handle.finish(error=error)

    def _on_worker_died(self, event: WorkerDied) -> None:
        """Its requests go back to the plane, which retries each once and then fails it (with
        the causes, e.g. the stall watchdog's restart, as the error)."""
        worker_id = event.worker_id
        state = self._workers[worker_id]
        self.worker_deaths += 1
        cause = state.kill_reason or f"its worker died (exit code {event.exitcode})"
        state.died()
        for request_id in sorted(state.request_ids):
            entry = self._entries.get(request_id)
            if entry is not None and entry.worker_id == worker_id:
                log.warning("worker %d died while running %s; requeueing", worker_id, request_id)
                entry.worker_id = None
                entry.failures.append(cause)
        state.request_ids = set()
        self.loop.worker_died(worker_id, self._clock())


def build_runtime(config: ArgusConfig, cache: CacheHook | None = None) -> Dispatcher:
    """The runtime `argus serve` uses: the configured pool backend under the control plane,
    planning from the configured profile (else one modelled from the config); every registered
    policy can be configured (importing `argus.baselines` registers the baselines)."""
    import argus.baselines  # noqa: F401
    from argus.control.builtin import resolve_profile
    from argus.runtime.pool import pool_class

    profile = resolve_profile(config.control.profile, config)
    pool = pool_class(config.server.runtime)(config)
    return Dispatcher(config, pool, profile, cache=cache)
