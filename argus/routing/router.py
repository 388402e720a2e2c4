"""Budgeted edge/cloud router (RouteT2I) and the baselines it is compared with.

A policy scores each prompt (lower = more worth sending to the cloud) and proposes the cloud below
a threshold calibrated so that the expected cloud share stays within the budget ρ. The
`BudgetedRouter` then enforces the budget as a hard guarantee over a sliding window: among any
`window_requests` consecutive decisions of one tenant at most ⌊ρ·window_requests⌋ go to the cloud.
"""

from __future__ import annotations

import math
import random
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

Tier = Literal["edge", "cloud"]

# RouteT2I caps α at 1/2: a prompt the edge is predicted to win (PRS > 0.5) never goes to the cloud.
PRS_ALPHA_CAP = 0.5


@dataclass(frozen=True, slots=True)
class RouteDecision:
    tier: Tier
    reason: str
    prs: float | None = None
    """The policy's score (predicted PRS for the RouteT2I policy)."""
    alpha: float | None = None
    """The threshold the score was compared with."""
    cause: str = "policy"
    """Why, as a metric label: policy, budget (window spent), local-only, cloud-failed."""

    def metadata(self) -> dict[str, float | str | None]:
        """The `argus.route` object of a response."""
        return {"prs": self.prs, "alpha": self.alpha, "reason": self.reason}


def calibrate_threshold(scores: Sequence[float], budget: float, cap: float | None) -> float:
    """Largest threshold t (≤ cap) with share(score < t) ≤ budget over the calibration scores."""
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"budget must be in [0, 1], got {budget}")
    s = np.sort(np.asarray(scores, dtype=np.float64))
    if s.size == 0:
        raise ValueError("cannot calibrate a routing threshold without calibration scores")
    allowed = math.floor(budget * s.size + 1e-9)
    threshold = math.inf if allowed >= s.size else float(s[allowed])
    return threshold if cap is None else min(cap, threshold)


class RoutingPolicy(Protocol):
    name: str

    def propose(self, prompt: str, budget: float) -> RouteDecision: ...


class ThresholdPolicy:
    """Cloud when score(prompt) < threshold(budget); thresholds calibrated on held-in prompts."""

    def __init__(
        self,
        name: str,
        score_fn: Callable[[str], float],
        calibration_scores: Sequence[float],
        cap: float | None,
    ) -> None:
        self.name = name
        self._score = score_fn
        self._calibration = np.asarray(calibration_scores, dtype=np.float64)
        self._cap = cap
        self._thresholds: dict[float, float] = {}

    def threshold(self, budget: float) -> float:
        if budget not in self._thresholds:
            self._thresholds[budget] = calibrate_threshold(self._calibration, budget, self._cap)
        return self._thresholds[budget]

    def propose(self, prompt: str, budget: float) -> RouteDecision:
        score, alpha = float(self._score(prompt)), self.threshold(budget)
        if score < alpha:
            return RouteDecision("cloud", f"{self.name}: score below threshold", score, alpha)
        return RouteDecision("edge", f"{self.name}: score at or above threshold", score, alpha)


def prs_policy(
    predict_prs: Callable[[str], float], calibration_prs: Sequence[float]
) -> ThresholdPolicy:
    """RouteT2I: cloud when predicted PRS < α, α ≤ 1/2 the largest within the budget."""
    return ThresholdPolicy("prs", predict_prs, calibration_prs, PRS_ALPHA_CAP)


def prompt_length_policy(calibration_prompts: Sequence[str]) -> ThresholdPolicy:
    """Baseline: the longest prompts (most words) go to the cloud."""

    def negative_length(prompt: str) -> float:
        return -float(len(prompt.split()))

    scores = [negative_length(p) for p in calibration_prompts]
    return ThresholdPolicy("prompt-length", negative_length, scores, None)


class RandomPolicy:
    """Baseline: the cloud with probability = budget (seeded)."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self._rng = random.Random(seed)

    def propose(self, prompt: str, budget: float) -> RouteDecision:
        tier: Tier = "cloud" if self._rng.random() < budget else "edge"
        return RouteDecision(tier, "random", None, budget)


class FixedPolicy:
    """Baselines all-edge and all-cloud (all-cloud still obeys the router's budget)."""

    def __init__(self, tier: Tier) -> None:
        self.name = f"all-{tier}"
        self._tier: Tier = tier

    def propose(self, prompt: str, budget: float) -> RouteDecision:
        return RouteDecision(self._tier, self.name)


class BudgetedRouter:
    """Applies a policy under a per-tenant cloud budget that holds over a sliding window."""

    def __init__(
        self,
        policy: RoutingPolicy,
        budget: float,
        window_requests: int,
        tenant_budgets: Mapping[str, float] | None = None,
    ) -> None:
        for name, value in {"budget": budget, **(tenant_budgets or {})}.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"routing budget {name!r} must be in [0, 1], got {value}")
        if window_requests < 1:
            raise ValueError(f"window_requests must be >= 1, got {window_requests}")
        self.policy = policy
        self.budget = budget
        self.window_requests = window_requests
        self.tenant_budgets = dict(tenant_budgets or {})
        self._windows: dict[str, deque[bool]] = {}
        self._lock = threading.Lock()

    def cap_for(self, tenant: str, override: float | None = None) -> float:
        if override is not None:
            if not 0.0 <= override <= 1.0:
                raise ValueError(f"routing budget override must be in [0, 1], got {override}")
            return override
        return self.tenant_budgets.get(tenant, self.budget)

    def route(
        self, prompt: str, tenant: str = "default", budget: float | None = None
    ) -> RouteDecision:
        """Decide one request's tier and record it in the tenant's window."""
        cap = self.cap_for(tenant, budget)
        proposal = self.policy.propose(prompt, cap)
        with self._lock:
            window = self._windows.setdefault(tenant, deque(maxlen=self.window_requests))
            decision = proposal
            if proposal.tier == "cloud" and not self._cloud_allowed(window, cap):
                decision = RouteDecision(
                    "edge", "cloud budget of the window spent", proposal.prs, proposal.alpha,
                    "budget",
                )
            window.append(decision.tier == "cloud")
        return decision

    def _cloud_allowed(self, window: deque[bool], cap: float) -> bool:
        # The new decision closes a window with the last N-1 ones: that window must stay in budget.
        recent = list(window)[-(self.window_requests - 1) :] if self.window_requests > 1 else []
        return sum(recent) + 1 <= math.floor(cap * self.window_requests + 1e-9)

    def cloud_share(self, tenant: str = "default") -> float:
        window = self._windows.get(tenant)
        return sum(window) / len(window) if window else 0.0
