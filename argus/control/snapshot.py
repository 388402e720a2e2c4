"""The control plane's state as JSON (GET /v1/cluster)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argus.control.plane import ControlPlane


def plane_snapshot(plane: ControlPlane) -> dict:
    """The current plan and state, JSON-ready."""
    names = plane.table.names
    plan = plane.plan
    admitted = sum(plane.admitted)
    return {
        "policy": plane.policy.name,
        "num_workers": plane.num_workers,
        "slo_s": plane.slo_s,
        "plan_time_s": plan.time_s if plan else None,
        "forecast_rps": plan.forecast_rps if plan else 0.0,
        "workers_per_level": {
            n: int(w) for n, w in zip(names, plane.workers.per_level, strict=True)
        },
        "planned_load_rps": (
            {n: float(x) for n, x in zip(names, plan.load_rps, strict=True)}
            if plan is not None and plan.load_rps is not None else None
        ),
        "unserved_rps": plan.unserved_rps if plan else 0.0,
        "solve_ms": plan.solve_ms if plan else 0.0,
        "queue_lengths": {n: int(c) for n, c in zip(names, plane.queues.count, strict=True)},
        "level_share": {
            n: (int(c) / admitted if admitted else 0.0)
            for n, c in zip(names, plane.admitted, strict=True)
        },
        "admitted": admitted,
        "completed": plane.completed,
        "rejected": plane.rejected,
    }
