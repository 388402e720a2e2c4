"""Built-in policies. `argus`: the MILP plans workers per level each period, the distribution
aligner turns the plan into a routing matrix, late requests move to faster compatible levels."""

from __future__ import annotations

import numpy as np

from argus.control.aligner import align
from argus.control.planner import MilpPlanner, PlannerSettings
from argus.control.policy import Demand, Plan, Policy, register_policy


@register_policy("argus")
class ArgusPolicy(Policy):
    def bind(self, plane) -> None:  # noqa: ANN001 - ControlPlane (import cycle)
        super().bind(plane)
        self.planner = MilpPlanner(
            plane.table, PlannerSettings(redirect_floor=plane.floor - plane.tolerance)
        )
        self._planned = False

    def plan(self, now: float, demand: Demand) -> Plan:
        plane = self.plane
        assert plane is not None
        table = plane.table
        rates = demand.class_share * demand.forecast_rps
        if rates.sum() <= 0:
            # Nothing measured yet: keep the current workers, each class at its own level.
            return Plan(time_s=now, workers=demand.workers, routing=np.eye(len(table)),
                        changed=False)
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
        return Plan(
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
