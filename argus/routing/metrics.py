"""Multi-metric image quality (RouteT2I) and the shapes-world metric vector.

A metric is (name, positive text, negative text) and scores an image I as
q(I, m) = σ(sim(I, m⁺) − sim(I, m⁻)), sim being a CLIP-style model's image-text logit. For the
embedded shapes family the metric vector is instead the shapes scorer's pass rate per requirement
kind plus the image's cleanliness: exact where CLIP would only guess. Both give a matrix
(images, metrics) with names in `names`, so the PRS and the predictor take either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from argus.routing.prs import sigmoid


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


def _to_uint8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return img


class ClipMetricScorer:
    """q(I, m) for a list of metrics with a CLIP model loaded by hub id or local path."""

    def __init__(
        self, model: str | Path, metrics: Sequence[Metric] = ROUTET2I_METRICS, device: str = "cpu"
    ) -> None:
        import torch
        from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

        self.metrics = tuple(metrics)
        self.names = [m.name for m in self.metrics]
        self._device = device
        self._model = CLIPModel.from_pretrained(str(model)).to(device).eval()
        self._images = AutoImageProcessor.from_pretrained(str(model))
        tokenizer = AutoTokenizer.from_pretrained(str(model))
        texts = [t for m in self.metrics for t in (m.positive, m.negative)]
        tokens = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            text = _features(self._model.get_text_features(**tokens.to(device)))
        self._text = torch.nn.functional.normalize(text, dim=-1)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str] | None = None):
        """(images, metrics) quality in (0, 1); prompts are unused (the metrics are generic)."""
        import torch
        from PIL import Image

        pil = [Image.fromarray(_to_uint8(img)) for img in images]
        pixels = self._images(images=pil, return_tensors="pt")["pixel_values"].to(self._device)
        with torch.inference_mode():
            image = torch.nn.functional.normalize(
                _features(self._model.get_image_features(pixel_values=pixels)), dim=-1
            )
            logits = self._model.logit_scale.exp() * image @ self._text.T
        pos, neg = logits[:, 0::2], logits[:, 1::2]
        return sigmoid((pos - neg).double().cpu().numpy())


def _features(output):
    """`get_*_features` returns a tensor in transformers 4 and a pooled output object in 5."""
    return getattr(output, "pooler_output", output)


class ShapesMetricScorer:
    """The shapes-world metric vector from the shapes scorer (contract E)."""

    names = list(SHAPES_METRIC_NAMES)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> np.ndarray:
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
        return np.array([list(shapes_metrics(i, p).values()) for i, p in zip(images, prompts,
                                                                             strict=True)])


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
