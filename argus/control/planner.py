"""The MILP planner: how many workers run each level, and how much of each prompt class each
level serves.

Decision variables (solved by `scipy.optimize.milp`, i.e. HiGHS branch and bound):
- `n[v]` integer: workers holding variant v, summing to the cluster size;
- `x[l] >= 0`: workers' time at level l, with sum over the levels of v of x[l] = n[v];
- `y[c, l] >= 0`: requests/s of class c (prompts whose optimal level is c) served at level l,
  only where class c may go to level l (predicted quality at or above the redirect floor);
- `u[c] >= 0`: requests/s of class c left unserved;
- `s[v] >= 0`: workers switched onto variant v (each pays the variant's load time).

    maximise   sum q[c,l] y[c,l] - P sum u[c] - sum w[v] s[v] + eps sum rank-bonus x[l]
    subject to sum_l y[c,l] + u[c] = D[c]            (every request served or counted)
               sum_c y[c,l] <= rho * T[l] * x[l]      (capacity under a utilisation cap that
                                                      leaves queueing room in the SLO)
               sum_{l in v} x[l] = n[v]               (a variant's workers split over its levels)
               n[v] - s[v] <= n_prev[v]               (switch-ins per variant)
               sum_v n[v] = N

Why the integers are per variant: a worker holding a variant runs any of its levels batch by
batch (the dispatcher hands it the most urgent batch among them), because changing steps or cache
K costs nothing; only a variant change costs a model load. So the integrality that is real is the
number of workers per variant; the plan's integer workers per level are the largest-remainder
rounding of x within each variant (summing to n[v], hence to N). Strategy switches (variants vs
fewer steps vs cache levels) fall out of the solution; loading another variant costs
w[v] = load_time / horizon (10 s) x a worker's served value per second.

T[l] is the throughput at the level's planning batch (the largest batch whose service time fits
half the SLO), so service plus queueing fits the deadline. The tiny eps term puts spare capacity
on the least approximate levels. Hysteresis: a plan that changes the variant counts replaces the
current one only if it beats the current counts (re-solved as an LP with n fixed) by a relative
margin; within-variant changes are free and always adopted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from argus.control.levels import UTILISATION_CAP, LevelTable

SPARE = 1e-6
"""Objective weight that places spare capacity on the least approximate levels."""
UNSERVED_PENALTY = 2.0
"""Objective cost per unserved request/s; above any quality, so serving always wins."""


@dataclass(frozen=True)
class Allocation:
    workers: np.ndarray
    """int, per level (sums to the cluster size)."""
    variant_workers: np.ndarray
    """int, per variant."""
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
    switch_horizon_s: float = 10.0
    """Time within which a variant load must pay for the capacity it idles (two planning
    periods). Measured on the shared traces at 1.2x load: 60 s made loads look cheap and the plan
    chased the bursts of azure-llm-code (230 loads, 8.3% SLO violations in 10 min on 64
    workers); 10 s gave 64 loads and 1.0%, and equal or better results on the other traces."""
    hysteresis: float = 0.02
    """Relative objective gain a change of variant counts needs over the current counts."""
    time_limit_s: float = 1.0
    mip_gap: float = 5e-3
    """Relative optimality gap at which HiGHS stops: the plan is certified within 0.5% of the
    optimum (closing the last fraction of a percent of served quality costs most of the time)."""


class MilpPlanner:
    def __init__(self, table: LevelTable, settings: PlannerSettings | None = None) -> None:
        self.table = table
        self.settings = settings or PlannerSettings()
        self.capacity = np.asarray(table.throughput) * self.settings.utilisation_cap
        self.level_variant = np.asarray(table.variant)
        self.num_variants = len(table.variant_names)
        num = len(table)
        self.spare_bonus = np.zeros(num)
        self.spare_bonus[list(table.rank)] = SPARE * np.linspace(1.0, 0.0, num)
        per_variant = np.bincount(self.level_variant, weights=self.capacity,
                                  minlength=self.num_variants)
        levels_per_variant = np.bincount(self.level_variant, minlength=self.num_variants)
        self.switch_cost = (
            np.asarray(table.load_time_s) / self.settings.switch_horizon_s
            * per_variant / np.maximum(levels_per_variant, 1)
        )

    def variant_counts(self, workers: np.ndarray) -> np.ndarray:
        return np.bincount(self.level_variant, weights=workers,
                           minlength=self.num_variants).astype(int)

    def solve(
        self,
        demand: np.ndarray,
        quality: np.ndarray,
        num_workers: int,
        previous: np.ndarray | None = None,
        fixed: np.ndarray | None = None,
    ) -> Allocation:
        """`demand[c]`: requests/s per class; `quality[c, l]`: mean predicted quality of class c
        at level l; `previous`: current workers per level (switch costs); `fixed`: workers per
        variant to keep (an LP: only the split and the flows are solved)."""
        started = time.perf_counter()
        num, nv = len(self.table), self.num_variants
        classes = np.flatnonzero(demand > 0)
        allowed = quality[classes] >= self.settings.redirect_floor
        allowed[np.arange(len(classes)), classes] = True  # a class can always use its own level
        pair_c, pair_l = np.nonzero(allowed)
        num_pairs, num_cls = len(pair_c), len(classes)
        # Variable layout: [n (variants) | x (levels) | y (pairs) | u (classes) | s (variants)]
        off_x, off_y = nv, nv + num
        off_u, off_s = off_y + num_pairs, off_y + num_pairs + num_cls
        size = off_s + nv

        cost = np.zeros(size)
        cost[off_x:off_y] = -self.spare_bonus
        cost[off_y:off_u] = -quality[classes[pair_c], pair_l]
        cost[off_u:off_s] = UNSERVED_PENALTY
        cost[off_s:] = self.switch_cost if previous is not None else 0.0

        pairs = np.arange(num_pairs)
        blocks = [
            # Demand balance per class: sum_l y + u = D.
            (pair_c, off_y + pairs, np.ones(num_pairs)),
            (np.arange(num_cls), off_u + np.arange(num_cls), np.ones(num_cls)),
            # Capacity per level: sum_c y - cap * x <= 0.
            (num_cls + pair_l, off_y + pairs, np.ones(num_pairs)),
            (num_cls + np.arange(num), off_x + np.arange(num), -self.capacity),
            # Variant split: sum_{l in v} x - n = 0.
            (num_cls + num + self.level_variant, off_x + np.arange(num), np.ones(num)),
            (num_cls + num + np.arange(nv), np.arange(nv), -np.ones(nv)),
            # Cluster size: sum_v n = N.
            (np.full(nv, num_cls + num + nv), np.arange(nv), np.ones(nv)),
            # Switch-ins: n - s <= previous.
            (num_cls + num + nv + 1 + np.arange(nv), np.arange(nv), np.ones(nv)),
            (num_cls + num + nv + 1 + np.arange(nv), off_s + np.arange(nv), -np.ones(nv)),
        ]
        rows, cols, vals = (np.concatenate(part) for part in zip(*blocks, strict=True))
        prev_v = self.variant_counts(previous) if previous is not None else np.full(nv, np.inf)
        lo = np.concatenate([demand[classes], np.full(num, -np.inf), np.zeros(nv),
                             [num_workers], np.full(nv, -np.inf)])
        hi = np.concatenate([demand[classes], np.zeros(num), np.zeros(nv), [num_workers], prev_v])
        matrix = coo_array((vals, (rows, cols)), shape=(len(lo), size)).tocsr()

        lower = np.zeros(size)
        upper = np.full(size, np.inf)
        upper[:nv] = num_workers
        integrality = np.zeros(size)
        if fixed is not None:
            lower[:nv] = upper[:nv] = fixed
        else:
            integrality[:nv] = 1
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
        variant_workers = np.rint(x[:nv]).astype(int)
        flow = np.zeros((len(demand), num))
        np.add.at(flow, (classes[pair_c], pair_l), x[off_y:off_u])
        unserved = np.zeros(len(demand))
        unserved[classes] = x[off_u:off_s]
        return Allocation(
            workers=self._round_levels(x[off_x:off_y], variant_workers),
            variant_workers=variant_workers,
            flow=flow,
            unserved=unserved,
            objective=-float(result.fun),
            solve_ms=(time.perf_counter() - started) * 1e3,
        )

    def _round_levels(self, shares: np.ndarray, variant_workers: np.ndarray) -> np.ndarray:
        """Integer workers per level: largest remainder of the continuous shares per variant
        (ties to the less approximate level)."""
        workers = np.floor(shares + 1e-9).astype(int)
        rank_of = np.empty(len(shares), int)
        rank_of[list(self.table.rank)] = np.arange(len(shares))
        for v in range(self.num_variants):
            levels = np.flatnonzero(self.level_variant == v)
            missing = int(variant_workers[v] - workers[levels].sum())
            if missing > 0:
                remainder = shares[levels] - workers[levels]
                order = sorted(levels, key=lambda lv: (-remainder[levels.tolist().index(lv)],
                                                       rank_of[lv]))
                for lv in order[:missing]:
                    workers[lv] += 1
            elif missing < 0:  # float noise: take back from the smallest remainders
                for lv in sorted(levels, key=lambda lv: shares[lv] - workers[lv])[:-missing]:
                    workers[lv] -= 1
        return workers

    def plan(
        self,
        demand: np.ndarray,
        quality: np.ndarray,
        num_workers: int,
        current: np.ndarray | None = None,
    ) -> tuple[Allocation, bool]:
        """A new allocation and whether it changes the variant counts of `current` (workers
        per level); changes of variant counts must pass the hysteresis margin."""
        candidate = self.solve(demand, quality, num_workers, previous=current)
        if current is None:
            return candidate, True
        kept_counts = self.variant_counts(current)
        if np.array_equal(candidate.variant_workers, kept_counts):
            return candidate, False
        kept = self.solve(demand, quality, num_workers, previous=current, fixed=kept_counts)
        margin = self.settings.hysteresis * max(abs(kept.objective), 1e-9)
        if candidate.objective > kept.objective + margin:
            return candidate, True
        return kept, False
