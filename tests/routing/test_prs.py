"""PRS math on hand-made vectors (RouteT2I's Pareto relative superiority)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argus.routing.prs import normalised_weights, prs


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_hand_computed_value() -> None:
    # D1 = σ((0.8-0.6)/(2·0.1)) = σ(1), D2 = σ((0.5-0.7)/(2·0.05)) = σ(-2); weights 3:1.
    value = prs([[0.8, 0.5]], [[0.6, 0.7]], np.array([0.75, 0.25]), gamma=2.0,
                mean_gap=np.array([0.1, -0.05]))
    assert value[0] == pytest.approx(0.75 * _sigmoid(1.0) + 0.25 * _sigmoid(-2.0), abs=1e-12)


def test_equal_images_are_a_tie_and_domination_decides_the_side() -> None:
    q = np.array([[0.3, 0.9, 0.5]])
    gap = np.array([0.1, 0.1, 0.1])
    assert prs(q, q, mean_gap=gap)[0] == pytest.approx(0.5)
    assert prs(q + 0.05, q, mean_gap=gap)[0] > 0.5  # edge better on every metric
    assert prs(q - 0.05, q, mean_gap=gap)[0] < 0.5  # cloud better: route to the cloud


def test_temperature_scales_and_mean_gap_defaults_to_the_data() -> None:
    q_edge = np.array([[0.2, 0.4], [0.6, 0.6]])
    q_cloud = np.array([[0.5, 0.5], [0.7, 0.9]])
    # Default mean gap: μ_e − μ_c = (-0.2, -0.2).
    expected = [0.5 * _sigmoid(-0.3 / 0.2) + 0.5 * _sigmoid(-0.1 / 0.2),
                0.5 * _sigmoid(-0.1 / 0.2) + 0.5 * _sigmoid(-0.3 / 0.2)]
    assert prs(q_edge, q_cloud) == pytest.approx(expected, abs=1e-12)
    hot = prs(q_edge, q_cloud, gamma=10.0)
    assert np.all(np.abs(hot - 0.5) < np.abs(np.array(expected) - 0.5))


def test_a_metric_without_typical_gap_is_a_sharp_switch() -> None:
    value = prs([[0.51]], [[0.50]], mean_gap=np.array([0.0]))
    assert value[0] == pytest.approx(1.0)


def test_weights_are_normalised_and_validated() -> None:
    names = ["detail", "color", "layout"]
    assert normalised_weights(names, None) == pytest.approx([1 / 3] * 3)
    assert normalised_weights(names, {"detail": 2, "color": 2}) == pytest.approx([0.5, 0.5, 0])
    with pytest.raises(ValueError, match="unknown metrics"):
        normalised_weights(names, {"realism": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        normalised_weights(names, {"detail": -1.0, "color": 2.0})


def test_bad_shapes_and_temperature_are_rejected() -> None:
    with pytest.raises(ValueError, match="differ"):
        prs([[0.1, 0.2]], [[0.1]])
    with pytest.raises(ValueError, match="gamma"):
        prs([[0.1]], [[0.2]], gamma=0.0)
