"""The distribution aligner (Argus ODA): which share of each optimal-level class goes where.

Levels are walked in approximation order (position 0 = least approximate). Starting from the most
approximate level down to the second:
- more prompts sit at a level than its capacity share: the excess moves one step *down* (less
  approximation, no quality loss), carrying its origins with it;
- spare capacity: prompts are *pulled up* from less approximate levels: the nearest levels first
  (the paper's ODA), or, given a quality matrix, the prompts that lose the least quality first.
The least approximate level keeps whatever is left. The result `P[c, l]` is the probability that a
prompt whose optimal level is c is served at level l; each row with demand sums to 1 (rows without
demand route to their own level).
"""

from __future__ import annotations

import numpy as np


def align(
    demand_share: np.ndarray,
    capacity_share: np.ndarray,
    order: list[int],
    quality: np.ndarray | None = None,
    min_quality: float = 0.0,
) -> np.ndarray:
    """`demand_share[c]` = share of prompts whose optimal level is c, `capacity_share[l]` = share
    of the load the plan gives level l (both indexed by level position); `order`: level positions
    from least to most approximate. With `quality[c, l]` (predicted quality of class c at level
    l), spare capacity pulls the prompts that lose the least quality, and never ones that would
    fall below `min_quality`; without it, the nearest less approximate levels first (Argus ODA).
    """
    num = len(demand_share)
    idx = np.asarray(order)
    h = np.asarray(demand_share, float)[idx]
    f = np.asarray(capacity_share, float)[idx]
    q = None if quality is None else np.asarray(quality, float)[np.ix_(idx, idx)]
    # mass[o, k]: share of prompts of origin rank o currently placed at rank k.
    mass = np.diag(h)
    for k in range(num - 1, 0, -1):
        here = mass[:, k].sum()
        if here > f[k] + 1e-12:
            moved = mass[:, k] * (here - f[k]) / here
            mass[:, k] -= moved
            mass[:, k - 1] += moved
        else:
            _pull(mass, k, f[k] - here, q, min_quality)
    ranked = np.zeros((num, num))
    has = h > 0
    ranked[has] = mass[has] / h[has, None]
    ranked[~has, np.flatnonzero(~has)] = 1.0
    result = np.zeros((num, num))
    result[np.ix_(idx, idx)] = ranked
    return result


def _pull(mass: np.ndarray, k: int, spare: float, q: np.ndarray | None, min_q: float) -> None:
    """Move up to `spare` of prompt mass from less approximate ranks (< k) to rank k."""
    if q is None:
        # Nearest ranks first; every origin at a rank moves in proportion.
        for j in range(k - 1, -1, -1):
            if spare <= 1e-12:
                return
            avail = mass[:, j].sum()
            if avail <= 0:
                continue
            take = min(spare, avail)
            moved = mass[:, j] * (take / avail)
            mass[:, j] -= moved
            mass[:, k] += moved
            spare -= take
        return
    origins, ranks = np.nonzero(mass[:, :k] > 1e-15)
    loss = q[origins, ranks] - q[origins, k]
    for i in np.argsort(loss, kind="stable"):
        if spare <= 1e-12:
            return
        o, j = origins[i], ranks[i]
        if q[o, k] < min_q:
            continue
        take = min(spare, mass[o, j])
        mass[o, j] -= take
        mass[o, k] += take
        spare -= take


def routing_from_flows(flow: np.ndarray) -> np.ndarray | None:
    """The routing matrix the MILP planned: row c = class c's planned flow per level, normalised.
    A class with no planned flow (all of it unserved, or no demand) stays at its own level;
    None when nothing is planned at all (the caller falls back to `align`)."""
    flow = np.clip(np.asarray(flow, float), 0.0, None)
    totals = flow.sum(axis=1)
    if totals.sum() <= 0:
        return None
    routing = np.eye(flow.shape[1])
    planned = totals > 1e-12
    routing[planned] = flow[planned] / totals[planned, None]
    return routing
