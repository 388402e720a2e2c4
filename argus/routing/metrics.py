"""The metric vectors routing compares the two tiers on (RouteT2I's multi-metric quality).

A metric is (name, positive text, negative text) and scores an image I as
q(I, m) = σ(sim(I, m⁺) − sim(I, m⁻)), sim being a CLIP-style model's image-text logit; the
scorer that computes it for real models is `argus.scorers.clip.MultiMetricScore` (spec
`multi:<hub id or path>` in `argus profile`), over the metrics defined here. For the embedded
shapes family the metric vector is instead the shapes scorer's pass rate per requirement kind
plus the image's cleanliness (`shapes_metrics`): exact where CLIP would only guess. Either way
`argus profile` stores the vectors per prompt and level, and the PRS and the predictor read them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    positive: str
    negative: str


# RouteT2I's ten metric names; the text pairs are ours (the paper's exact wording is unpublished).
ROUTET2I_METRICS: tuple[Metric, ...] = (
    Metric("definition", "a high definition image", "a low definition image"),
    Metric("detail", "an image with rich fine details", "an image lacking details"),
    Metric("clarity", "a clear image", "a blurry unclear image"),
    Metric("sharpness", "a sharp image in focus", "a soft out of focus image"),
    Metric("harmony", "a harmonious well balanced image", "a discordant unbalanced image"),
    Metric("realism", "a realistic image", "an unrealistic artificial looking image"),
    Metric("color", "an image with vivid natural colors", "an image with dull unnatural colors"),
    Metric("consistency", "a coherent consistent image", "an incoherent inconsistent image"),
    Metric("layout", "an image with a well composed layout", "an image with a cluttered layout"),
    Metric("integrity", "an image of complete intact objects", "an image of broken objects"),
)

# The shapes scorer's requirement kinds (a kind a prompt does not ask for counts as met) and the
# share of pixels near a palette colour, which sees the steps axis the requirements miss.
SHAPES_METRIC_NAMES: tuple[str, ...] = (
    "color", "shape", "size", "count", "relation", "cleanliness",
)


def shapes_metrics(image: np.ndarray, prompt: str) -> dict[str, float]:
    """Metric name -> value for one image, in `SHAPES_METRIC_NAMES` order.

    A prompt outside the grammar scores 0 on every requirement kind (nothing it asks is checked).
    """
    from argus.shapes.scorer import score

    report = score(image, prompt)
    kinds = report.by_kind()
    values = {
        name: (kinds.get(name, 1.0) if report.parsed else 0.0)
        for name in SHAPES_METRIC_NAMES[:-1]
    }
    values["cleanliness"] = float(report.cleanliness)
    return values
