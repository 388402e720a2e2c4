"""The quality a simulated request really gets at a level.

With a per-prompt table in the profile, each request is one of its prompts and gets that prompt's
measured value. Otherwise a parametric model calibrated to the profile's per-level means
("modelled quality", labelled as such in every result):
- each request has a latent difficulty z ~ N(0, 1) (shared across levels, so a prompt that suffers
  at one level suffers at the others);
- at a level without cache reuse: q = mean + std * z;
- at a cache level: the same, minus `SIMILARITY_PENALTY` per unit of cache similarity below the
  band threshold its skip K needs (`argus.control.predictor.cache_level_quality`);
clipped to [0, 1.2]. Cache similarities are drawn from the profile's published distribution.
"""

from __future__ import annotations

import numpy as np

from argus.control.levels import LevelTable
from argus.control.predictor import (
    DEFAULT_BAND_STEPS,
    DEFAULT_BANDS,
    SIMILARITY_PENALTY,
    band_threshold,
)
from argus.control.profile import Profile, PromptQuality

MISS_SIMILARITY = (0.3, 0.65)
"""Uniform range of top-1 similarities below the lowest published band."""


def sample_similarity(
    distribution: list[tuple[float, float]] | None, count: int, rng: np.random.Generator
) -> np.ndarray | None:
    """Similarities whose tail shares match `distribution` [(threshold, share above)], uniform
    inside each band; None without a distribution."""
    if not distribution:
        return None
    points = sorted(distribution)
    edges = [MISS_SIMILARITY[0]] + [s for s, _ in points] + [1.0]
    above = [1.0] + [share for _, share in points] + [0.0]
    probs = np.clip(-np.diff(above), 0, None)
    probs = probs / probs.sum()
    band = rng.choice(len(probs), size=count, p=probs)
    lo, hi = np.asarray(edges[:-1]), np.asarray(edges[1:])
    return lo[band] + rng.random(count) * (hi[band] - lo[band])


class QualityModel:
    def __init__(
        self,
        table: LevelTable,
        bands: list[tuple[float, int]] | tuple = DEFAULT_BANDS,
        band_steps: int = DEFAULT_BAND_STEPS,
    ) -> None:
        self.table = table
        prompts = table.profile.prompts
        self.measured = bool(prompts)
        self.mean = np.asarray(table.mean_quality)
        self.std = np.asarray([lv.quality_std for lv in table.profile.levels])
        self.threshold = np.asarray([
            band_threshold(k, n, bands, band_steps)
            for k, n in zip(table.cache_k, table.steps, strict=True)
        ])
        self.is_cache = np.asarray(table.cache_k) > 0
        if self.measured:
            self.rows = np.array([
                [p.quality.get(name, m) for name, m in zip(table.names, self.mean, strict=True)]
                for p in prompts
            ])

    @property
    def label(self) -> str:
        """How the reported quality was obtained; anything not measured says "modelled"."""
        if not self.measured:
            return "modelled quality"
        if self.table.profile.quality_source == "measured":
            return "measured per-prompt quality"
        return f"modelled quality ({self.table.profile.quality_source} per-prompt table)"

    def of(
        self, level: np.ndarray, prompt_id: np.ndarray, z: np.ndarray,
        similarity: np.ndarray | None,
    ) -> np.ndarray:
        """Vectorised quality of requests served at `level` (positions)."""
        if self.measured:
            return self.rows[prompt_id, level]
        q = self.mean[level] + self.std[level] * z
        if similarity is not None:
            shortfall = np.maximum(0.0, self.threshold[level] - similarity)
        else:
            shortfall = self.threshold[level]
        q = q - np.where(self.is_cache[level], SIMILARITY_PENALTY * shortfall, 0.0)
        return np.clip(q, 0.0, 1.2)


def modelled_prompt_table(
    profile: Profile, prompts: list[str], seed: int = 0
) -> Profile:
    """The profile with a per-prompt table drawn from the parametric model above (similarity
    from the profile's distribution, a latent difficulty per prompt), labelled "modelled": for
    training and testing predictors when no measured table exists."""
    table = LevelTable.build(profile, slo_s=1.0)
    model = QualityModel(table)
    rng = np.random.default_rng(seed)
    count = len(prompts)
    sims = sample_similarity(profile.similarity_distribution, count, rng)
    z = rng.standard_normal(count)
    rows = []
    for i, prompt in enumerate(prompts):
        levels = np.arange(len(table))
        sim = None if sims is None else np.full(len(table), sims[i])
        values = model.of(levels, np.zeros(len(table), int), np.full(len(table), z[i]), sim)
        values[table.full] = 1.0
        rows.append(PromptQuality(
            prompt=prompt, quality=dict(zip(table.names, np.round(values, 5).tolist(),
                                            strict=True)),
            similarity=None if sims is None else round(float(sims[i]), 5),
        ))
    return profile.model_copy(update={"prompts": rows, "quality_source": "modelled"})
