"""The distribution aligner (Argus ODA): which share of each optimal-level class goes where.

Levels are walked in approximation order (position 0 = least approximate). Starting from the most
approximate level down to the second:
- more prompts sit at a level than its capacity share: the excess moves one step *down* (less
  approximation, no quality loss), carrying its origins with it;
- spare capacity: prompts are *pulled up* from the nearest less approximate levels first, which
  loses the least quality.
The least approximate level keeps whatever is left. The result `P[c, l]` is the probability that a
prompt whose optimal level is c is served at level l; each row with demand sums to 1 (rows without
demand route to their own level).
"""

from __future__ import annotations

import numpy as np


def align(demand_share: np.ndarray, capacity_share: np.ndarray, order: list[int]) -> np.ndarray:
    """`demand_share[c]` = share of prompts whose optimal level is c, `capacity_share[l]` = share
    of the load the plan gives level l (both indexed by level position); `order`: level positions
    from least to most approximate."""
    num = len(demand_share)
    h = np.asarray(demand_share, float)[order]
    f = np.asarray(capacity_share, float)[order]
    # mass[o, k]: share of prompts of origin rank o currently placed at rank k.
    mass = np.diag(h)
    for k in range(num - 1, 0, -1):
        here = mass[:, k].sum()
        if here > f[k] + 1e-12:
            moved = mass[:, k] * (here - f[k]) / here
            mass[:, k] -= moved
            mass[:, k - 1] += moved
            continue
        spare = f[k] - here
        for j in range(k - 1, -1, -1):
            if spare <= 1e-12:
                break
            avail = mass[:, j].sum()
            if avail <= 0:
                continue
            take = min(spare, avail)
            moved = mass[:, j] * (take / avail)
            mass[:, j] -= moved
            mass[:, k] += moved
            spare -= take
    ranked = np.zeros((num, num))
    has = h > 0
    ranked[has] = mass[has] / h[has, None]
    ranked[~has, np.flatnonzero(~has)] = 1.0
    result = np.zeros((num, num))
    idx = np.asarray(order)
    result[np.ix_(idx, idx)] = ranked
    return result
