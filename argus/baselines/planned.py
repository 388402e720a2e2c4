"""Baselines that plan with the MILP but lack one of Argus's ingredients.

- `proteus` (accuracy scaling, input-agnostic): the same MILP and variant switching, but it sees
  one class of prompts whose quality per level is the population mean (what an input-agnostic
  system profiles offline), and applies the resulting level mix to all prompts alike.
- `pac` (prompt-aware allocation, NSDI'24 poster): per-prompt prediction, planner and aligner,
  but over one strategy only: the full model's approximate-caching levels (same variant on every
  worker, so no model loads and no strategy switching).
- `random`: Argus's plan and level mix, but each prompt goes to a level drawn at random with the
  plan's shares: isolates the value of the per-prompt prediction.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from argus.baselines.common import best_timely_level, population_quality, sub_table
from argus.control.aligner import align
from argus.control.planner import MilpPlanner, PlannerSettings
from argus.control.policies import ArgusPolicy
from argus.control.policy import Demand, Plan, PolicyContext, register_policy
from argus.control.predictor import optimal_level
from argus.types import Request


def _load_share(plan: Plan, num: int, fallback: int) -> np.ndarray:
    load = plan.load_rps
    if load is None or load.sum() <= 0:
        share = np.zeros(num)
        share[fallback] = 1.0
        return share
    return load / load.sum()


class _MeanQualityFix:
    """Late requests move by population-mean quality, not by their own prediction; queued
    requests are never re-levelled (that needs per-prompt predictions)."""

    mean_quality: np.ndarray
    degrade_queued = False

    def on_late(self, request: Request, now: float, level: int) -> int | None:
        plane = self.plane  # type: ignore[attr-defined]
        return best_timely_level(
            plane, request, now, level, range(len(plane.table)), self.mean_quality
        )


@register_policy("proteus")
class Proteus(_MeanQualityFix, ArgusPolicy):
    rank_prompts = False  # input-agnostic: one level mix for all prompts alike
    def bind(self, plane: PolicyContext) -> None:
        super().bind(plane)
        self.mean_quality = np.asarray(plane.table.mean_quality, float)

    def plan(self, now: float, demand: Demand) -> Plan:
        plane = self.plane
        assert plane is not None
        table = plane.table
        num = len(table)
        self.mean_quality = population_quality(
            demand.class_share, demand.class_quality, table.mean_quality
        )
        if demand.forecast_rps <= 0:
            return Plan(time_s=now, workers=demand.workers, routing=np.eye(num), changed=False)
        # One class (put at the full level's position) carrying all demand.
        rates = np.zeros(num)
        rates[table.full] = demand.forecast_rps
        quality = np.tile(self.mean_quality, (num, 1))
        current = demand.workers if self._planned else None
        alloc, changed = self.planner.plan(rates, quality, plane.num_workers, current)
        self._planned = True
        plan = Plan(
            time_s=now, workers=alloc.workers, forecast_rps=demand.forecast_rps,
            load_rps=self.routing_flow(
                rates, self.routing_rate(now, rates.sum()), quality, alloc
            ).sum(axis=0),
            unserved_rps=float(alloc.unserved.sum()),
            solve_ms=alloc.solve_ms, changed=changed,
        )
        mix = _load_share(plan, num, table.full)
        return replace(plan, routing=np.tile(mix, (num, 1)))


@register_policy("random")
class RandomAssignment(_MeanQualityFix, ArgusPolicy):
    def bind(self, plane: PolicyContext) -> None:
        super().bind(plane)
        self.rng = np.random.default_rng(self.seed)
        self.mean_quality = np.asarray(plane.table.mean_quality, float)
        self.mix = np.eye(len(plane.table))[plane.table.full]

    def plan(self, now: float, demand: Demand) -> Plan:
        plane = self.plane
        assert plane is not None
        plan = super().plan(now, demand)
        self.mean_quality = population_quality(
            demand.class_share, demand.class_quality, plane.table.mean_quality
        )
        self.mix = _load_share(plan, len(plane.table), plane.table.full)
        return plan

    def route(self, request: Request, now: float) -> int | None:
        return int(np.searchsorted(np.cumsum(self.mix), self.rng.random() * self.mix.sum()))


@register_policy("pac")
class PromptAwareCaching(ArgusPolicy):
    """Argus's machinery restricted to the full model's cache levels (same steps, skip K)."""

    degrade_queued = False

    def bind(self, plane: PolicyContext) -> None:
        table = plane.table
        full = table.full
        self.levels = [
            i for i in table.levels_of_variant(table.variant[full])
            if table.steps[i] == table.steps[full]
        ]
        self.sub = sub_table(table, self.levels)
        super().bind(plane)
        self.planner = MilpPlanner(
            self.sub, PlannerSettings(redirect_floor=plane.floor - plane.tolerance)
        )
        num = len(self.levels)
        self._counts = np.zeros(num)
        self._quality_sum = np.zeros((num, num))
        self._share = np.zeros(num)
        self._quality = np.tile(np.asarray(self.sub.mean_quality), (num, 1))
        self._names = self.sub.names

    def _measure(self) -> None:
        """Fold the last period's per-class counts and qualities into the planner's inputs."""
        seen = self._counts > 0
        if seen.any():
            self._share = self._counts / self._counts.sum()
            self._quality[seen] = self._quality_sum[seen] / self._counts[seen, None]
        self._counts[:] = 0
        self._quality_sum[:] = 0

    def plan(self, now: float, demand: Demand) -> Plan:
        plane = self.plane
        assert plane is not None
        self._measure()
        full_num = len(plane.table)
        index = np.asarray(self.levels)
        if demand.forecast_rps <= 0 or self._share.sum() <= 0:
            workers = np.zeros(full_num, int)
            workers[plane.table.full] = plane.num_workers
            return Plan(time_s=now, workers=workers, routing=np.eye(full_num), changed=False)
        current = demand.workers[index] if self._planned else None
        alloc, changed = self.planner.plan(
            self._share * demand.forecast_rps, self._quality, plane.num_workers, current
        )
        self._planned = True
        load = alloc.flow.sum(axis=0)
        served = load.sum()
        capacity = load / served if served > 0 else np.eye(len(index))[self.sub.full]
        sub_routing = align(self._share, capacity, list(self.sub.rank))
        workers = np.zeros(full_num, int)
        workers[index] = alloc.workers
        routing = np.eye(full_num)
        routing[np.ix_(index, index)] = sub_routing
        full_load = np.zeros(full_num)
        full_load[index] = load
        return Plan(
            time_s=now, workers=workers, routing=routing, forecast_rps=demand.forecast_rps,
            load_rps=full_load, unserved_rps=float(alloc.unserved.sum()),
            solve_ms=alloc.solve_ms, changed=changed,
        )

    def route(self, request: Request, now: float) -> int | None:
        plane = self.plane
        assert plane is not None
        quality = request.predicted_quality or {}
        floor = request.quality_floor if request.quality_floor is not None else plane.floor
        cls = optimal_level(self.sub, quality, floor)
        self._counts[cls] += 1
        self._quality_sum[cls] += [quality.get(n, 0.0) for n in self._names]
        request.optimal_level = self._names[cls]
        return super().route(request, now)

    def on_late(self, request: Request, now: float, level: int) -> int | None:
        plane = self.plane
        assert plane is not None
        quality = request.predicted_quality or {}
        believed = [quality.get(n, m) for n, m in zip(plane.table.names, plane.table.mean_quality,
                                                      strict=True)]
        return best_timely_level(plane, request, now, level, self.levels, believed)
