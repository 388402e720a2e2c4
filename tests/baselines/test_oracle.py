"""The offline oracle: exact on hand-checkable cases, and above every policy on a trace."""

from __future__ import annotations

import numpy as np
import pytest

from argus.baselines.oracle import oracle_bound, oracle_for, per_image_time, useful_pairs
from argus.control.policy import policy_names


def test_per_image_time_uses_the_best_batch_within_the_slo(profile) -> None:  # noqa: ANN001
    from argus.control.levels import LevelTable

    table = LevelTable.build(profile, 21.0)
    tau = per_image_time(table, 21.0)
    full = table.full
    # SDXL: a batch of 5 (17.7 s, interpolated) fits 21 s, a batch of 6 (21.05 s) does not.
    assert table.service_s[full][4] <= 21.0 < table.service_s[full][5]
    assert tau[full] == pytest.approx(table.service_s[full][4] / 5)
    assert np.isinf(per_image_time(table, 1.0)[full])


def test_only_hull_levels_enter_the_lp() -> None:
    quality = np.array([[1.0, 0.9, 0.95], [1.0, 0.9, 0.8], [1.0, 0.9, 0.92]])
    tau = np.array([4.0, 1.0, 2.0])
    rows, cols = useful_pairs(quality, tau)
    pairs = set(zip(rows.tolist(), cols.tolist(), strict=True))
    # Request 1's level 2 is slower than level 1 and worse; request 2's level 2 lies under the
    # chord from level 1 to level 0 (mixing them is better): both dropped.
    assert pairs == {(0, 1), (0, 2), (0, 0), (1, 1), (1, 0), (2, 1), (2, 0)}


def test_oracle_is_exact_on_a_fluid_case(profile) -> None:  # noqa: ANN001
    from argus.control.levels import LevelTable

    table = LevelTable.build(profile, 21.0)
    tau = per_image_time(table, 21.0)
    num = len(table)
    # 100 arrivals at t=0, quality 1 at the full level only (others worthless).
    quality = np.zeros((100, num))
    quality[:, table.full] = 1.0
    bound = oracle_bound(np.zeros(100), quality, table, num_workers=2, duration_s=21.0)
    # Two windows (arrival and next) of 2 workers x 21 s each.
    expected = min(100, 2 * 2 * 21.0 / tau[table.full])
    assert bound.quality_goodput_rps * 21.0 == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("load", [0.5, 2.0])
def test_oracle_bounds_every_policy(simulate, capacity, load) -> None:  # noqa: ANN001
    rate = load * capacity
    argus = simulate("argus", rate)
    bound = oracle_for(argus.sim, argus.duration_s)
    for name in policy_names():
        run = simulate(name, rate)
        assert run.quality_goodput() <= bound.quality_goodput_rps + 1e-9, name
    assert 0.0 <= bound.slo_violation_ratio <= 1.0
