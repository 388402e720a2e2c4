"""The offline oracle: an upper bound on quality-weighted goodput for one trace.

It knows every arrival and every request's true relative quality at every level (the simulator's
quality model) and solves one LP (`scipy.optimize.linprog`, HiGHS) over the whole trace:

    maximise   sum_i sum_l q[i,l] x[i,l,w]            (quality-weighted requests within SLO)
    subject to sum_{l,w} x[i,l,w] <= 1                 (each request served at most once)
               sum_{i,l} tau[l] x[i,l,w] <= N * W      (worker-seconds per time window w)
               x >= 0,  w in {window(arrival_i), the next one}

Windows are `W = SLO` long, so a request's service (which lies in [arrival, arrival + SLO]) falls
in its arrival window or the next: every feasible schedule is feasible here. `tau[l]` is the
smallest per-image time of any batch that fits in the SLO. It relaxes everything else: workers
are fluid across levels, model loads are free, batches are always full, and there is no
queueing. So no policy can beat it, and the gap to it is an upper bound on what is left.
Per request, a level that is both slower and no better than another is dropped before solving
(it never helps when capacity is pooled), which keeps the LP at a few variables per request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import coo_array, vstack

from argus.control.levels import LevelTable

if TYPE_CHECKING:
    from argus.sim.simulator import Simulator


@dataclass(frozen=True)
class OracleBound:
    quality_goodput_rps: float
    """Upper bound on sum of relative quality of requests served within SLO, per second."""
    goodput_rps: float
    """Requests/s served in the bound's optimal solution (not itself a bound on goodput)."""
    mean_relative_quality: float
    """Mean relative quality (%) over the requests the solution serves."""
    slo_violation_ratio: float
    level_share: dict[str, float]
    solve_s: float
    windows: int
    variables: int

    def as_dict(self) -> dict:
        return {
            "quality_goodput_rps": round(self.quality_goodput_rps, 4),
            "goodput_rps": round(self.goodput_rps, 4),
            "mean_relative_quality": round(self.mean_relative_quality, 3),
            "slo_violation_ratio": round(self.slo_violation_ratio, 4),
            "level_share": {k: round(v, 4) for k, v in self.level_share.items()},
            "oracle": {"solve_s": round(self.solve_s, 3), "windows": self.windows,
                       "variables": self.variables},
        }


def per_image_time(table: LevelTable, slo_s: float) -> np.ndarray:
    """Smallest seconds per image over batches whose service time fits in the SLO (inf if none)."""
    out = np.full(len(table), np.inf)
    for level, times in enumerate(table.service_s):
        fitting = [t / b for b, t in enumerate(times, start=1) if t <= slo_s]
        if fitting:
            out[level] = min(fitting)
    return out


def useful_pairs(quality: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(request, level) pairs where the level beats every faster level's quality for that
    request; slower-and-no-better levels are dominated when capacity is pooled."""
    order = np.argsort(tau, kind="stable")
    order = order[np.isfinite(tau[order])]
    ranked = quality[:, order]
    best_faster = np.maximum.accumulate(
        np.concatenate([np.full((len(quality), 1), -np.inf), ranked[:, :-1]], axis=1), axis=1
    )
    rows, cols = np.nonzero(ranked > best_faster)
    return rows, order[cols]


def oracle_bound(
    arrival_s: np.ndarray, quality: np.ndarray, table: LevelTable, num_workers: int,
    duration_s: float,
) -> OracleBound:
    """`quality[i, l]`: true relative quality of request i at level l (from the simulator)."""
    started = time.perf_counter()
    count = len(arrival_s)
    slo = table.slo_s
    tau = per_image_time(table, slo)
    window = np.floor(np.asarray(arrival_s) / slo).astype(int)
    num_windows = int(window.max()) + 2 if count else 1
    req, lev = useful_pairs(np.asarray(quality, float), tau)
    # Each useful pair twice: served in the arrival window (shift 0) or the next (shift 1).
    req2 = np.concatenate([req, req])
    lev2 = np.concatenate([lev, lev])
    win2 = np.concatenate([window[req], window[req] + 1])
    size = len(req2)
    once = coo_array((np.ones(size), (req2, np.arange(size))), shape=(count, size))
    work = coo_array((tau[lev2], (win2, np.arange(size))), shape=(num_windows, size))
    result = linprog(
        -quality[req2, lev2],
        A_ub=vstack([once, work]).tocsr(),
        b_ub=np.concatenate([np.ones(count), np.full(num_windows, num_workers * slo)]),
        bounds=(0, None),
        method="highs",
    )
    if result.x is None:
        raise RuntimeError(f"oracle LP failed: {result.message}")
    x = result.x
    served = float(x.sum())
    weighted = float(-result.fun)
    per_level = np.bincount(lev2, weights=x, minlength=len(table))
    return OracleBound(
        quality_goodput_rps=weighted / duration_s,
        goodput_rps=served / duration_s,
        mean_relative_quality=100 * weighted / served if served > 0 else 0.0,
        slo_violation_ratio=1 - served / count if count else 0.0,
        level_share={n: float(v / served) if served > 0 else 0.0
                     for n, v in zip(table.names, per_level, strict=True)},
        solve_s=time.perf_counter() - started,
        windows=num_windows,
        variables=size,
    )


def true_quality(sim: Simulator) -> np.ndarray:
    """(requests, levels) true relative quality of every request of a simulation at every level."""
    model = sim.quality_model
    count = len(sim.trace)
    return np.stack([
        model.of(np.full(count, level), sim.prompt_id, sim.difficulty, sim.similarity)
        for level in range(len(sim.plane.table))
    ], axis=1)


def oracle_for(sim: Simulator, duration_s: float) -> OracleBound:
    """The bound for the arrivals and prompts a simulator replays."""
    return oracle_bound(
        sim.trace.arrival_s, true_quality(sim), sim.plane.table, sim.plane.num_workers, duration_s
    )
