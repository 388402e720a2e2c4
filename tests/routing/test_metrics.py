"""Routing's metric vectors: RouteT2I's ten metrics and the shapes-world vector.

The CLIP computation q = σ(sim(I, m⁺) − sim(I, m⁻)) over these metrics is
`argus.scorers.clip.MultiMetricScore`, tested in tests/shapes/test_scorers.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from argus.routing.metrics import ROUTET2I_METRICS, SHAPES_METRIC_NAMES, shapes_metrics


def test_routet2i_ships_ten_distinct_metrics() -> None:
    names = [m.name for m in ROUTET2I_METRICS]
    assert names == ["definition", "detail", "clarity", "sharpness", "harmony", "realism",
                     "color", "consistency", "layout", "integrity"]
    assert all(m.positive != m.negative for m in ROUTET2I_METRICS)


def test_shapes_metrics_from_the_shapes_scorer() -> None:
    from argus.shapes.grammar import parse
    from argus.shapes.render import render_scene

    prompt = "a large red circle left of a small blue square"
    image = render_scene(parse(prompt), seed=0)
    noise = np.random.default_rng(0).random(image.shape).astype(np.float32)
    exact, noisy = shapes_metrics(image, prompt), shapes_metrics(noise, prompt)
    assert list(exact) == list(SHAPES_METRIC_NAMES)
    assert min(exact.values()) >= 0.95  # the exact render meets every requirement, is clean
    assert np.mean(list(noisy.values())) < np.mean(list(exact.values())) - 0.5
    # A relation the prompt does not ask for counts as met; outside the grammar nothing is.
    assert shapes_metrics(image, "a large red circle")["relation"] == 1.0
    outside = shapes_metrics(image, "a photo of a cat")
    assert outside["color"] == 0.0 and outside["cleanliness"] == pytest.approx(exact["cleanliness"])
