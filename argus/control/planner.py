"""The MILP planner: how many workers run each level, and how much of each prompt class each
level serves.

Decision variables (solved exactly by `scipy.optimize.milp`, i.e. HiGHS):
- `n[l]` integer: workers at level l, summing to the cluster size;
- `y[c, l] >= 0`: requests/s of class c (prompts whose optimal level is c) served at level l,
  only where class c may go to level l (predicted quality above the redirect floor);
- `u[c] >= 0`: requests/s of class c left unserved;
- `s[v] >= 0`: workers switched onto variant v (each pays the variant's load time).

    maximise   sum q[c,l] y[c,l] - P sum u[c] - sum w[v] s[v] + eps sum quality-rank n[l]
    subject to sum_l y[c,l] + u[c] = D[c]          (every request served or counted)
               sum_c y[c,l] <= rho * T[l] * n[l]    (capacity under a utilisation cap that
                                                    leaves queueing room in the SLO)
               sum_{l in v} n[l] - s[v] <= n_prev[v] (switch-ins per variant)
               sum_l n[l] = N

T[l] is the throughput at the level's planning batch (the largest batch whose service time fits
half the SLO), so service time plus queueing fits the deadline. Changing steps or cache K within a
variant costs nothing, so strategy switches fall out of the plan; loading another variant costs
w[v] = load_time / horizon x the worker's served value over that time. The tiny eps term puts
spare workers on the least approximate levels. Hysteresis: a new plan replaces the current one only
if it beats the current allocation (re-solved with n fixed) by a relative margin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from argus.control.levels import UTILISATION_CAP, LevelTable

SPARE = 1e-6
UNSERVED_PENALTY = 2.0
"""Objective cost per unserved request/s; above any quality, so serving always wins."""


@dataclass(frozen=True)
class Allocation:
    workers: np.ndarray
    """int, per level."""
    flow: np.ndarray
    """(classes, levels) requests/s served."""
    unserved: np.ndarray
    """per class requests/s."""
    objective: float
    """Maximised value (served quality minus penalties), in the units above."""
    solve_ms: float


@dataclass
class PlannerSettings:
    utilisation_cap: float = UTILISATION_CAP
    redirect_floor: float = 0.0
    """Classes may only be redirected to levels predicted at or above this quality."""
    switch_horizon_s: float = 60.0
    """Time over which a variant load's lost capacity is amortised."""
    hysteresis: float = 0.02
    """Relative objective gain a new allocation needs over the current one."""
    time_limit_s: float = 1.0
    mip_gap: float = 5e-3
    """Relative optimality gap at which HiGHS stops: the plan is certified within 0.5% of the
    optimum (closing the last fraction of a percent of served quality costs most of the time)."""


class MilpPlanner:
    def __init__(self, table: LevelTable, settings: PlannerSettings | None = None) -> None:
        self.table = table
        self.settings = settings or PlannerSettings()
        self.capacity = np.asarray(table.throughput) * self.settings.utilisation_cap
        num = len(table)
        self.variant_matrix = np.zeros((len(table.variant_names), num))
        self.variant_matrix[np.asarray(table.variant), np.arange(num)] = 1.0
        # eps per worker by approximation rank: spare workers prefer the least approximate level.
        self.spare_bonus = np.zeros(num)
        self.spare_bonus[list(table.rank)] = SPARE * np.linspace(1.0, 0.0, num)

    def solve(
        self,
        demand: np.ndarray,
        quality: np.ndarray,
        num_workers: int,
        previous: np.ndarray | None = None,
        fixed: np.ndarray | None = None,
    ) -> Allocation:
        """`demand[c]`: requests/s per class; `quality[c, l]`: mean predicted quality of class c
        at level l; `previous`: current workers per level (switch costs); `fixed`: solve only the
        flows for this allocation."""
        started = time.perf_counter()
        num = len(self.table)
        classes = np.flatnonzero(demand > 0)
        allowed = quality[classes] >= self.settings.redirect_floor
        allowed[np.arange(len(classes)), classes] = True  # a class can always use its own level
        pair_c, pair_l = np.nonzero(allowed)
        num_pairs, num_cls = len(pair_c), len(classes)
        num_var = len(self.table.variant_names)
        # Variable layout: [n (num) | y (pairs) | u (classes) | s (variants)]
        off_y, off_u, off_s = num, num + num_pairs, num + num_pairs + num_cls
        size = off_s + num_var

        cost = np.zeros(size)
        cost[:num] = -self.spare_bonus
        cost[off_y:off_u] = -quality[classes[pair_c], pair_l]
        cost[off_u:off_s] = UNSERVED_PENALTY
        if previous is not None:
            per_worker_value = self.capacity @ self.variant_matrix.T / np.maximum(
                self.variant_matrix.sum(axis=1), 1
            )
            cost[off_s:] = (
                np.asarray(self.table.load_time_s) / self.settings.switch_horizon_s
                * per_worker_value
            )

        rows, cols, vals, lo, hi = [], [], [], [], []
        row = 0
        # Demand balance per class.
        rows += list(pair_c + row) + list(range(row, row + num_cls))
        cols += list(off_y + np.arange(num_pairs)) + list(range(off_u, off_s))
        vals += [1.0] * (num_pairs + num_cls)
        lo += list(demand[classes])
        hi += list(demand[classes])
        row += num_cls
        # Capacity per level.
        rows += list(pair_l + row) + list(range(row, row + num))
        cols += list(off_y + np.arange(num_pairs)) + list(range(num))
        vals += [1.0] * num_pairs + list(-self.capacity)
        lo += [-np.inf] * num
        hi += [0.0] * num
        row += num
        # Cluster size.
        rows += [row] * num
        cols += list(range(num))
        vals += [1.0] * num
        lo.append(num_workers)
        hi.append(num_workers)
        row += 1
        if previous is not None:
            prev_v = self.variant_matrix @ previous
            vr, vc = np.nonzero(self.variant_matrix)
            rows += list(vr + row) + list(range(row, row + num_var))
            cols += list(vc) + list(range(off_s, size))
            vals += [1.0] * len(vr) + [-1.0] * num_var
            lo += [-np.inf] * num_var
            hi += list(prev_v)
            row += num_var
        matrix = coo_array((vals, (rows, cols)), shape=(row, size)).tocsr()

        lower = np.zeros(size)
        upper = np.full(size, np.inf)
        upper[:num] = num_workers
        if previous is None:
            upper[off_s:] = 0.0
        if fixed is not None:
            lower[:num] = upper[:num] = fixed
        integrality = np.zeros(size)
        if fixed is None:
            integrality[:num] = 1
        result = milp(
            cost,
            constraints=LinearConstraint(matrix, lo, hi),
            integrality=integrality,
            bounds=Bounds(lower, upper),
            options={
                "time_limit": self.settings.time_limit_s,
                "mip_rel_gap": self.settings.mip_gap,
                "disp": False,
            },
        )
        if result.x is None:
            raise RuntimeError(f"planner MILP failed: {result.message}")
        x = result.x
        flow = np.zeros((len(demand), num))
        np.add.at(flow, (classes[pair_c], pair_l), x[off_y:off_u])
        unserved = np.zeros(len(demand))
        unserved[classes] = x[off_u:off_s]
        return Allocation(
            workers=np.rint(x[:num]).astype(int),
            flow=flow,
            unserved=unserved,
            objective=-float(result.fun),
            solve_ms=(time.perf_counter() - started) * 1e3,
        )

    def plan(
        self,
        demand: np.ndarray,
        quality: np.ndarray,
        num_workers: int,
        current: np.ndarray | None = None,
    ) -> tuple[Allocation, bool]:
        """A new allocation and whether it replaces `current` (hysteresis)."""
        candidate = self.solve(demand, quality, num_workers, previous=current)
        if current is None or np.array_equal(candidate.workers, current):
            return candidate, current is None
        kept = self.solve(demand, quality, num_workers, previous=current, fixed=current)
        margin = self.settings.hysteresis * max(abs(kept.objective), 1e-9)
        if candidate.objective > kept.objective + margin:
            return candidate, True
        return kept, False
