"""The scorer interface shared by the shapes scorer and the real-model scorers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class ScoredImage:
    value: float
    """The scorer's quality value (higher is better)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """Named sub-scores (per requirement kind, per RouteT2I metric, ...)."""


class ImageScorer(Protocol):
    name: str

    def score(self, images: Sequence[np.ndarray], prompts: Sequence[str]) -> list[ScoredImage]:
        """One result per (image, prompt) pair; images are (H, W, 3) uint8 or float in [0, 1]."""
        ...


def to_uint8(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.dtype != np.uint8:
        img = (np.clip(img.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return img


def check_pairs(images: Sequence[np.ndarray], prompts: Sequence[str]) -> None:
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts")
