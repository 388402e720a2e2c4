"""Budgeted router: α calibration, the window budget as a hard guarantee, and the baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argus.routing.router import (
    BudgetedRouter,
    FixedPolicy,
    RandomPolicy,
    calibrate_threshold,
    prompt_length_policy,
    prs_policy,
)


def test_alpha_is_the_largest_threshold_within_the_budget() -> None:
    scores = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]
    assert calibrate_threshold(scores, 0.25, cap=0.5) == pytest.approx(0.3)  # 0.1, 0.2 go
    assert calibrate_threshold(scores, 0.0, cap=0.5) == pytest.approx(0.1)  # none goes
    # Past the prompts the cloud is predicted to win, α stops at 1/2.
    assert calibrate_threshold(scores, 0.75, cap=0.5) == 0.5
    assert calibrate_threshold(scores, 1.0, cap=None) == math.inf
    with pytest.raises(ValueError, match="budget"):
        calibrate_threshold(scores, 1.5, cap=0.5)


def test_prs_policy_routes_below_alpha_only() -> None:
    table = {"easy": 0.8, "hard": 0.1, "medium": 0.35}
    policy = prs_policy(table.__getitem__, calibration_prs=[0.1, 0.2, 0.3, 0.4, 0.6, 0.7])
    assert policy.propose("hard", 0.5).tier == "cloud"
    at_half = policy.propose("medium", 0.5)  # α = 4th lowest = 0.4: 3 of 6 below
    assert (at_half.tier, at_half.alpha) == ("cloud", pytest.approx(0.4))
    at_third = policy.propose("medium", 0.34)  # α = 0.3: 2 of 6 below
    assert (at_third.tier, at_third.alpha) == ("edge", pytest.approx(0.3))
    assert policy.propose("easy", 1.0).tier == "edge"  # PRS > 1/2 never goes, whatever ρ
    meta = policy.propose("hard", 0.5).metadata()
    assert set(meta) == {"prs", "alpha", "reason"} and meta["prs"] == pytest.approx(0.1)


def _assert_windows_within(decisions: list[bool], window: int, budget: float) -> None:
    limit = math.floor(budget * window + 1e-9)
    for start in range(max(1, len(decisions) - window + 1)):
        assert sum(decisions[start : start + window]) <= limit, f"window at {start} over budget"


@pytest.mark.parametrize("budget,window", [(0.5, 10), (0.3, 7), (0.0, 5), (0.25, 1)])
def test_budget_is_never_exceeded_over_any_window(budget: float, window: int) -> None:
    # The adversary: a policy that wants the cloud for every request.
    router = BudgetedRouter(FixedPolicy("cloud"), budget, window)
    decisions = [router.route(f"p{i}").tier == "cloud" for i in range(300)]
    _assert_windows_within(decisions, window, budget)
    # ...and the budget is used, not wasted.
    assert sum(decisions) >= math.floor(budget * window + 1e-9) * (300 // window)


def test_budget_holds_with_bursty_prs_and_spent_budget_is_reported() -> None:
    rng = np.random.default_rng(1)
    scores = {f"p{i}": float(s) for i, s in enumerate(np.r_[rng.uniform(0, 0.2, 150),
                                                             rng.uniform(0, 1, 150)])}
    policy = prs_policy(scores.__getitem__, rng.uniform(0, 1, 200))
    router = BudgetedRouter(policy, 0.4, 20)
    decisions = [router.route(p) for p in scores]
    _assert_windows_within([d.tier == "cloud" for d in decisions], 20, 0.4)
    spent = [d for d in decisions if d.reason == "cloud budget of the window spent"]
    assert spent and all(d.tier == "edge" and d.prs is not None for d in spent)


def test_tenant_and_request_caps_override_the_default() -> None:
    router = BudgetedRouter(FixedPolicy("cloud"), 0.5, 10, tenant_budgets={"free": 0.0})
    assert [router.route("x", tenant="free").tier for _ in range(20)] == ["edge"] * 20
    premium = [router.route("x", tenant="premium", budget=0.9).tier for _ in range(50)]
    _assert_windows_within([t == "cloud" for t in premium], 10, 0.9)
    assert premium.count("cloud") >= 40
    default = [router.route("x").tier == "cloud" for _ in range(50)]
    _assert_windows_within(default, 10, 0.5)
    with pytest.raises(ValueError, match="override"):
        router.route("x", budget=1.5)
    with pytest.raises(ValueError, match="budget"):
        BudgetedRouter(FixedPolicy("edge"), 0.5, 10, tenant_budgets={"t": -0.1})


def test_baselines() -> None:
    prompts = [f"a {'big ' * (i % 7)}circle" for i in range(400)]
    random = BudgetedRouter(RandomPolicy(seed=3), 0.5, 400)
    share = np.mean([random.route(p).tier == "cloud" for p in prompts])
    assert 0.4 < share <= 0.5
    assert BudgetedRouter(FixedPolicy("edge"), 1.0, 10).route("x").tier == "edge"
    assert BudgetedRouter(FixedPolicy("cloud"), 1.0, 10).route("x").tier == "cloud"
    length = BudgetedRouter(prompt_length_policy(prompts), 0.3, 1000)
    routed = [(len(p.split()), length.route(p).tier) for p in prompts]
    cloud_lengths = [n for n, t in routed if t == "cloud"]
    edge_lengths = [n for n, t in routed if t == "edge"]
    assert cloud_lengths and min(cloud_lengths) > max(edge_lengths)
    assert len(cloud_lengths) <= 0.3 * len(prompts)
