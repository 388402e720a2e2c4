"""Built-in policies. `argus`: the MILP plans workers per level each period, the distribution
aligner turns the plan into a routing matrix, late requests move to faster compatible levels."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from argus.control.aligner import align
from argus.control.planner import MilpPlanner, PlannerSettings
from argus.control.policy import Demand, Plan, Policy, register_policy

REPLAN_TOLERANCE = 0.02
"""Inputs that moved less than this (class rates: L1 change over the total; predicted quality:
largest change) keep the previous plan without a solve: such a change cannot pass the planner's
2% hysteresis, and steady load then costs no MILP per period."""


@register_policy("argus")
class ArgusPolicy(Policy):
    def bind(self, plane) -> None:  # noqa: ANN001 - ControlPlane (import cycle)
        super().bind(plane)
        self.planner = MilpPlanner(
            plane.table, PlannerSettings(redirect_floor=plane.floor - plane.tolerance)
        )
        self._planned = False
        self._last: tuple[np.ndarray, np.ndarray, Plan] | None = None

    def plan(self, now: float, demand: Demand) -> Plan:
        plane = self.plane
        assert plane is not None
        table = plane.table
        rates = demand.class_share * demand.forecast_rps
        if rates.sum() <= 0:
            # Nothing measured yet: keep the current workers, each class at its own level.
            return Plan(time_s=now, workers=demand.workers, routing=np.eye(len(table)),
                        changed=False)
        if self._unchanged(rates, demand):
            assert self._last is not None
            return replace(self._last[2], time_s=now, changed=False, solve_ms=0.0)
        current = demand.workers if self._planned else None
        alloc, changed = self.planner.plan(
            rates, demand.class_quality, plane.num_workers, current
        )
        self._planned = True
        load = alloc.flow.sum(axis=0)
        served = load.sum()
        capacity_share = load / served if served > 0 else np.eye(len(table))[table.full]
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
            info={"objective": alloc.objective},
        )
        self._last = (rates, demand.class_quality, plan)
        return plan

    def _unchanged(self, rates: np.ndarray, demand: Demand) -> bool:
        if self._last is None:
            return False
        last_rates, last_quality, last_plan = self._last
        if not np.array_equal(demand.workers, last_plan.workers):
            return False
        moved = np.abs(rates - last_rates).sum() / max(last_rates.sum(), 1e-9)
        drift = np.abs(demand.class_quality - last_quality).max()
        return moved < REPLAN_TOLERANCE and drift < REPLAN_TOLERANCE
