"""Offline evaluation of edge/cloud routing on a profile that measured both tiers per prompt.

The profile's per-prompt `metrics` at the edge level and the cloud level give each prompt's true
PRS. Prompts are split (seeded) into a training part, on which the predictor is fit and α
calibrated, and a held-out part, which is routed in order by the budgeted router. Quality is the
PRS-weighted mean metric; ΔP = (Q_routed − Q_edge) / (Q_cloud − Q_edge), the share of the
cloud-only gain recovered (random routing at share s recovers s in expectation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from argus.control.profile import Profile
from argus.routing.metrics import SHAPES_METRIC_NAMES
from argus.routing.predictor import PromptPredictor, PRSPredictor
from argus.routing.prs import normalised_weights, prs
from argus.routing.router import (
    PRS_ALPHA_CAP,
    BudgetedRouter,
    RoutingPolicy,
    ThresholdPolicy,
    calibrate_threshold,
    prompt_length_policy,
    prs_policy,
)

# A metric a prompt does not ask for (e.g. a relation for one object) counts as met at both tiers.
MISSING_METRIC_VALUE = 1.0
RANDOM_DRAWS = 500
REDUCTION_TARGETS = (0.4, 0.5, 0.6)
CURVE_BUDGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


@dataclass(frozen=True)
class TierData:
    """Per-prompt metric matrices of the two tiers, read from a profile."""

    prompts: list[str]
    metric_names: list[str]
    q_edge: np.ndarray
    q_cloud: np.ndarray
    edge_level: str
    cloud_level: str
    scores: np.ndarray | None = None
    """(prompts, 2) absolute scorer value at (edge, cloud), when the profile has it."""

    def subset(self, idx: np.ndarray) -> TierData:
        return TierData([self.prompts[i] for i in idx], self.metric_names, self.q_edge[idx],
                        self.q_cloud[idx], self.edge_level, self.cloud_level,
                        None if self.scores is None else self.scores[idx])


def merge_profiles(profiles: Sequence[Profile]) -> Profile:
    """One profile from several `argus profile` runs of the same prompts (e.g. the cloud level
    and the edge level measured separately): levels and variants united, per-prompt tables
    joined on the prompt text (prompts missing from any run are dropped). The first profile's
    full level and metadata are kept."""
    if len(profiles) == 1:
        return profiles[0]
    first = profiles[0]
    levels = {lv.name: lv for p in profiles for lv in p.levels}
    variants = {v.name: v for p in profiles for v in p.variants}
    rows: dict[str, dict] = {}
    seen: dict[str, set[int]] = {}
    for index, profile in enumerate(profiles):
        for row in profile.prompts:
            merged = rows.setdefault(row.prompt, {"prompt": row.prompt})
            seen.setdefault(row.prompt, set()).add(index)
            for field in ("quality", "score", "metrics"):
                value = getattr(row, field)
                if value is not None:
                    merged.setdefault(field, {}).update(value)
    prompts = [r for text, r in rows.items() if len(seen[text]) == len(profiles)]
    names = " + ".join(p.name for p in profiles)
    return Profile.model_validate({
        **first.model_dump(exclude={"levels", "variants", "prompts", "name"}),
        "name": names, "levels": list(levels.values()), "variants": list(variants.values()),
        "prompts": prompts,
    })


def default_levels(profile: Profile) -> tuple[str, str]:
    """(edge, cloud): the full level is the cloud; the edge is the fastest other variant's
    best level (most steps, no cache skip)."""
    cloud = profile.level(profile.full_level)
    best: dict[str, object] = {}
    for lv in profile.levels:
        if lv.variant == cloud.variant or lv.cache_k != 0:
            continue
        current = best.get(lv.variant)
        if current is None or lv.steps > current.steps:  # type: ignore[attr-defined]
            best[lv.variant] = lv
    if not best:
        raise ValueError(f"profile {profile.name!r} has no level of a variant other than "
                         f"{cloud.variant!r} to serve as the edge; pass --edge-level")
    edge = min(best.values(), key=lambda lv: lv.service_time(1))  # type: ignore[attr-defined]
    return edge.name, cloud.name  # type: ignore[attr-defined]


def tier_data(profile: Profile, edge_level: str | None = None, cloud_level: str | None = None,
              metrics: Sequence[str] | None = None) -> TierData:
    """The two tiers' metric matrices; `metrics` picks the names (default: the shapes vector
    when the profile has it, e.g. without the aggregate `requirements`, else every name)."""
    if edge_level is None or cloud_level is None:
        default_edge, default_cloud = default_levels(profile)
        edge_level, cloud_level = edge_level or default_edge, cloud_level or default_cloud
    known = [lv.name for lv in profile.levels]
    for name in (edge_level, cloud_level):
        if name not in known:
            raise ValueError(f"profile {profile.name!r} has no level {name!r}; levels: {known}")
    rows = [p for p in profile.prompts
            if p.metrics and edge_level in p.metrics and cloud_level in p.metrics]
    if len(rows) < 10:
        raise ValueError(
            f"profile {profile.name!r}: only {len(rows)} prompts carry per-metric values for "
            f"both {edge_level!r} and {cloud_level!r}; routing needs at least 10"
        )
    found = sorted({m for p in rows for lv in (edge_level, cloud_level) for m in p.metrics[lv]})
    if metrics is None:
        metrics = SHAPES_METRIC_NAMES if set(SHAPES_METRIC_NAMES) <= set(found) else found
    unknown = sorted(set(metrics) - set(found))
    if unknown:
        raise ValueError(f"profile {profile.name!r} has no metric {unknown}; it has {found}")
    names = list(metrics)

    def matrix(level: str) -> np.ndarray:
        return np.array([[p.metrics[level].get(m, MISSING_METRIC_VALUE) for m in names]
                         for p in rows])

    scores = None
    if all(p.score and edge_level in p.score and cloud_level in p.score for p in rows):
        scores = np.array([[p.score[edge_level], p.score[cloud_level]] for p in rows])
    return TierData([p.prompt for p in rows], names, matrix(edge_level), matrix(cloud_level),
                    edge_level, cloud_level, scores)


def split(n: int, held_out: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * held_out))
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def delta_p(quality: np.ndarray, q_edge: np.ndarray, q_cloud: np.ndarray) -> float:
    gain = float(q_cloud.mean() - q_edge.mean())
    if gain <= 0:
        raise ValueError(f"the cloud level is not better than the edge on average (gain {gain:.4f})"
                         "; ΔP is undefined")
    return float((quality.mean() - q_edge.mean()) / gain)


def routed_quality(to_cloud: np.ndarray, q_edge: np.ndarray, q_cloud: np.ndarray) -> np.ndarray:
    return np.where(to_cloud, q_cloud, q_edge)


def route_in_order(policy: RoutingPolicy, prompts: Sequence[str], budget: float,
                   window_requests: int) -> np.ndarray:
    router = BudgetedRouter(policy, budget, window_requests)
    return np.array([router.route(p).tier == "cloud" for p in prompts])


def random_delta_p(share_calls: int, q_edge: np.ndarray, q_cloud: np.ndarray, seed: int) -> float:
    """Mean ΔP of random routing sending exactly `share_calls` prompts to the cloud."""
    rng = np.random.default_rng(seed)
    n, values = len(q_edge), []
    for _ in range(RANDOM_DRAWS):
        mask = np.zeros(n, bool)
        mask[rng.choice(n, size=share_calls, replace=False)] = True
        values.append(delta_p(routed_quality(mask, q_edge, q_cloud), q_edge, q_cloud))
    return float(np.mean(values))


def share_to_reach(
    order: np.ndarray, target: float, q_edge: np.ndarray, q_cloud: np.ndarray
) -> float | None:
    """Smallest cloud share reaching ΔP ≥ target when prompts go to the cloud in `order`."""
    gain = q_cloud.mean() - q_edge.mean()
    cumulative = np.cumsum((q_cloud - q_edge)[order]) / len(order) / gain
    reached = np.nonzero(cumulative >= target - 1e-12)[0]
    return None if reached.size == 0 else float((reached[0] + 1) / len(order))


PREDICTORS = ("ridge", "token-moe")


def make_predictor(model: str, metric_names: list[str], weights: dict[str, float] | None,
                   gamma: float) -> PromptPredictor:
    if model == "ridge":
        return PRSPredictor(metric_names, weights, gamma)
    if model == "token-moe":
        from argus.routing.token_moe import TokenMoEPredictor

        return TokenMoEPredictor(metric_names, weights, gamma)
    raise ValueError(f"unknown predictor {model!r}; choose one of {PREDICTORS}")


class _Fold(NamedTuple):
    test_idx: np.ndarray
    prompts: list[str]
    prs: ThresholdPolicy
    length: ThresholdPolicy


def splits(
    n: int, folds: int, held_out: float, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """K-fold (every prompt held out once) when folds > 1, else one seeded split."""
    if folds <= 1:
        return [split(n, held_out, seed)]
    if folds > n:
        raise ValueError(f"{folds} folds for {n} prompts")
    order = np.random.default_rng(seed).permutation(n)
    parts = np.array_split(order, folds)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1 :])), np.sort(part))
            for i, part in enumerate(parts)]


def evaluate(
    data: TierData,
    budget: float,
    weights: dict[str, float] | None = None,
    gamma: float = 1.0,
    held_out: float = 0.3,
    seed: int = 0,
    window_requests: int = 100,
    model: str = "ridge",
    folds: int = 5,
) -> tuple[dict, PromptPredictor]:
    """Route held-out prompts with a predictor trained on the others; ΔP and cloud calls are
    pooled over all held-out prompts. Returns (report, predictor trained on every prompt)."""
    n = len(data.prompts)
    held = np.zeros(n, bool)
    predicted = np.zeros(n)
    fold_policies: list[_Fold] = []
    for train_idx, test_idx in splits(n, folds, held_out, seed):
        train, test = data.subset(train_idx), data.subset(test_idx)
        predictor = make_predictor(model, data.metric_names, weights, gamma).fit(
            train.prompts, train.q_edge, train.q_cloud)
        held[test_idx] = True
        predicted[test_idx] = predictor.predict(test.prompts).prs
        fold_policies.append(_Fold(test_idx, test.prompts,
                                   prs_policy(predictor.predict_prs, predictor.calibration_prs),
                                   prompt_length_policy(train.prompts)))

    def route_folds(budget: float, by_length: bool = False) -> np.ndarray:
        decided = np.zeros(n, bool)
        for fold in fold_policies:
            # A fold shorter than the window is one window: its share stays within the budget.
            window = min(window_requests, len(fold.test_idx))
            policy = fold.length if by_length else fold.prs
            decided[fold.test_idx] = route_in_order(policy, fold.prompts, budget, window)
        return decided[held]

    final = make_predictor(model, data.metric_names, weights, gamma).fit(
        data.prompts, data.q_edge, data.q_cloud)
    test = data.subset(np.nonzero(held)[0])
    to_cloud, length_cloud = route_folds(budget), route_folds(budget, by_length=True)
    predicted = predicted[held]
    alphas = [fold.prs.threshold(budget) for fold in fold_policies]

    w = normalised_weights(data.metric_names, weights)
    q_e, q_c = test.q_edge @ w, test.q_cloud @ w
    calls = int(to_cloud.sum())
    result: dict = {
        "delta_p": delta_p(routed_quality(to_cloud, q_e, q_c), q_e, q_c),
        "delta_p_random": random_delta_p(calls, q_e, q_c, seed),
        "cloud_share": calls / len(test.prompts),
    }
    order = np.argsort(predicted, kind="stable")
    needed = share_to_reach(order, result["delta_p_random"], q_e, q_c)
    result["cloud_call_reduction"] = (
        None if needed is None or calls == 0 else 1.0 - needed / result["cloud_share"]
    )
    # The true PRS on the scale of the whole set (each fold's own scale differs only slightly).
    true_prs = prs(test.q_edge, test.q_cloud, w, gamma, final.mean_gap)
    oracle = true_prs < calibrate_threshold(true_prs, budget, PRS_ALPHA_CAP)
    result["details"] = {
        "edge_level": data.edge_level,
        "cloud_level": data.cloud_level,
        "metrics": data.metric_names,
        "budget": budget,
        "alpha": float(np.mean(alphas)),
        "folds": max(folds, 1),
        "prompts": n,
        "held_out_prompts": len(test.prompts),
        "quality_edge": float(q_e.mean()),
        "quality_cloud": float(q_c.mean()),
        "cloud_wins_share": float((true_prs < 0.5).mean()),
        "prs_correlation": float(np.corrcoef(predicted, true_prs)[0, 1]),
        "predictor": final.describe(),
        "baselines": {
            "all_edge": 0.0,
            "all_cloud": 1.0,
            "prompt_length": delta_p(routed_quality(length_cloud, q_e, q_c), q_e, q_c),
            "prompt_length_share": float(length_cloud.mean()),
            "oracle_prs": delta_p(routed_quality(oracle, q_e, q_c), q_e, q_c),
            "oracle_prs_share": float(oracle.mean()),
        },
        "cloud_call_reduction_at_delta_p": {
            f"{target:.2f}": _reduction(share_to_reach(order, target, q_e, q_c), target)
            for target in REDUCTION_TARGETS
        },
        "key_tokens": [(t.token, round(t.effect, 4))
                       for t in final.key_tokens(data.prompts, 8)],
    }
    result["details"]["budget_curve"] = [
        {"budget": b, "cloud_share": float(c.mean()),
         "delta_p": delta_p(routed_quality(c, q_e, q_c), q_e, q_c)}
        for b in CURVE_BUDGETS for c in [route_folds(b)]
    ]
    if test.scores is not None:
        s_e, s_c = test.scores[:, 0], test.scores[:, 1]
        result["details"]["score"] = {
            "edge": float(s_e.mean()), "cloud": float(s_c.mean()),
            "routed": float(routed_quality(to_cloud, s_e, s_c).mean()),
        }
    return result, final


def _reduction(needed_share: float | None, random_share: float) -> float | None:
    """Cloud calls saved vs random routing, which needs share = target ΔP in expectation."""
    return None if needed_share is None else 1.0 - needed_share / random_share
