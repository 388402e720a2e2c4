"""Built-in policies. `argus`: the MILP plans workers per level each period, its planned flows
(class -> level) become the routing matrix (`routing_from_flows`; the aligner when there are
none), each class's prompts are ranked by their own predicted quality so the most tolerant ones
take its most approximate destinations, late requests move to faster compatible levels.
With a ProfilePredictor and a profile that has a per-prompt table, the policy trains a text
predictor on that table (`fitted_for_table`) and installs it in the plane."""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from argus.control.aligner import align, routing_from_flows
from argus.control.planner import Allocation, MilpPlanner, PlannerSettings
from argus.control.policy import (
    DEMAND_SMOOTHING,
    Demand,
    Plan,
    Policy,
    PolicyContext,
    register_policy,
)
from argus.control.predictor import ProfilePredictor
from argus.types import Request

REPLAN_TOLERANCE = 0.02
"""Inputs that moved less than this since the last solve keep its plan without a solve (forecast
and routing rate: relative change; class shares: L1 change; predicted quality: each class's
largest change, weighted by its share): a change this small moves the plan's objective by about
as much as the planner's 2% hysteresis ignores."""
SHARE_NOISE_Z = 2.0
"""Class shares are sampled: an L1 change within this many times its expected sampling noise is
noise, not a new prompt mix, and re-solving for it would only chase the noise (at 64 workers
and 21 req/s the shares move 0.13 L1 per period on a steady Poisson load)."""
MAX_KEPT_PERIODS = 12
"""A kept plan is re-solved after this many periods anyway: a lasting shift smaller than the
noise allowance still reaches the plan within a minute."""


SHORTFALL_SHARE = 0.02
"""Unserved share of the planned demand above which the plan goes down to the overload floor."""

MIN_TABLE_ROWS = 20
"""Smallest per-prompt table the policy trains a predictor on."""
RANK_WINDOW = 256
"""Recent scores per (class, level) that a prompt's quantile is measured against."""
RANK_WARMUP = 16


class _Solved(NamedTuple):
    """The inputs and the plan of the last solve."""

    rates: np.ndarray
    routing_rps: float
    quality: np.ndarray
    share_samples: float
    plan: Plan


@register_policy("argus")
class ArgusPolicy(Policy):
    degrade_queued = True
    route_by_flows = True
    """Routing matrix = the MILP's planned flows (else the aligner on the planned level shares)."""
    rank_prompts = True
    """Within a class, the prompts predicted to lose least take the most approximate levels
    (else the row's shares in a fixed cycle, blind to the prompt)."""
    learn_predictor = True
    route_at_window_rate = True
    """Route by flows re-solved at the window's sustained rate on the planned workers (see
    `routing_flow`), not by the flows planned for the burst forecast."""
    burst_weight = 0.5
    """The rate routed for: sustained rate^(1-w) x forecast^w (geometric blend)."""

    def bind(self, plane: PolicyContext) -> None:
        super().bind(plane)
        if self.learn_predictor:
            _install_table_predictor(plane)
        self._scores: dict[tuple[int, int], tuple[deque, list]] = {}
        lowest = plane.floor - plane.tolerance
        self.planner = MilpPlanner(plane.table, PlannerSettings(redirect_floor=lowest))
        overload = min(lowest, plane.overload_floor)
        self.overload_planner = (
            MilpPlanner(plane.table, PlannerSettings(redirect_floor=overload))
            if self.plan_to_overload_floor and overload < lowest else None
        )
        self._planned = False
        self._last: _Solved | None = None
        self._kept = 0
        """Periods since the last solve."""

    plan_to_overload_floor = True
    """When the plan at the redirect floor leaves demand unserved (more than
    `SHORTFALL_SHARE`), the workers per variant are re-planned with classes redirectable down to
    the overload floor (capacity for a shortfall); routing stays at the redirect floor."""

    def plan(self, now: float, demand: Demand) -> Plan:
        plane = self.plane
        assert plane is not None
        table = plane.table
        rates = demand.class_share * demand.forecast_rps
        if rates.sum() <= 0:
            # Nothing measured yet: keep the current workers, each class at its own level.
            return Plan(time_s=now, workers=demand.workers, routing=np.eye(len(table)),
                        changed=False)
        routing_rps = self.routing_rate(now, rates.sum())
        if self._kept < MAX_KEPT_PERIODS and self._unchanged(rates, routing_rps, demand):
            assert self._last is not None
            self._kept += 1
            return replace(self._last.plan, time_s=now, forecast_rps=demand.forecast_rps,
                           changed=False, solve_ms=0.0)
        self._kept = 0
        current = demand.workers if self._planned else None
        planner = self.planner
        alloc, changed = planner.plan(rates, demand.class_quality, plane.num_workers, current)
        if self.overload_planner is not None and (
            alloc.unserved.sum() > SHORTFALL_SHARE * rates.sum()
        ):
            planner = self.overload_planner
            alloc, changed = planner.plan(rates, demand.class_quality, plane.num_workers, current)
        self._planned = True
        flow = self.routing_flow(rates, routing_rps, demand.class_quality, alloc,
                                 resolve=planner is not self.planner)
        load = flow.sum(axis=0)
        served = load.sum()
        capacity_share = load / served if served > 0 else np.eye(len(table))[table.full]
        routing = routing_from_flows(flow) if self.route_by_flows else None
        if routing is None:
            routing = align(
                demand.class_share, capacity_share, list(table.rank), demand.class_quality,
                plane.floor - plane.tolerance,
            )
        plan = Plan(
            time_s=now,
            workers=alloc.workers,
            routing=routing,
            forecast_rps=demand.forecast_rps,
            load_rps=load,
            unserved_rps=float(alloc.unserved.sum()),
            solve_ms=alloc.solve_ms,
            changed=changed,
            info={"objective": alloc.objective, "burst_load_rps": alloc.flow.sum(axis=0)},
        )
        self._last = _Solved(rates, routing_rps, demand.class_quality, demand.share_samples, plan)
        return plan

    def routing_rate(self, now: float, forecast: float) -> float:
        """The rate to route for: the workers are planned for the forecast (the busiest stretch
        plus headroom), but most of the time the load is the window's mean rate; routing by the
        forecast's flows would push prompts to approximate levels that the planned workers do
        not need. So routing is planned for a blend of the two (bursts above it are caught by
        admission moving late requests to faster levels)."""
        plane = self.plane
        assert plane is not None
        if not self.route_at_window_rate:
            return forecast
        window = min(plane.load.sustained_rate(now) * plane.load_scale, forecast)
        return window ** (1 - self.burst_weight) * forecast ** self.burst_weight

    def routing_flow(
        self, rates: np.ndarray, routing_rps: float, quality: np.ndarray, alloc: Allocation,
        resolve: bool = False,
    ) -> np.ndarray:
        """Flows to route by: re-solved (an LP, workers per variant fixed) at `routing_rps`
        unless that is within 2% of the forecast (or `resolve`), always at the redirect floor:
        routing below it is left to admission, which sees whether the queues are late now."""
        plane = self.plane
        assert plane is not None
        forecast = rates.sum()
        if routing_rps <= 0 or (routing_rps >= 0.98 * forecast and not resolve):
            return alloc.flow
        return self.planner.solve(
            rates * (min(routing_rps, forecast) / forecast), quality, plane.num_workers,
            fixed=alloc.variant_workers,
        ).flow

    def _unchanged(self, rates: np.ndarray, routing_rps: float, demand: Demand) -> bool:
        """Whether the inputs moved within noise and tolerance since the last solve."""
        last = self._last
        if last is None or not np.array_equal(demand.workers, last.plan.workers):
            return False
        total, last_total = rates.sum(), last.rates.sum()
        if abs(total - last_total) > REPLAN_TOLERANCE * last_total or abs(
            routing_rps - last.routing_rps
        ) > REPLAN_TOLERANCE * last.routing_rps:
            return False
        share, last_share = rates / total, last.rates / last_total
        moved = np.abs(share - last_share).sum()
        if moved >= REPLAN_TOLERANCE and moved >= SHARE_NOISE_Z * share_noise(
            (share + last_share) / 2, demand.share_samples, last.share_samples, self._kept + 1
        ):
            return False
        drift = np.abs(demand.class_quality - last.quality).max(axis=1)
        return float(share @ drift) < REPLAN_TOLERANCE

    def on_late(self, request: Request, now: float, level: int) -> int | None:
        """Degrade before drop: any level down to the overload floor that still makes it."""
        assert self.plane is not None
        return self.plane.fastest_fix(request, now, level, overloaded=True)

    def install_routes(self, matrix: np.ndarray) -> None:
        super().install_routes(matrix)
        table = self.plane.table if self.plane is not None else None
        # Per class: destinations from most to least approximate with their shares.
        self._destinations = []
        for row in matrix:
            levels = [int(i) for i in (table.rank[::-1] if table else range(len(row)))
                      if row[i] > 1e-9]
            shares = np.cumsum([row[i] for i in levels]) / max(row.sum(), 1e-12)
            self._destinations.append((levels, shares.tolist()))

    def route(self, request: Request, now: float) -> int | None:
        if not self.rank_prompts or self._matrix is None:
            return super().route(request, now)
        plane = self.plane
        assert plane is not None
        cls = plane.table.index[request.optimal_level]
        levels, shares = self._destinations[cls]
        if len(levels) < 2:
            return super().route(request, now)
        deepest = levels[0]
        score = (request.predicted_quality or {}).get(plane.table.names[deepest], 0.0)
        window = self._scores.get((cls, deepest))
        if window is None:
            window = self._scores[(cls, deepest)] = (deque(), [])
        recent, ordered = window
        rank = bisect.bisect_left(ordered, score)
        known = len(ordered)
        recent.append(score)
        bisect.insort(ordered, score)
        if len(recent) > RANK_WINDOW:
            ordered.pop(bisect.bisect_left(ordered, recent.popleft()))
        if known < RANK_WARMUP:
            return super().route(request, now)
        # Quantile from the top: the most tolerant prompts take the most approximate levels.
        tolerant = 1.0 - (rank + 0.5) / known
        for level, cumulative in zip(levels, shares, strict=True):
            if tolerant < cumulative:
                return level
        return levels[-1]


def share_noise(
    share: np.ndarray, samples: float, then_samples: float, periods: int,
    smoothing: float = DEMAND_SMOOTHING,
) -> float:
    """Expected L1 distance, from sampling alone, between the plane's share estimate now (from an
    effective `samples` requests) and the one `periods` periods ago (`then_samples`): the sum of
    sqrt(2/pi) x the sd of each difference. Both are EWMAs, so they share the older samples: the
    covariance (1 - smoothing)^periods x Var(then) is taken off. 0 when a size is unknown."""
    if samples <= 0 or then_samples <= 0:
        return 0.0
    shared = 2 * (1 - smoothing) ** periods
    inverse = max(1 / samples + (1 - shared) / then_samples, 0.0)
    return math.sqrt(2 / math.pi) * float(np.sqrt(share * (1 - share) * inverse).sum())


def _install_table_predictor(plane: PolicyContext) -> None:
    """Replace the plane's profile-means predictor by one trained on the profile's per-prompt
    table (text + cache similarity), when the profile has one."""
    if type(plane.predictor) is not ProfilePredictor:
        return
    if len(plane.profile.prompts) < MIN_TABLE_ROWS:
        return
    from argus.control.training import fitted_for_table

    cache = plane.config.cache
    # Called from `bind`: the plane reads the new predictor's `stable_outputs` after it.
    plane.predictor = fitted_for_table(plane.table, cache.similarity_bands, cache.band_steps)
