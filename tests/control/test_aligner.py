from __future__ import annotations

import numpy as np
import pytest

from argus.control.aligner import align, routing_from_flows

ORDER = list(range(6))  # K = 0, 5, ..., 25 from least to most approximate


def test_paper_case_excess_moves_down_only():
    h = np.array([0.1, 0.1, 0.2, 0.2, 0.2, 0.2])
    f = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    p = align(h, f, ORDER)
    assert p.sum(axis=1) == pytest.approx(np.ones(6))
    # The paper's single-step P(5->4) = 0.5: half of the K=25 prompts leave level 5. Moved
    # prompts keep cascading down while a level is over capacity, so the matrix is end to end.
    assert 1 - p[5, 5] == pytest.approx(0.5)
    assert p[5, 4] == pytest.approx(0.5 / 3)
    # Only moves to less approximate levels (j < i), and the loads match the capacities.
    assert np.triu(p, k=1).sum() == pytest.approx(0.0)
    assert h @ p == pytest.approx(f)


def test_paper_case_spare_capacity_pulls_nearest_up():
    h = np.array([0.3, 0.3, 0.2, 0.1, 0.05, 0.05])
    f = np.array([0.1, 0.1, 0.2, 0.2, 0.2, 0.2])
    p = align(h, f, ORDER)
    assert p.sum(axis=1) == pytest.approx(np.ones(6))
    assert p[3, 5] == pytest.approx(1.0)
    assert p[2, 4] == pytest.approx(1.0)
    assert p[1, 3] == pytest.approx(2 / 3)
    assert p[0, 1] == pytest.approx(1 / 3)
    assert p[0, 2] == pytest.approx(1 / 3)
    assert np.tril(p, k=-1).sum() == pytest.approx(0.0)  # nothing moved down
    assert h @ p == pytest.approx(f)


def test_balanced_demand_is_identity():
    h = np.array([0.2, 0.3, 0.5])
    assert align(h, h, [0, 1, 2]) == pytest.approx(np.eye(3))


def test_random_rows_sum_to_one_and_loads_match_capacity():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n = int(rng.integers(2, 9))
        h = rng.dirichlet(np.ones(n)) * (rng.random(n) > 0.3)
        if h.sum() == 0:
            continue
        h /= h.sum()
        f = rng.dirichlet(np.ones(n))
        order = list(rng.permutation(n))
        p = align(h, f, order)
        assert (p >= -1e-12).all()
        assert p.sum(axis=1) == pytest.approx(np.ones(n))
        load = h @ p
        # Every level except the least approximate one gets exactly its capacity share.
        for lv in order[1:]:
            assert load[lv] == pytest.approx(f[lv], abs=1e-9)


def test_quality_aware_pull_takes_least_loss_first():
    # Level 2 has spare capacity 0.3; class 0 loses 0.2 there, class 1 only 0.05.
    h = np.array([0.3, 0.3, 0.0])
    f = np.array([0.3, 0.0, 0.3])
    quality = np.array([[1.0, 0.9, 0.8], [1.0, 1.0, 0.95], [1.0, 1.0, 1.0]])
    p = align(h, f, [0, 1, 2], quality)
    # Level 2 pulls the prompts that lose least there: class 1 (0.05) before class 0 (0.2).
    assert p[1, 2] == pytest.approx(1.0)
    assert p[0, 0] == pytest.approx(1.0)
    assert p.sum(axis=1) == pytest.approx(np.ones(3))


def test_quality_aware_pull_respects_minimum_quality():
    h = np.array([0.5, 0.0])
    f = np.array([0.0, 1.0])
    p = align(h, f, [0, 1], np.array([[1.0, 0.7], [1.0, 0.7]]), min_quality=0.8)
    assert p[0] == pytest.approx([1.0, 0.0])  # not moved below the minimum


def test_routing_from_flows_follows_the_plan():
    flow = np.array([[0.4, 0.0, 0.0], [0.2, 0.6, 0.0], [0.0, 0.0, 0.0]])
    p = routing_from_flows(flow)
    assert p is not None
    assert p[0] == pytest.approx([1.0, 0.0, 0.0])
    assert p[1] == pytest.approx([0.25, 0.75, 0.0])
    assert p[2] == pytest.approx([0.0, 0.0, 1.0])  # nothing planned: stays at its own level
    assert p.sum(axis=1) == pytest.approx(np.ones(3))
    assert routing_from_flows(np.zeros((3, 3))) is None
