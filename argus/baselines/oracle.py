"""The offline oracle: an upper bound on quality-weighted goodput for one trace.

It knows every arrival and every request's true relative quality at every level (the simulator's
quality model) and solves one LP (`scipy.optimize.linprog`, HiGHS) over the whole trace:

    maximise   sum_i sum_l q[i,l] x[i,l]               (quality-weighted requests within SLO)
    subject to sum_l x[i,l] <= 1                        (each request served at most once)
               sum_{i in w, l} tau[l] x[i,l] = now[w] + later[w]   (window w's arrivals' work
               now[w] + later[w-1] <= N * W             is done in w or w+1; worker-seconds)
               x, now, later >= 0

Windows are `W = SLO` long, so a request's service (which lies in [arrival, arrival + SLO]) falls
in its arrival window or the next: every feasible schedule is feasible here. `tau[l]` is the
smallest per-image time of any batch that fits in the SLO. It relaxes everything else: workers
are fluid across levels, model loads are free, batches are always full, and there is no
queueing. So no policy can beat it, and the gap to it is an upper bound on what is left.
Per request only the levels on its upper concave hull of (seconds per image, quality) enter the
LP (the others are beaten by mixing hull levels, which a fractional solution may do), which keeps
it at two or three variables per request.
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
    """(request, level) pairs on each request's upper concave hull of (seconds per image,
    quality), starting from (0, 0) = not served. A level under the hull is matched or beaten
    by mixing its neighbours on the hull, which the LP may do, so dropping it loses nothing."""
    order = [int(i) for i in np.argsort(tau, kind="stable") if np.isfinite(tau[i])]
    times = tau[order]
    rows: list[int] = []
    cols: list[int] = []
    for r, values in enumerate(np.asarray(quality, float)[:, order].tolist()):
        hull: list[tuple[float, float, int]] = [(0.0, 0.0, -1)]
        for t, q, level in zip(times.tolist(), values, order, strict=True):
            if q <= hull[-1][1]:
                continue  # slower and no better than a faster level
            while len(hull) >= 2:
                (t1, q1, _), (t2, q2, _) = hull[-2], hull[-1]
                # Drop the middle point if it lies on or under the chord to the new one.
                if (q2 - q1) * (t - t1) <= (q - q1) * (t2 - t1):
                    hull.pop()
                else:
                    break
            hull.append((t, q, level))
        for _, _, level in hull[1:]:
            rows.append(r)
            cols.append(level)
    return np.asarray(rows, int), np.asarray(cols, int)


def oracle_bound(
    arrival_s: np.ndarray, quality: np.ndarray, table: LevelTable, num_workers: int,
    duration_s: float,
) -> OracleBound:
    """`quality[i, l]`: true relative quality of request i at level l (from the simulator)."""
    started = time.perf_counter()
    quality = np.asarray(quality, float)
    count = len(arrival_s)
    slo = table.slo_s
    tau = per_image_time(table, slo)
    window = np.floor(np.asarray(arrival_s) / slo).astype(int)
    num_windows = int(window.max()) + 2 if count else 1
    req, lev = useful_pairs(quality, tau)
    pairs, w = len(req), num_windows
    # Variables: x (pairs) | now[w] | later[w]: the work of window w's arrivals done in w or w+1.
    size = pairs + 2 * w
    once = coo_array((np.ones(pairs), (req, np.arange(pairs))), shape=(count, size))
    capacity = coo_array(
        (np.ones(2 * w - 1),
         (np.concatenate([np.arange(w), np.arange(1, w)]),
          np.concatenate([pairs + np.arange(w), pairs + w + np.arange(w - 1)]))),
        shape=(w, size),
    )
    split = coo_array(
        (np.concatenate([tau[lev], -np.ones(2 * w)]),
         (np.concatenate([window[req], np.arange(w), np.arange(w)]),
          np.concatenate([np.arange(pairs), pairs + np.arange(2 * w)]))),
        shape=(w, size),
    )
    upper = np.full(size, np.inf)
    upper[pairs + 2 * w - 1] = 0.0  # nothing after the last window
    result = linprog(
        np.concatenate([-quality[req, lev], np.zeros(2 * w)]),
        A_ub=vstack([once, capacity]).tocsr(),
        b_ub=np.concatenate([np.ones(count), np.full(w, num_workers * slo)]),
        A_eq=split.tocsr(), b_eq=np.zeros(w),
        bounds=np.column_stack([np.zeros(size), upper]),
        method="highs-ipm",
    )
    if result.x is None:
        raise RuntimeError(f"oracle LP failed: {result.message}")
    x = result.x[:pairs]
    served = float(x.sum())
    weighted = float(-result.fun)
    per_level = np.bincount(lev, weights=x, minlength=len(table))
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
