from __future__ import annotations

import numpy as np
import pytest
from control_helpers import two_level_profile

from argus.control.builtin import a100_sdxl
from argus.control.levels import LevelTable
from argus.control.planner import UNSERVED_PENALTY, MilpPlanner, PlannerSettings


def planner_for(profile, **settings) -> MilpPlanner:
    table = LevelTable.build(profile, slo_s=100.0)
    return MilpPlanner(table, PlannerSettings(utilisation_cap=1.0, **settings))


def test_hand_computed_optimum_two_levels():
    # Throughput 1 and 2 req/s per worker, quality 1.0 and 0.9, 4 workers, 5 req/s of prompts
    # that need the full level ideally. Serving all: n_full + 2 n_fast >= 5 with n_full + n_fast
    # = 4 -> (3, 1) serves 3 at 1.0 + 2 at 0.9 = 4.8; (2, 2) gives 4.7; (4, 0) leaves 1 unserved.
    planner = planner_for(two_level_profile())
    demand = np.array([5.0, 0.0])
    quality = np.array([[1.0, 0.9], [1.0, 0.9]])
    alloc = planner.solve(demand, quality, num_workers=4)
    assert alloc.workers.tolist() == [3, 1]
    assert alloc.flow[0].tolist() == pytest.approx([3.0, 2.0], abs=1e-6)
    assert alloc.unserved.sum() == pytest.approx(0.0, abs=1e-9)
    assert alloc.objective == pytest.approx(4.8, abs=1e-3)


def test_hand_computed_optimum_under_overload():
    # 10 req/s on 2 workers: everything at the fast level serves 4, the rest is unserved.
    planner = planner_for(two_level_profile())
    alloc = planner.solve(np.array([10.0, 0.0]), np.array([[1.0, 0.9], [1.0, 0.9]]), 2)
    assert alloc.workers.tolist() == [0, 2]
    assert alloc.unserved.sum() == pytest.approx(6.0, abs=1e-6)
    assert alloc.objective == pytest.approx(4 * 0.9 - UNSERVED_PENALTY * 6, abs=1e-3)


def test_low_load_keeps_everyone_at_best_quality():
    planner = planner_for(two_level_profile())
    alloc = planner.solve(np.array([1.5, 0.0]), np.array([[1.0, 0.9], [1.0, 0.9]]), 4)
    assert alloc.flow[0, 0] == pytest.approx(1.5)
    assert alloc.workers.sum() == 4


@pytest.mark.parametrize("workers", [8, 64, 1024])
def test_serves_all_load_when_capacity_allows(workers):
    profile = a100_sdxl()
    table = LevelTable.build(profile, 21.0)
    planner = MilpPlanner(table, PlannerSettings(redirect_floor=0.8))
    rng = np.random.default_rng(workers)
    quality = np.tile(np.asarray(table.mean_quality), (len(table), 1))
    capacity_full = workers * planner.capacity[table.full]
    for _ in range(3):
        share = rng.dirichlet(np.ones(len(table)))
        demand = share * capacity_full * rng.uniform(0.3, 1.0)
        alloc = planner.solve(demand, quality, workers)
        assert alloc.workers.sum() == workers
        assert (alloc.workers >= 0).all()
        assert alloc.unserved.sum() == pytest.approx(0.0, abs=1e-6)
        assert alloc.flow.sum(axis=1) == pytest.approx(demand, rel=1e-6, abs=1e-6)
        # Capacity is respected level by level.
        assert (alloc.flow.sum(axis=0) <= alloc.workers * planner.capacity + 1e-6).all()


def test_redirect_floor_forbids_low_quality_levels():
    planner = planner_for(two_level_profile(), redirect_floor=0.95)
    alloc = planner.solve(np.array([5.0, 0.0]), np.array([[1.0, 0.9], [1.0, 0.9]]), 4)
    assert alloc.flow[0, 1] == 0.0
    assert alloc.unserved.sum() == pytest.approx(1.0, abs=1e-6)


def test_hysteresis_keeps_plan_for_small_changes_and_switches_for_big_ones():
    profile = a100_sdxl()
    table = LevelTable.build(profile, 21.0)
    planner = MilpPlanner(table, PlannerSettings(redirect_floor=0.8))
    quality = np.tile(np.asarray(table.mean_quality), (len(table), 1))
    demand = np.zeros(len(table))
    demand[table.full] = 1.0
    first, changed = planner.plan(demand, quality, 8)
    assert changed
    again, changed = planner.plan(demand * 1.01, quality, 8, current=first.workers)
    assert not changed and again.workers.tolist() == first.workers.tolist()
    # Five times the load cannot be served at the full level: the plan must move workers
    # (within SDXL, to its cache/step levels, which is free and needs no hysteresis).
    heavy, _ = planner.plan(demand * 5, quality, 8, current=first.workers)
    assert heavy.workers.tolist() != first.workers.tolist()
    assert heavy.unserved.sum() < 0.5 * demand.sum() * 4


def test_hysteresis_blocks_marginal_variant_switches():
    profile = a100_sdxl()
    table = LevelTable.build(profile, 21.0)
    quality = np.tile(np.asarray(table.mean_quality), (len(table), 1))
    current = np.zeros(len(table), int)
    current[table.full] = 8
    eager = MilpPlanner(table, PlannerSettings(redirect_floor=0.8, hysteresis=0.0))
    demand = np.zeros(len(table))
    demand[table.full] = 8 * eager.capacity[table.full] * 3.0
    # Three times SDXL's full-level capacity: loading SD1.5 on one worker gains about 5%.
    moved, changed = eager.plan(demand, quality, 8, current=current)
    assert changed and eager.variant_counts(moved.workers).tolist() == [7, 0, 1, 0]
    calm = MilpPlanner(table, PlannerSettings(redirect_floor=0.8, hysteresis=0.1))
    kept, changed = calm.plan(demand, quality, 8, current=current)
    assert not changed and calm.variant_counts(kept.workers).tolist() == [8, 0, 0, 0]
