"""Pareto relative superiority (RouteT2I): how much better the edge image is than the cloud one.

Per metric i, D_i = σ((q_e,i − q_c,i) / (Γ·|μ_e,i − μ_c,i|)) compares the two tiers' scores on
the scale of the typical (mean) gap of that metric, so a metric whose tiers rarely differ does
not drown the others. PRS = Σ w_i D_i with Σ w_i = 1: above 0.5 the edge wins, below the cloud.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# A mean gap below this is treated as "no typical gap": the metric then acts as a sharp switch.
MIN_MEAN_GAP = 1e-6


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def normalised_weights(names: Sequence[str], weights: Mapping[str, float] | None) -> np.ndarray:
    """Weights in `names` order summing to 1 (None: equal weights); unknown names are an error."""
    if weights is None:
        return np.full(len(names), 1.0 / len(names))
    unknown = set(weights) - set(names)
    if unknown:
        raise ValueError(f"weights for unknown metrics {sorted(unknown)}; metrics are {names}")
    w = np.array([float(weights.get(n, 0.0)) for n in names])
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"metric weights must be >= 0 with a positive sum, got {dict(weights)}")
    return w / w.sum()


def metric_dominance(
    q_edge: np.ndarray, q_cloud: np.ndarray, mean_gap: np.ndarray, gamma: float
) -> np.ndarray:
    """D_i per prompt and metric: arrays (prompts, metrics), mean_gap (metrics,)."""
    if gamma <= 0:
        raise ValueError(f"temperature gamma must be > 0, got {gamma}")
    scale = gamma * np.maximum(np.abs(np.asarray(mean_gap, dtype=np.float64)), MIN_MEAN_GAP)
    return sigmoid((np.asarray(q_edge) - np.asarray(q_cloud)) / scale)


def prs(
    q_edge: np.ndarray,
    q_cloud: np.ndarray,
    weights: np.ndarray | None = None,
    gamma: float = 1.0,
    mean_gap: np.ndarray | None = None,
) -> np.ndarray:
    """PRS per prompt from metric matrices (prompts, metrics) of both tiers.

    `mean_gap` is μ_e − μ_c per metric; by default the means over the given prompts (pass the
    training set's gap when scoring new prompts so both use the same scale).
    """
    q_edge = np.atleast_2d(np.asarray(q_edge, dtype=np.float64))
    q_cloud = np.atleast_2d(np.asarray(q_cloud, dtype=np.float64))
    if q_edge.shape != q_cloud.shape:
        raise ValueError(f"edge metrics {q_edge.shape} and cloud metrics {q_cloud.shape} differ")
    n_metrics = q_edge.shape[1]
    if mean_gap is None:
        mean_gap = q_edge.mean(axis=0) - q_cloud.mean(axis=0)
    if weights is None:
        weights = np.full(n_metrics, 1.0 / n_metrics)
    return metric_dominance(q_edge, q_cloud, mean_gap, gamma) @ np.asarray(weights)
