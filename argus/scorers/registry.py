"""Scorer specs (`shapes`, `clip:<model>`, `pickscore:<model>[@<processor>]`, `multi:<model>`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from argus.scorers.base import ImageScorer, ScoredImage, check_pairs

# Weight of pixel cleanliness in the shapes quality value: the requirement share is flat above
# ~10 steps, cleanliness is what falls with fewer steps (docs/shapes.md).
SHAPES_CLEANLINESS_WEIGHT = 0.2


class ShapesScorer:
    """The exact shapes-world scorer: value = 0.8 x requirements met + 0.2 x cleanliness;
    metrics = the routing metric vector (pass rate per requirement kind + cleanliness)."""

    name = "shapes"

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[ScoredImage]:
        from argus.routing.metrics import shapes_metrics
        from argus.shapes.scorer import score

        check_pairs(images, prompts)
        out = []
        for image, prompt in zip(images, prompts, strict=True):
            report = score(image, prompt)
            w = SHAPES_CLEANLINESS_WEIGHT
            value = (1 - w) * report.score + w * report.cleanliness
            metrics = {"requirements": report.score, **shapes_metrics(image, prompt)}
            out.append(ScoredImage(value, metrics))
        return out


def make_scorer(spec: str, device: str = "cpu") -> ImageScorer:
    """Build a scorer from its spec string; ValueError names the accepted forms."""
    kind, _, target = spec.partition(":")
    if kind == "shapes" and not target:
        return ShapesScorer()
    if kind in ("clip", "pickscore", "multi") and target:
        from argus.scorers.clip import ClipScore, MultiMetricScore, PickScore

        if kind == "clip":
            return ClipScore(target, device)
        if kind == "multi":
            return MultiMetricScore(target, device=device)
        model, _, processor = target.partition("@")
        return PickScore(model, processor or None, device)
    raise ValueError(
        f"unknown scorer {spec!r}: use shapes, clip:<model>, pickscore:<model>[@<processor>] "
        "or multi:<model> (model = hub id or local path)"
    )
