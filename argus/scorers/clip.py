"""CLIP score, PickScore and RouteT2I multi-metric scores with transformers' CLIPModel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoProcessor, CLIPModel

from argus.routing.metrics import ROUTET2I_METRICS, Metric
from argus.scorers.base import ScoredImage, check_pairs, to_uint8


def _pooled(output: torch.Tensor | object) -> torch.Tensor:
    """`get_*_features` returns a tensor in transformers 4 and an output object in 5."""
    return getattr(output, "pooler_output", output)  # type: ignore[return-value]


class ClipBackbone:
    """A CLIP-style dual encoder loaded by hub id or local path; L2-normalised embeddings."""

    def __init__(
        self, model: str | Path, processor: str | Path | None = None, device: str = "cpu"
    ) -> None:
        self.device = torch.device(device)
        self.model = CLIPModel.from_pretrained(str(model)).to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(str(processor or model))
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    @torch.inference_mode()
    def image_embeddings(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        from PIL import Image

        pil = [Image.fromarray(to_uint8(img)) for img in images]
        pixels = self.processor(images=pil, return_tensors="pt")["pixel_values"]
        feats = _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device)))
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    @torch.inference_mode()
    def text_embeddings(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.processor(
            text=list(texts),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            return_tensors="pt",
        )
        feats = _pooled(
            self.model.get_text_features(
                input_ids=tokens["input_ids"].to(self.device),
                attention_mask=tokens["attention_mask"].to(self.device),
            )
        )
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())


class ClipScore:
    """CLIP score max(cos(E_I, E_T), 0) in [0, 1] (Hessel et al.'s w = 100 left out)."""

    def __init__(self, model: str | Path, device: str = "cpu") -> None:
        self.name = f"clip:{model}"
        self.backbone = ClipBackbone(model, device=device)

    def cosines(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> np.ndarray:
        check_pairs(images, prompts)
        img = self.backbone.image_embeddings(images)
        txt = self.backbone.text_embeddings(prompts)
        return (img * txt).sum(-1).cpu().numpy().astype(np.float64)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[ScoredImage]:
        cos = self.cosines(images, prompts)
        return [ScoredImage(max(float(c), 0.0), {"clip_cosine": float(c)}) for c in cos]


class PickScore(ClipScore):
    """PickScore: the preference model's logit scale x cosine (a CLIP-H fine-tuned on Pick-a-Pic,
    `yuvalkirstain/PickScore_v1` with the processor of `laion/CLIP-ViT-H-14-laion2B-s32B-b79K`).
    The value is the raw score / 100 (raw scores of good images are about 20-23)."""

    def __init__(
        self, model: str | Path, processor: str | Path | None = None, device: str = "cpu"
    ) -> None:
        self.name = f"pickscore:{model}"
        self.backbone = ClipBackbone(model, processor, device)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[ScoredImage]:
        raw = self.backbone.logit_scale * self.cosines(images, prompts)
        return [ScoredImage(float(r) / 100.0, {"pickscore": float(r)}) for r in raw]


class MultiMetricScore:
    """RouteT2I metrics q(I, m) = sigma(s * (cos(I, m+) - cos(I, m-))), s the logit scale;
    the value is their mean. The metric texts are `argus.routing.metrics.ROUTET2I_METRICS`."""

    def __init__(
        self, model: str | Path, metrics: Sequence[Metric] = ROUTET2I_METRICS, device: str = "cpu"
    ) -> None:
        self.name = f"multi:{model}"
        self.metrics = tuple(metrics)
        self.backbone = ClipBackbone(model, device=device)
        texts = [t for m in self.metrics for t in (m.positive, m.negative)]
        self._texts = self.backbone.text_embeddings(texts)

    def metric_values(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(images, metrics) in (0, 1)."""
        sims = self.backbone.image_embeddings(images) @ self._texts.T
        diff = self.backbone.logit_scale * (sims[:, 0::2] - sims[:, 1::2])
        return torch.sigmoid(diff).cpu().numpy().astype(np.float64)

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[ScoredImage]:
        check_pairs(images, prompts)
        values = self.metric_values(images)
        names = [m.name for m in self.metrics]
        return [
            ScoredImage(float(row.mean()), dict(zip(names, map(float, row), strict=True)))
            for row in values
        ]
