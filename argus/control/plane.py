"""`ControlPlane`: the one facade the live runtime and the simulator drive (contract C).

A plain object: no threads, no I/O, the caller passes the time in. The caller
- `admit`s each new request (prediction, optimal level, routing, deadline check, queueing);
- asks `next_batch` whenever a worker is idle, and runs the batch at the requests' `level`
  (the worker loads `worker_level`'s variant first if it changed);
- reports `complete` / `requeue` (worker crash) / `cancel` (queued) / `abort` (any, no result);
- calls `tick` regularly (at least once per planning period; the first call starts the clock)
  and collects `take_rejected()`: requests rejected after admission (deadline passed while
  queued, failed twice), which must be answered. `argus.control.cluster.ClusterLoop` does all
  of this for an executor. The policy (`argus.control.policy`) decides the plan and routing.
"""

from __future__ import annotations

import math

import numpy as np

from argus.config import ArgusConfig
from argus.control.calibration import Calibration
from argus.control.demand import DemandTracker
from argus.control.dispatcher import LevelQueues, batch_time
from argus.control.levels import LevelTable, default_slo_s
from argus.control.load import LoadEstimator, forecast_decay
from argus.control.placement import PlacementMixin
from argus.control.policy import Demand, Plan, Policy, make_policy
from argus.control.predictor import (
    ProfilePredictor,
    QualityPredictor,
    optimal_level,
    optimal_levels,
    predict_all,
)
from argus.control.profile import Profile
from argus.control.relevel import Releveler
from argus.control.running import RunningWork
from argus.control.snapshot import plane_snapshot
from argus.control.steps import StepModel
from argus.control.workers import WorkerLevels
from argus.types import Rejection, Request, RequestStatus

__all__ = ["ControlPlane", "configured_predictor", "profile_from_config"]

OPTIMAL_CACHE_SIZE = 1 << 16  # predictions whose optimal level is remembered, then forgotten
BURST_SHARE_OF_SLO = 0.5
"""Plan for the load window's busiest stretch of this share of the SLO (shorter bursts wait in
queues within the deadline, longer ones need capacity)."""
BURST_REPLAN_GAP = 0.2  # shortest gap between event-triggered re-plans (share of the period)
BURST_FACTOR = 1.5
"""An overload re-plans at once when the recent arrival rate exceeds the plan's forecast by this
factor (a burst the plan has not seen); an overload the plan expected waits for its period."""
UPGRADE_SLACK = 0.5
"""Share of the SLO within which a request routed below its optimal level must still finish at
the optimal one, to be upgraded there (`ControlPlane._upgrade_with_slack`)."""
RESCUES_PER_DISPATCH = 8
"""Most late heads of queue one dispatch re-levels (the rest expire as before)."""
BURST_LOAD_SHARE = 0.25
"""Event-triggered plans only where the quickest variant load fits in this share of the SLO."""
BURST_MIN_ARRIVALS = 20
"""Fewest recent arrivals whose rate can trigger a re-plan (fewer are sampling noise)."""

_RUNNING = RequestStatus.RUNNING
_COMPLETED = RequestStatus.COMPLETED
_REJECTED = RequestStatus.REJECTED


def configured_predictor(config: ArgusConfig, table: LevelTable) -> QualityPredictor | None:
    """The trained predictor file named by `control.predictor`, for the hot path; None if unset.
    Raises ValueError if it cannot be read or was trained for other levels."""
    if not config.control.predictor:
        return None
    from argus.control.training import CachedLinearPredictor, LinearPredictor

    return CachedLinearPredictor(LinearPredictor.load(config.control.predictor, table))


def profile_from_config(config: ArgusConfig) -> Profile:
    """A modelled profile for a deployment without a measured one (`argus.control.builtin`)."""
    from argus.control.builtin import profile_from_config as build

    return build(config)


MIN_QUEUE_CAPACITY = 64
"""Least derived queue capacity (images), `server.queue_capacity: 0`."""


class ControlPlane(PlacementMixin):
    def __init__(
        self,
        config: ArgusConfig,
        profile: Profile,
        predictor: QualityPredictor | None = None,
        num_workers: int = 1,
        policy: str | Policy | None = None,
        seed: int = 0,
        queue_capacity: int | None = None,
    ) -> None:
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        self.config = config
        self.profile = profile
        self.slo_s = default_slo_s(config, profile)
        # After its arrival, a request's deadline: the SLO less the time kept for answering.
        self.finish_within_s = max(self.slo_s - config.server.response_margin_s, self.slo_s / 2)
        self.table = table = LevelTable.build(profile, self.slo_s)
        self.predictor = predictor or configured_predictor(config, table) or ProfilePredictor(
            table, config.cache.similarity_bands, config.cache.band_steps
        )
        self.num_workers = num_workers
        self.queue_capacity = queue_capacity or config.server.queue_capacity or max(
            MIN_QUEUE_CAPACITY, math.ceil(num_workers * self.slo_s / min(table.image_time_s)))
        self.floor = config.control.quality_floor
        self.tolerance = config.control.redirect_tolerance
        self.overload_floor = config.control.overload_floor
        self.period_s = config.control.planning_period_s
        self.oracle = None
        """`(request, level) -> true quality` for the simulator's oracle baselines; None live."""
        self.queues = LevelQueues(table.variant, table.image_time_s)
        self.load = LoadEstimator(
            window_s=config.control.load_window_s, headroom=config.control.burst_headroom,
            burst_s=BURST_SHARE_OF_SLO * self.slo_s if BURST_SHARE_OF_SLO else None,
            alpha=forecast_decay(self.period_s, max(table.load_time_s)),
        )
        self._variant_levels = [table.levels_of_variant(v) for v in range(len(table.load_time_s))]
        self.workers = WorkerLevels(table, num_workers)
        """The cluster's assignment of workers to levels (plans and lent workers)."""
        self._running_s = [0.0] * len(table.load_time_s)
        self.running = RunningWork(len(table.load_time_s), num_workers)
        """What the busy workers' batches still take (in real time)."""
        self.steps = StepModel(table)
        self._pinned_quality = [{name: 1.0} for name in table.names]
        self.releveler = Releveler(
            table, self.queues, lambda r: self.lowest_quality(r, overloaded=True),
            self.finish_estimate, lambda v: self.workers.per_variant[v], self.queue_debt_s,
        )
        self._retried: set[str] = set()
        self.rejected_later: list[Request] = []  # read only; drained by `take_rejected`
        self._optimal_cache: dict[int, tuple[dict[str, float], int]] = {}
        """id(prediction) -> (prediction, optimal level at the default floor), for stable
        predictions (the same dict object for the same input). The dict is kept alive with its
        entry (and checked on a hit), so a recycled id can never return another's level."""
        self.demand = DemandTracker(table)
        """Per-period measurements for the planner."""
        # Totals for snapshots.
        self.admitted = [0] * len(table)
        self.completed = 0
        self.rejected = 0
        self.plan: Plan | None = None
        self._next_plan_s: float | None = None
        self._last_plan_s = -math.inf
        self._burst = False
        self._burst_replans = min(table.load_time_s) <= BURST_LOAD_SHARE * self.slo_s
        """Re-planning at a burst helps only where a variant loads well within the SLO (on the
        a100-sdxl profile, loads of 12-47 s against a 21 s SLO, it cost violations: a switch
        made mid-burst idles capacity when it is needed most)."""
        self.policy = policy if isinstance(policy, Policy) else make_policy(
            policy or config.control.policy, seed=seed
        )
        self.policy.bind(self)  # a policy may install its own predictor
        self._stable_predictions = isinstance(self.predictor, ProfilePredictor) or getattr(
            self.predictor, "stable_outputs", False
        )
        self.calibration = Calibration()
        """Measured / profiled service time (`observe_service`): scales the estimates."""
        self._degrades = self.policy.degrade_queued
        self.upgrades = self._degrades and config.control.upgrade_when_idle  # quality up
        self._lowest = self.floor - self.tolerance
        overridden = type(self.policy).on_complete is not Policy.on_complete
        self._on_complete = self.policy.on_complete if overridden else None
        self._apply(self.policy.plan(0.0, self._demand(0.0, 0.0)))

    # ----------------------------------------------------------------- admission
    def admit(self, request: Request, now: float) -> Request:
        """Predict, pick the optimal level, route, check the deadline, queue; or reject with a
        reason. Never raises for overload. (The simulator's hot path: kept flat on purpose.)"""
        self.load.observe(now, request.n)  # demand is costed in images everywhere
        table = self.table
        quality = request.predicted_quality  # set already when predicted in bulk
        if quality is None:
            quality = request.predicted_quality = self.predictor.predict(request)
        if request.no_approximation or request.pinned_variant is not None or (
            request.pinned_steps is not None
        ):
            return self._admit_pinned(request, now)
        key = id(quality)
        floor = request.quality_floor
        if request.requested_steps is not None:
            quality = request.predicted_quality = self.steps.relative(
                table.variant[table.full], request.requested_steps, quality
            )
            best = optimal_level(table, quality, self.floor if floor is None else floor)
        elif floor is None or floor == self.floor:
            cached = self._optimal_cache.get(key)
            if cached is not None and cached[0] is quality:
                best = cached[1]
            else:
                best = optimal_level(table, quality, self.floor)
                if self._stable_predictions:
                    if len(self._optimal_cache) >= OPTIMAL_CACHE_SIZE:
                        self._optimal_cache.clear()
                    self._optimal_cache[key] = (quality, best)
        else:
            best = optimal_level(table, quality, floor)
        request.optimal_level = table.names[best]
        self.demand.count(best, quality, request.n)
        queues = self.queues
        if queues.images + request.n > self.queue_capacity and queues.total:
            return self._reject(request, "queue full", Rejection.QUEUE_FULL)
        level = self.policy.route(request, now)
        if level is None:
            return self._reject(request, request.reason or f"rejected by policy {self.policy.name}",
                                Rejection.POLICY)
        cluster = self.workers
        if self._degrades and not (cluster.per_variant[table.variant[level]]
                                   or cluster.lent_from[table.variant[level]]):  # `_served`
            level = self._route_to_served(request, level, now)
        if request.requested_steps is not None:
            level = self._within_request(request, level, best)
        if level != best and self._degrades:
            level = self._upgrade_with_slack(request, level, best, now)
            # The plan routes classes; a prompt of the class may not tolerate the level.
            lowest = self._lowest if floor is None else floor - self.tolerance
            if quality.get(table.names[level], 0.0) < lowest:
                level = best
        # Inline `finish_estimate` (the hot path).
        v = table.variant[level]
        workers = cluster.per_variant[v]
        if workers:
            service = table.service_s[level]
            batch = min(table.batch[level], queues.count[level] + request.n, len(service))
            backlog = queues.work_s[v] + self.running.left_s(v, now) / self.calibration.mean
            if batch > request.n:  # its batch-mates' work is queued already
                backlog -= (batch - request.n) * table.image_time_s[level]
                tail = service[batch - 1]
            else:  # a request as wide as a batch (or wider) runs alone
                tail = batch_time(service, request.n)
            if cluster.loading[v]:
                backlog += cluster.loading_s(v, now)
            # Admitted on the mean speed: dispatch re-checks at mean + spread (`slowdown`) and
            # answers 503 rather than late, so a noisy machine does not turn work away early.
            finish = now + (backlog / workers + tail * request.work_scale) * self.calibration.mean
        else:
            finish = self.finish_estimate(level, now, request.n, request.work_scale)
        if finish > request.deadline_s:
            moved = self._make_room(request, level, now)
            if moved is None:
                moved = self.policy.on_late(request, now, level)
            if moved is None:
                late = self.finish_estimate(level, now, request.n) - request.deadline_s
                return self._reject(
                    request,
                    "overloaded: no compatible level can finish before the deadline "
                    f"(predicted {late:.2f} s late at {table.names[level]})", Rejection.OVERLOADED,
                )
            if moved != level:
                request.reason = f"moved from {table.names[level]} to {table.names[moved]} " \
                    "to meet the deadline"
            level = moved
        return self._enqueue(request, level)

    def prepare(self, requests: list[Request]) -> None:
        """Predict many requests before they arrive, in bulk, with their optimal levels at the
        default floor (what `admit` would compute one by one). The simulator knows its whole
        trace up front; `admit` keeps a prediction already set."""
        bulk = predict_all(self.predictor, requests)
        if not self._stable_predictions:
            return  # the optimal-level memo is keyed by prediction identity
        if bulk is None:
            distinct = list({id(r.predicted_quality): r.predicted_quality
                             for r in requests}.values())
            values = self.demand.matrix(distinct)
        else:
            distinct, values = bulk.distinct, bulk.values
            if list(bulk.levels) != list(self.table.names):
                values = self.demand.matrix(distinct)
        if not distinct:
            return
        best = optimal_levels(self.table, values, self.floor).tolist()
        memo = self._optimal_cache
        for quality, level in zip(distinct, best, strict=True):
            memo[id(quality)] = (quality, level)

    def _enqueue(self, request: Request, level: int) -> Request:
        self._queue(request, level)
        self.admitted[level] += 1
        return request

    def _upgrade_with_slack(self, request: Request, level: int, best: int, now: float) -> int:
        """The plan routes a share of each class to cheaper levels for its forecast rate; when
        the queues are short now (a burst has passed, the forecast still remembers it), the
        request takes its optimal level instead if that finishes within `UPGRADE_SLACK` of the
        SLO. Overload that follows is repaired by re-levelling (degrade before drop)."""
        quality = request.predicted_quality or {}
        names = self.table.names
        if quality.get(names[best], 0.0) <= quality.get(names[level], 0.0):
            return level
        if self.workers.per_variant[self.table.variant[best]] and self.finish_estimate(
            best, now, request.n) <= now + UPGRADE_SLACK * self.slo_s:
            return best
        return level

    def _within_request(self, request: Request, level: int, best: int) -> int:
        """The routed level, unless it is not an approximation of what the request asked for
        (it costs more than its reference run): then its optimal level. Sets the exact-run
        override where it lands on its variant's home level."""
        quality = request.predicted_quality or {}
        if level != best and quality.get(self.table.names[level], 0.0) <= 0.0:
            level = best
        self.steps.override(request, level)
        return level

    def _queue(self, request: Request, level: int) -> None:
        """Every way into a queue (admission, retry, cascade, re-plan) passes here."""
        if request.requested_steps is not None or request.pinned_steps is not None:
            self.steps.override(request, level)
        request.level = self.table.names[level]
        self.queues.push(request, level)
        if self.releveler.active:
            self.releveler.note_queued(request, level)

    def _make_room(self, request: Request, level: int, now: float) -> int | None:
        """Degrade before drop (policies that opt in): re-level queued requests so that this one
        fits; the overload also asks for a re-plan now rather than at the period's end."""
        if not self._degrades:
            return None
        self._replan_soon(now)
        return self.releveler.make_room(request, level, now)

    def _reject(self, request: Request, reason: str, rejection: Rejection) -> Request:
        request.status, request.reason, request.rejection = _REJECTED, reason, rejection
        self.rejected += 1
        return request

    def observe_service(self, level: str, images: int, scale: float, seconds: float) -> None:
        """A batch's measured run time calibrates the estimates (`argus.control.calibration`)."""
        expected = batch_time(self.table.service_s[self.table.index[level]], images) * scale
        self.calibration.observe(seconds, expected)

    @property
    def slowdown(self) -> float:
        """What deadline estimates scale profiled times by (1 on the profile's speed)."""
        return self.calibration.deadline_factor

    @property
    def load_scale(self) -> float:
        """Load in the profile's time: a cluster measured slower plans for more."""
        return self.calibration.load_factor

    def _backlog_s(self, variant: int, now: float) -> float:
        """Worker-seconds ahead of a new arrival at this variant (what the running batches
        still take, and capacity still loading, count as work)."""
        return self.queues.work_s[variant] + self._running_left_s(variant, now) + \
            self.workers.loading_s(variant, now)

    def queue_debt_s(self, variant: int, now: float, deadline: float) -> float:
        """Worker-seconds (profile time) of the variant's queued and running work that end
        after `deadline`: what re-levelling owes the queue before an arrival is judged."""
        workers = self.workers.per_variant[variant]
        if not workers:
            return 0.0
        debt = self._backlog_s(variant, now) - (deadline - now) * workers / self.calibration.mean
        return debt if debt > 0.0 else 0.0

    def _running_left_s(self, variant: int, now: float) -> float:
        """The running batches' remainder, in the profile's time (as queued work is)."""
        return self.running.left_s(variant, now) / self.calibration.mean

    def finish_estimate(
        self, level: int, now: float, images: int = 1, scale: float = 1.0, saved_s: float = 0.0,
    ) -> float:
        """Predicted completion time of a request of `images` queued now at `level`, last in
        EDF order: the variant's queued and running work (less `saved_s`) spread over its
        workers, then the batch it joins, whose other members' work is already queued (joining
        a level's queue costs its share of a batch; running alone costs a whole batch)."""
        v = self.table.variant[level]
        workers = self.workers.per_variant[v]
        wait = 0.0
        if workers == 0:
            if not self.workers.lent_from[v]:
                return math.inf
            workers, wait = self.workers.lent_from[v], self._return_wait_s(v)
        service = self.table.service_s[level]
        batch = min(self.table.batch[level], self.queues.count[level] + images, len(service))
        if batch > images:
            mates = (batch - images) * self.table.image_time_s[level]
            tail = service[batch - 1]
        else:  # as wide as a batch or wider: it runs alone
            mates, tail = 0.0, batch_time(service, images)
        wait += (self._backlog_s(v, now) - saved_s - mates) / workers
        return now + (wait + tail * scale) * self.calibration.mean

    def lowest_quality(self, request: Request, overloaded: bool = False) -> float:
        """The least predicted quality a request may be moved to: its floor minus the redirect
        tolerance, or, when the alternative is rejecting it and it has no floor of its own,
        down to `control.overload_floor` (degrade before drop)."""
        if request.quality_floor is not None:
            return request.quality_floor - self.tolerance
        lowest = self.floor - self.tolerance
        return min(lowest, self.overload_floor) if overloaded else lowest

    # ----------------------------------------------------------------- workers
    def next_batch(self, worker_id: int, now: float, max_batch: int) -> list[Request]:
        """Up to `max_batch` images of compatible requests for this worker, earliest deadline
        first, from the levels of the variant it runs; marks them RUNNING."""
        table = self.table
        queues = self.queues
        v = table.variant[self.workers.level[worker_id]]
        if not queues.variant_count[v] and not (  # idle: take better-served work of others
                self.upgrades and queues.total and self.releveler.upgrade_into(v, now,
                                                                               self.slowdown)):
            return []
        level = queues.earliest(self._variant_levels[v])
        if level < 0:
            return []
        if self._degrades:
            joint = -1 if queues.variant_count[v] < 2 else self.releveler.coalesce(
                v, now, min(max_batch, len(table.service_s[level])), self.slowdown)
            level = joint if joint >= 0 else self._rescue_heads(level, now, v)
            if self.upgrades and queues.variant_count[v] == 1:  # nothing else waits here
                level = self.releveler.upgrade_alone(level, now, self.slowdown)
        service = table.service_s[level]
        batch, expired, images = queues.take_batch(
            level, now, min(max_batch, len(service)), service, self.policy.expire_after_slo,
            self.slowdown)
        if expired:
            self.rejected += len(expired)
            self.rejected_later.extend(expired)
        if batch:
            scale = batch[0].work_scale
            self._running_s[v] += table.image_time_s[level] * images * scale
            run_s = batch_time(service, images) * scale * self.calibration.mean
            self.running.start(worker_id, v, now + run_s)
        return batch

    def _rescue_heads(self, level: int, now: float, variant: int) -> int:
        """Not committed until it starts: a head of queue that would miss its deadline at its
        level moves to a faster compatible one of this variant, if one still makes it."""
        queues, releveler = self.queues, self.releveler
        for _ in range(RESCUES_PER_DISPATCH):
            head = queues.head(level)
            if head is None or releveler.in_time(head, level, now, self.slowdown) \
                    or not releveler.rescue(head, level, now, self.slowdown):
                break
            level = queues.earliest(self._variant_levels[variant])
        return level

    def worker_level(self, worker_id: int) -> str:
        return self.table.names[self.workers.level[worker_id]]

    @property
    def worker_levels(self) -> list[int]:
        """Level position of every worker: a live view (plans update it in place); read only."""
        return self.workers.level

    def workers_per_level(self) -> np.ndarray:
        return self.workers.per_level.copy()

    def complete(self, request: Request, now: float) -> Request:
        """A worker finished the request. The policy may re-dispatch it (cascade): then it is
        QUEUED again at its new `level`, else COMPLETED."""
        table = self.table
        level = table.index[request.level]
        v = table.variant[level]
        running_s = self._running_s
        running = running_s[v] - table.image_time_s[level] * request.n * request.work_scale
        running_s[v] = running if running > 0.0 else 0.0
        request.finish_s = now
        request.status = _COMPLETED
        if self._on_complete is not None:
            follow = self._on_complete(request, now)
            if follow is not None:
                self._queue(request, follow)
                return request
        self.completed += 1
        return request

    def _release(self, request: Request, level: int) -> None:
        v = self.table.variant[level]
        work = self.table.image_time_s[level] * request.n * request.work_scale
        self._running_s[v] = max(0.0, self._running_s[v] - work)

    def requeue(self, request: Request, now: float) -> Request:
        """The worker running it crashed: queue it again once; a second failure is final."""
        level = self.table.index[request.level]
        self._release(request, level)
        if request.request_id in self._retried:
            request.status = RequestStatus.FAILED
            request.reason = "failed twice: worker crashed while generating"
            request.rejection = Rejection.FAILED
            self.rejected_later.append(request)
            return request
        self._retried.add(request.request_id)
        request.start_s = None
        self._queue(request, level)
        return request

    def cancel(self, request_id: str) -> Request | None:
        return self.queues.remove(request_id)

    def abort(
        self, request: Request, now: float, reason: str,
        status: RequestStatus = RequestStatus.CANCELLED,
    ) -> Request:
        """End a request without a result (client gone, timeout, error): a queued one leaves its
        queue, a running one releases its worker time; it does not count as completed."""
        if request.status is RequestStatus.QUEUED:
            self.queues.remove(request.request_id)
        elif request.status is _RUNNING and request.level is not None:
            self._release(request, self.table.index[request.level])
        request.status = status
        request.reason = reason
        request.finish_s = now
        return request

    def take_rejected(self) -> list[Request]:
        """Requests rejected or failed after admission since the last call."""
        out, self.rejected_later = self.rejected_later, []
        return out

    # ----------------------------------------------------------------- planning
    def tick(self, now: float) -> Plan | None:
        """Re-plan when the planning period has elapsed; returns the new plan, else None."""
        if self._next_plan_s is None:
            self._next_plan_s = now + self.period_s
            return None
        if now < self._next_plan_s:
            return None
        self._next_plan_s = now + self.period_s
        self._last_plan_s = now
        forecast = self.load.forecast(now)
        if self._burst:
            # The burst is here before the load window's buckets close.
            _, recent = self.load.recent(now, self.load.burst_s or self.slo_s)
            forecast = max(forecast, recent * (1 + self.load.headroom))
            self._burst = False
        plan = self.policy.plan(now, self._demand(now, forecast))
        self._apply(plan)
        self.releveler.forget_idle()
        return plan

    @property
    def next_plan_s(self) -> float:
        """When `tick` re-plans next (inf before the clock starts)."""
        return math.inf if self._next_plan_s is None else self._next_plan_s

    def _replan_soon(self, now: float) -> None:
        """Event-triggered planning: an overload the plan did not forecast re-plans at once, at
        most once per `BURST_REPLAN_GAP` of the planning period."""
        if self._next_plan_s is None or self.plan is None or not self._burst_replans:
            return
        count, rate = self.load.recent(now, self.load.burst_s or self.slo_s)
        if count < BURST_MIN_ARRIVALS or rate <= BURST_FACTOR * self.plan.forecast_rps:
            return  # overloaded as planned (the plan already knows), or too few to tell
        due = max(now, self._last_plan_s + BURST_REPLAN_GAP * self.period_s)
        if due < self._next_plan_s:
            self._next_plan_s = due
            self._burst = True

    def _demand(self, now: float, forecast: float) -> Demand:
        return self.demand.demand(now, forecast * self.load_scale, self.workers.per_level,
                                  self.queues.count)

    def _apply(self, plan: Plan) -> None:
        workers = np.asarray(plan.workers, int)
        if workers.sum() != self.num_workers or (workers < 0).any():
            raise ValueError(
                f"policy {self.policy.name} planned {workers.sum()} workers for a cluster "
                f"of {self.num_workers}"
            )
        self.workers.assign(self._keep_queued_served(workers), plan.time_s)
        if plan.routing is not None:
            self.policy.set_routing(np.asarray(plan.routing))
        self.plan = plan
        self._rehome_orphans(plan.time_s)

    def snapshot(self) -> dict:
        """The current plan and state, JSON-ready (GET /v1/cluster)."""
        return plane_snapshot(self)
